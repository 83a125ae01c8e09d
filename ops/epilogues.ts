// Epilogues a fused kernel can carry, listed in its `epilogues` attribute as records
// ([{name="add"}, {name="scale" value=0.5}], [{name="store" hole="k"}]): each is an @epilogue fragment
// (in the op file it comes from) and a float64 reference. This module owns the list's form: others
// build uses with `epilogueUse()` and read them with `epiloguesOf()`.
// `add` takes the next source of the node as its vector (a residual or a bias); `bias` too, read from
// an offset (Qwen2's [q; k; v] biases); `scale` takes its
// factor from the name; `store` writes the value it sees to an extra output of the kernel — how a tap
// survives fusion: the hook's value is stored by the kernel that computes it, read through a
// `stored(F){n}` node. A `hole` picks one of a kernel's named holes (default 'epilogue').
import type { FragmentUse } from '../compiler/kernel/compose.js';
import type { FragmentIR } from '../compiler/kernel/ir.js';
import type { Node } from '../compiler/ir/graph.js';
import type { Attr } from '../compiler/ir/op.js';
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

export type EpilogueName = 'add' | 'bias' | 'scale' | 'store';

export const EPILOGUES: Readonly<Record<EpilogueName, EpilogueDef>> = {
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

/** One epilogue of a fused kernel: its value (for those with a uniform) and the kernel's hole it fills. */
export type EpilogueUse = { readonly name: EpilogueName; readonly value?: number; readonly hole?: string };

/** A use in its one written form (a value only where the epilogue has a uniform, a hole only where
 *  given), so equal uses are equal attributes and hash-cons to one node. */
export function epilogueUse(name: EpilogueName, value = 0, hole?: string): EpilogueUse {
  return { name, ...(EPILOGUES[name].uniform ? { value } : {}), ...(hole !== undefined ? { hole } : {}) };
}
/** A node's (or an attribute record's) epilogues, in order. */
export const epiloguesOf = (a: Node | Attr): readonly EpilogueUse[] =>
  (('op' in a ? (a as Node).attr : a).epilogues as readonly EpilogueUse[] | undefined) ?? [];
/** the value an epilogue's uniform takes */
export const valueOf = (e: EpilogueUse) => e.value ?? 0;
/** whether two lists are the same epilogues */
export const sameEpilogues = (a: readonly EpilogueUse[], b: readonly EpilogueUse[]) =>
  a.length === b.length && a.every((e, i) => e.name === b[i]!.name && valueOf(e) === valueOf(b[i]!) && e.hole === b[i]!.hole);
/** the attribute fields for a list: none when it is empty */
export const epilogueAttr = (es: readonly EpilogueUse[]): { epilogues?: readonly EpilogueUse[] } => (es.length ? { epilogues: es } : {});
/** vector sources a list of epilogues consumes */
export const epilogueArrays = (es: readonly EpilogueUse[]) => es.reduce((n, e) => n + EPILOGUES[e.name].arrays, 0);
/** how many stores (taps) a list of epilogues makes */
export const storeCount = (es: readonly EpilogueUse[]) => es.filter((e) => EPILOGUES[e.name].outputs).length;

/** Compose `kernel` with node `n`'s epilogues (or `uses`, a part of them) and bind what they need:
 *  vector sources from `srcs` in order, stores to the buffers of n's `stored` nodes, uniforms from
 *  their values. */
export function lowerEpilogues(n: Node, ctx: LowerCtx, kernel: string, srcs: readonly Node[], uses = epiloguesOf(n)) {
  const frags: { name: string; hole?: string }[] = uses.map((e) => ({ name: EPILOGUES[e.name].fragment, hole: e.hole }));
  const bind: Record<string, BufId> = {};
  const uniforms: Record<string, number> = {};
  let next = 0, stores = 0;
  const frag = (name: string) => ctx.fragment(name);
  uses.forEach((e, j) => {
    const def = EPILOGUES[e.name];
    const f: FragmentIR = frag(def.fragment);
    for (const p of f.params) {
      if (p.kind === 'in') bind[`${p.name}_e${j}`] = ctx.buf(srcs[next++]!);
      else if (p.kind === 'out') bind[`${p.name}_e${j}`] = ctx.stored(n, stores++);
      else if (p.kind === 'uniform') uniforms[`${p.name}_e${j}`] = valueOf(e);
    }
  });
  return { kernel: ctx.compose(kernel, frags.map((f) => ({ frag: frag(f.name), hole: f.hole }) satisfies FragmentUse)), bind, uniforms };
}
