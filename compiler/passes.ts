// The compiler, as one flat list of named passes. Each takes the state the one before left and says
// why it exists; `dumpAfter` prints the IR (graph text, or the plan) after any of them.
import { Graph, GraphBuilder, type Node } from './graph.js';
import { OP_BY_NAME } from '../ops/index.js';
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
  /** hooks to intervene at, with the rows (positions) their tables cover: see ops/intervene.ts */
  interventions?: readonly { hook: string; rows: number }[];
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
    name: 'interventions', why: 'edits at hooks become intervene ops whose tables the host writes once per run',
    run(s, o) {
      return o.interventions?.length ? { ...s, graph: withInterventions(s.graph, o.interventions) } : s;
    },
  },
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

/** The graph with `intervene(x, pos, a, b)` after each named hook: every reader of the hook, the hook
 *  itself included (TransformerLens caches the edited value), sees the edited value. */
export function withInterventions(graph: Graph, list: readonly { hook: string; rows: number }[]): Graph {
  const at = new Map<Node, { hook: string; rows: number; size: number }>();
  const read = new Set(graph.nodes.flatMap((n) => n.srcs));
  for (const iv of list) {
    const h = graph.hooks[iv.hook];
    if (!h) throw new UsageError(`the model has no hook '${iv.hook}'`);
    if (!read.has(h.node)) throw new UsageError(`'${iv.hook}' can be read but not edited: nothing downstream reads it (attention computes its pattern internally; edit attn.hook_z or the residual stream instead)`);
    at.set(h.node, { ...iv, size: h.shape.reduce((x, y) => x * y, 1) }); // per position
  }
  const pos = graph.nodes.find((n) => n.op.name === 'input' && n.attr.name === 'pos');
  if (!pos) throw new UsageError('interventions need a graph with a position input');
  const g = new GraphBuilder();
  const map = new Map<Node, Node>();
  const intervene = OP_BY_NAME.get('intervene')!, input = OP_BY_NAME.get('input')!;
  // the hooks' nodes too: some (norm scales, patterns) are computed only when tapped, outside the outputs' graph
  const every = new Graph({ ...graph.outputs, ...Object.fromEntries(Object.entries(graph.hooks).map(([k, h]) => [`hook:${k}`, h.node])) });
  for (const n of every.nodes) {
    let m = g.apply(n.op, n.srcs.map((s) => map.get(s)!), n.attr);
    const iv = at.get(n);
    if (iv) {
      const table = (k: string) => g.apply(input, [], { name: `iv:${iv.hook}:${k}`, shape: [iv.rows, iv.size], dtype: 'f32' });
      m = g.apply(intervene, [m, map.get(pos)!, table('a'), table('b')], {});
    }
    map.set(n, m);
  }
  const hooks = Object.fromEntries(Object.entries(graph.hooks).map(([k, h]) => [k, { ...h, node: map.get(h.node)! }]));
  return g.finish(Object.fromEntries(Object.entries(graph.outputs).map(([k, n]) => [k, map.get(n)!])), hooks);
}
