// Epilogues a fused kernel can carry, named in its `epilogues` attribute ("add,scale=0.5",
// "k:store"): each is an @epilogue fragment (in the op file it comes from) and a float64 reference.
// `add` takes the next source of the node as its vector (a residual or a bias); `bias` too, read from
// an offset (Qwen2's [q; k; v] biases); `scale` takes its
// factor from the name; `store` writes the value it sees to an extra output of the kernel — how a tap
// survives fusion: the hook's value is stored by the kernel that computes it, read through a
// `stored(F){n}` node. A `hole:` prefix picks one of a kernel's named holes (default 'epilogue').
import type { FragmentUse } from '../compiler/kernel/compose.js';
import type { FragmentIR } from '../compiler/kernel/ir.js';
import type { Node } from '../compiler/ir/graph.js';
import { type f32, type Out, type u32 } from '../compiler/kernel/dsl.js';
import type { BufId, LowerCtx } from '../compiler/ir/op.js';

export interface EpilogueDef {
  fragment: string;
  /** vector sources it consumes */
  arrays: number;
  /** extra outputs it writes (a store) */
  outputs?: number;
  /** the uniform its `=value` sets */
  uniform?: string;
  reference(v: number, i: number, arrays: Float64Array[], value: number): number;
}

export const EPILOGUES: Readonly<Record<string, EpilogueDef>> = {
  add: { fragment: 'addEpilogue', arrays: 1, reference: (v, i, [y]) => v + y![i]! },
  bias: { fragment: 'biasEpilogue', arrays: 1, uniform: 'offset', reference: (v, i, [y], offset) => v + y![offset + i]! },
  scale: { fragment: 'scaleEpilogue', arrays: 0, uniform: 'factor', reference: (v, _i, _a, f) => v * f },
  store: { fragment: 'storeEpilogue', arrays: 0, outputs: 1, reference: (v) => v },
};

/** A tap inside a fused kernel: the value at this point is also written to `t`. */
/** @epilogue */
export function storeEpilogue(v: f32, i: u32, t: Out<f32>): f32 {
  t[i] = v;
  return v;
}

export interface EpilogueUse { name: string; value: number; hole?: string }

export function parseEpilogues(spec: string | undefined): EpilogueUse[] {
  if (!spec) return [];
  return spec.split(',').map((item) => {
    const [h, rest] = item.includes(':') ? item.split(':') : [undefined, item];
    const [name, value] = rest!.split('=');
    if (!EPILOGUES[name!]) throw new Error(`internal: unknown epilogue '${name}'`);
    return { name: name!, value: value === undefined ? 0 : Number(value), ...(h ? { hole: h } : {}) };
  });
}
export const formatEpilogues = (es: readonly EpilogueUse[]) =>
  es.map((e) => `${e.hole ? `${e.hole}:` : ''}${EPILOGUES[e.name]!.uniform ? `${e.name}=${e.value}` : e.name}`).join(',');
/** vector sources a list of epilogues consumes */
export const epilogueArrays = (es: readonly EpilogueUse[]) => es.reduce((n, e) => n + EPILOGUES[e.name]!.arrays, 0);
/** how many stores (taps) a node's epilogues make */
export const storeCount = (spec: string | undefined) => parseEpilogues(spec).filter((e) => EPILOGUES[e.name]!.outputs).length;
/** the same list with one more epilogue */
export const appendEpilogue = (spec: string | undefined, e: EpilogueUse) => formatEpilogues([...parseEpilogues(spec), e]);

/** Compose `kernel` with node `n`'s epilogues (or those of `spec`, a part of them) and bind what they
 *  need: vector sources from `srcs` in order, stores to the buffers of n's `stored` nodes, uniforms
 *  from their values. */
export function lowerEpilogues(n: Node, ctx: LowerCtx, kernel: string, srcs: readonly Node[], spec = n.attr.epilogues as string | undefined) {
  const uses = parseEpilogues(spec);
  const frags: { name: string; hole?: string }[] = uses.map((e) => ({ name: EPILOGUES[e.name]!.fragment, hole: e.hole }));
  const bind: Record<string, BufId> = {};
  const uniforms: Record<string, number> = {};
  let next = 0, stores = 0;
  const frag = (name: string) => ctx.fragment(name);
  uses.forEach((e, j) => {
    const def = EPILOGUES[e.name]!;
    const f: FragmentIR = frag(def.fragment);
    for (const p of f.params) {
      if (p.kind === 'in') bind[`${p.name}_e${j}`] = ctx.buf(srcs[next++]!);
      else if (p.kind === 'out') bind[`${p.name}_e${j}`] = ctx.stored(n, stores++);
      else if (p.kind === 'uniform') uniforms[`${p.name}_e${j}`] = e.value;
    }
  });
  return { kernel: ctx.compose(kernel, frags.map((f) => ({ frag: frag(f.name), hole: f.hole }) satisfies FragmentUse)), bind, uniforms };
}
