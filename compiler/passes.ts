// The compiler, as one flat list of named passes. Each takes the state the one before left and says
// why it exists; `dumpAfter` prints the IR (graph text, or the plan) after any of them.
import { Graph, type Node } from './graph.js';
import { lowerGraph, type Plan, type PlanOptions } from './plan.js';
import { rewrite } from './rewrite.js';
import { RULES, type Rule } from './rules.js';
import { toWGSL } from './kernel/wgsl.js';
import { UsageError } from './errors.js';
import { printGraph } from './ir_text.js';

export interface CompileOptions extends PlanOptions {
  /** apply fusion rules (default true) */
  fuse?: boolean;
  /** rule names to leave out */
  disableRules?: readonly string[];
  /** print the IR after this pass into `dumps` */
  dumpAfter?: string;
  /** hook names to tap: each becomes an output `hook:NAME` whose buffer holds its value after a step */
  taps?: readonly string[];
}

export interface CompileState {
  graph: Graph;
  plan?: Plan;
  wgsl?: Map<string, string>;
  fired: Record<string, number>;
}

interface Pass { name: string; why: string; run(s: CompileState, o: CompileOptions): CompileState }

export const PASSES: readonly Pass[] = [
  { name: 'infer', why: 'shapes and dtypes: each op checks its sources as the graph is built', run: (s) => s },
  {
    name: 'taps', why: 'requested hooks become extra outputs, so fusion keeps their values (no hooks: the plain plan)',
    run(s, o) {
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
    run(s, o) {
      if (o.fuse === false) return s;
      const r = rewrite(s.graph, rulesFor(o.disableRules));
      return { ...s, graph: r.graph, fired: r.fired };
    },
  },
  { name: 'dce', why: 'keep only what the outputs need', run: (s) => ({ ...s, graph: new Graph(s.graph.outputs) }) },
  { name: 'schedule', why: 'lower nodes in order to kernel dispatches, weights split to fit bindings, activation buffers reused by liveness', run: (s, o) => ({ ...s, plan: lowerGraph(s.graph, o) }) },
  { name: 'codegen', why: 'WGSL for every kernel the plan dispatches', run: (s) => ({ ...s, wgsl: new Map([...s.plan!.kernels.values()].map((k) => [k.name, toWGSL(k)])) }) },
];

export function rulesFor(disabled: readonly string[] = []): Rule[] {
  for (const d of disabled) if (!RULES.some((r) => r.name === d)) throw new UsageError(`unknown rule '${d}' (rules: ${RULES.map((r) => r.name).join(', ')})`);
  return RULES.filter((r) => !disabled.includes(r.name));
}

export function compile(graph: Graph, o: CompileOptions): CompileState & { dump?: string } {
  if (o.dumpAfter && !PASSES.some((p) => p.name === o.dumpAfter)) throw new UsageError(`unknown pass '${o.dumpAfter}' (passes: ${PASSES.map((p) => p.name).join(', ')})`);
  let s: CompileState = { graph, fired: {} };
  let dump: string | undefined;
  for (const p of PASSES) {
    s = p.run(s, o);
    if (o.dumpAfter === p.name) dump = s.plan ? printGraph(s.graph) + '\n' + s.plan.toString() : printGraph(s.graph);
  }
  return { ...s, dump };
}
