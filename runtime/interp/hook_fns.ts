// JavaScript hook functions (TransformerLens's `(act, hook) => act'`): each is run on the hook's values
// as the run computes them, with every edit before it applied, and its result goes back in as a
// replacement at that hook. The plan is not split at the hook (a split inside a fused kernel would undo
// the fusion); instead the prompt runs once more per function, in graph order: run k reads hook k back
// (edits 1..k-1 in), calls function k, and the last run applies them all. Upstream of a hook nothing
// depends on its edit, so what each function sees is exactly what a split run would show it.
// Cost: one extra prefill of the prompt and one read-back of the hook per function.
import { UsageError } from '../../compiler/errors.js';
import { selectHooks } from '../../compiler/hooks.js';
import type { Graph } from '../../compiler/ir/graph.js';
import { editableHooks, notEditable } from '../../ops/intervene.js';
import type { Intervention } from './cache.js';

/** Reads a hook's values ([pos, ...] flat) with these interventions applied. */
export type ReadHook = (interventions: readonly Intervention[], hook: string) => Promise<Float32Array>;

/** The interventions with each hook function replaced by the values it returned. */
export async function resolveHookFunctions(graph: Graph, hookNames: readonly string[], batch: number, interventions: readonly Intervention[], read: ReadHook): Promise<Intervention[]> {
  if (batch > 1) throw new UsageError('hook functions run one prompt at a time (a batch edits every prompt alike)');
  const editable = new Set(editableHooks(graph));
  const fixed = interventions.filter((iv) => !('fn' in iv));
  const fns = interventions.flatMap((iv) => {
    if (!('fn' in iv)) return [];
    const sels = selectHooks(iv.hook, hookNames);
    if (sels.length !== 1 || sels[0]!.pos !== undefined || sels[0]!.head !== undefined)
      throw new UsageError(`${iv.hook}: a hook function takes one whole hook (${sels.length} hooks selected${sels.some((s) => s.pos !== undefined || s.head !== undefined) ? ', with a filter' : ''}); pick positions or heads inside the function`);
    const hook = sels[0]!.hook;
    if (!editable.has(hook)) throw notEditable(graph, hook);
    return [{ hook, fn: iv.fn }];
  }).sort((a, b) => hookNames.indexOf(a.hook) - hookNames.indexOf(b.hook));
  const edits: Intervention[] = [...fixed];
  for (const { hook, fn } of fns) {
    const act = await read(edits, hook);
    const n = act.length;
    const out = fn(act, hook) ?? act;
    if (!(out instanceof Float32Array) || out.length !== n) throw new UsageError(`the function at ${hook} returned ${out instanceof Float32Array ? `${out.length} values` : 'something else'}: it must return a Float32Array of ${n} (the hook's values at every position) or edit its input`);
    edits.push({ hook, replace: out });
  }
  return edits;
}
