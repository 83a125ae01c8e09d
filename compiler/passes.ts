// The compiler, as one flat list of named passes. Each takes the state the one before left and says
// why it exists; `dumpAfter` prints the IR (graph text, or the plan) after any of them.
import { Graph, type Node } from './ir/graph.js';
import type { OpSet } from './ir/opset.js';
import { lowerGraph, type Plan } from './plan.js';
import { rewrite, type Rule } from './rewrite.js';
import type { Target } from './target.js';
import { toWGSL } from './kernel/wgsl.js';
import { UsageError } from './errors.js';
import { printGraph } from './ir/text.js';

/** A change to the graph the caller asks for before fusion (an intervention, an SAE splice): the op
 *  set that defines the ops it inserts also defines the edit (e.g. ops/intervene.ts). */
export type GraphEdit = (graph: Graph) => Graph;

export interface CompileOptions {
  /** apply fusion rules (default true) */
  fuse?: boolean;
  /** rule names to leave out */
  disableRules?: readonly string[];
  /** print the IR after this pass into `dumps` */
  dumpAfter?: string;
  /** hook names to tap: each becomes an output `hook:NAME` whose buffer holds its value after a step */
  taps?: readonly string[];
  /** graph edits, in order (interventions at hooks: ops/intervene.ts's `interventions`) */
  edits?: readonly GraphEdit[];
  /** share activation buffers between values that are not live at once (default true) */
  reuse?: boolean;
}

export interface CompileState {
  graph: Graph;
  plan?: Plan;
  wgsl?: Map<string, string>;
  fired: Record<string, number>;
}

/** What every pass may read: the op set, the target and the caller's options. */
interface PassCtx { readonly opset: OpSet; readonly target: Target; readonly o: CompileOptions }
interface Pass { name: string; why: string; run(s: CompileState, c: PassCtx): CompileState }

export const PASSES: readonly Pass[] = [
  { name: 'infer', why: 'shapes and dtypes: each op checks its sources as the graph is built', run: (s) => s },
  {
    name: 'interventions', why: 'edits at hooks become intervene ops whose tables the host writes once per run',
    run: (s, { o }) => (o.edits ?? []).reduce((t, edit) => ({ ...t, graph: edit(t.graph) }), s),
  },
  {
    name: 'taps', why: 'requested hooks become extra outputs, so fusion keeps their values (no hooks: the plain plan)',
    run(s, { o }) {
      if (!o.taps?.length) return s;
      const outputs: Record<string, Node> = { ...s.graph.outputs };
      for (const t of o.taps) {
        const h = s.graph.hooks[t];
        if (!h) throw new UsageError(`the model has no hook '${t}'`);
        outputs[`hook:${t}`] = h.node;
      }
      return { ...s, graph: new Graph(outputs, s.graph.hooks) };
    },
  },
  {
    name: 'fuse', why: 'rewrite rules until none fires: fewer dispatches, fewer round trips through memory',
    run(s, { o, opset }) {
      if (o.fuse === false) return s;
      const r = rewrite(s.graph, rulesFor(opset, o.disableRules));
      return { ...s, graph: r.graph, fired: r.fired };
    },
  },
  { name: 'dce', why: 'keep only what the outputs need', run: (s) => ({ ...s, graph: new Graph(s.graph.outputs) }) },
  { name: 'schedule', why: 'lower nodes in order to kernel dispatches, weights split to fit bindings, activation buffers reused by liveness', run: (s, { opset, target, o }) => ({ ...s, plan: lowerGraph(s.graph, target, { kernels: opset.kernels, fragments: opset.fragments, reuse: o.reuse }) }) },
  { name: 'codegen', why: 'WGSL for every kernel the plan dispatches', run: (s, { target }) => ({ ...s, wgsl: new Map([...s.plan!.kernels.values()].map((k) => [k.name, toWGSL(k, target)])) }) },
];

export function rulesFor(opset: OpSet, disabled: readonly string[] = []): readonly Rule[] {
  const rules = opset.rules;
  for (const d of disabled) if (!rules.some((r) => r.name === d)) throw new UsageError(`unknown rule '${d}' (rules: ${rules.map((r) => r.name).join(', ')})`);
  return rules.filter((r) => !disabled.includes(r.name));
}

/** Graph -> plan (and WGSL) for one device, with the ops, rules and kernels of `opset`. */
export function compile(graph: Graph, opset: OpSet, target: Target, o: CompileOptions = {}): CompileState & { dump?: string } {
  if (o.dumpAfter && !PASSES.some((p) => p.name === o.dumpAfter)) throw new UsageError(`unknown pass '${o.dumpAfter}' (passes: ${PASSES.map((p) => p.name).join(', ')})`);
  let s: CompileState = { graph, fired: {} };
  let dump: string | undefined;
  for (const p of PASSES) {
    s = p.run(s, { opset, target, o });
    if (o.dumpAfter === p.name) dump = s.plan ? printGraph(s.graph) + '\n' + s.plan.toString() : printGraph(s.graph);
  }
  return { ...s, dump };
}
