// An intervention at a hook: x -> x * a[pos] + b[pos], elementwise, with a and b [rows, size] written
// by the host once per run. Every kind is such a map: replace/patch (a=0, b=value), add a steering
// vector (a=1, b=v), scale (a=s, b=0), zero-ablate (0, 0), mean-ablate (0, mean); positions and heads
// left alone have a=1, b=0, which leaves x bit for bit. Positions past `rows` are left alone too.
// With `every`, the tables are one row that applies at every position (steering while generating).
// Over a batch of B sequences each has its own tables ([B, rows, size]), so one pass can patch each
// sequence at its own site.
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, elems, expectShape, groupsFor, overRows, rowsOf, seqLenOf } from './op.js';
import { ShapeError, UsageError } from '../compiler/errors.js';
import { rebuildWith, type Graph, type Node } from '../compiler/ir/graph.js';
import type { GraphEdit } from '../compiler/passes.js';
import { input } from './input.js';
import { fill } from './fill.js';
import { nearest } from '../compiler/hooks.js';

export const intervene: Op<{ every?: boolean }> = overRows<{ every?: boolean }>({
  name: 'intervene',
  infer([x, pos, a, b]) {
    expectShape(pos!, [1], 'position');
    if (a!.shape.length !== 2 || a!.shape[1] !== elems(x!)) throw new ShapeError(`intervention tables must be [rows, ${elems(x!)}] (a sequence's)`);
    expectShape(b!, a!.shape, 'intervention offset');
    return x!;
  },
  reference([x, pos, a, b], attr, s) {
    const p = attr.every ? 0 : pos![0]!, rows = s.srcs[2]![0]!, n = x!.length;
    return p >= rows ? Float64Array.from(x!) : x!.map((v, i) => v * a![p * n + i]! + b![p * n + i]!);
  },
  // d/dx (x·a + b) = a: the same map of the gradient with b = 0 (the tables are inputs: no gradient)
  vjp: (n, dy, g) => [g.apply(intervene, [dy, n.srcs[1]!, n.srcs[2]!, g.apply(fill, [], { shape: [...n.srcs[3]!.shape], value: 0 })], n.attr), undefined, undefined, undefined],
  lower(n, ctx) {
    const [x, pos, a, b] = n.srcs;
    const [rows, size] = a!.shape.slice(-2) as [number, number];
    ctx.dispatch('interveneKernel', { x: ctx.buf(x!), pos: ctx.buf(pos!), a: ctx.buf(a!), b: ctx.buf(b!), out: ctx.buf(n) },
      { n: size, tokens: rowsOf(x!.shape), seqLen: seqLenOf(x!.shape), rows, every: n.attr.every ? 1 : 0 }, groupsFor(n.size, 64));
  },
}, { rows: () => [0], pos: 1, states: [2, 3] });

/** @kernel @workgroupSize 64 */
export function interveneKernel(id: Invocation, x: In<f32>, pos: In<u32>, a: In<f32>, b: In<f32>, out: Out<f32>, n: u32, tokens: u32, seqLen: u32, rows: u32, every: u32) {
  const i: u32 = id.global;
  if (i >= n * tokens) {
    return;
  }
  const r: u32 = idiv(i, n); // element i is in row r: sequence r / seqLen, position pos + r % seqLen
  const p: u32 = every === 1 ? 0 : pos[0] + r % seqLen;
  if (p >= rows) {
    out[i] = x[i];
    return;
  }
  const t: u32 = (idiv(r, seqLen) * rows + p) * n + i % n; // that sequence's table
  out[i] = x[i] * a[t] + b[t];
}

/** The name of the input that holds a hook's intervention table: 'a' multiplies, 'b' adds. */
export const ivName = (hook: string, table: 'a' | 'b') => `iv:${hook}:${table}`;

/** An intervention the plan holds: its tables hold `rows` positions, or (`every`) one row for all. */
export type InterventionSpec = { readonly hook: string; readonly rows: number; readonly every?: boolean };

/** The graph edit that puts an intervention at each hook. */
export const interventions = (list: readonly InterventionSpec[]): GraphEdit =>
  (graph) => list.length ? withInterventions(graph, list) : graph;

/** The graph with `intervene(x, pos, a, b)` after each named hook: every reader of the hook, the hook
 *  itself included (TransformerLens caches the edited value), sees the edited value. */
/** The hooks an edit (an intervention, a hook function) can be put at: those something downstream
 *  reads. Attention patterns and scores are computed inside flash attention, and the logits and the
 *  final norm's parts feed nothing. */
export function editableHooks(graph: Graph): string[] {
  const read = new Set(graph.nodes.flatMap((n) => n.srcs));
  return Object.entries(graph.hooks).filter(([, h]) => read.has(h.node)).map(([name]) => name);
}

/** The error for an edit at a hook that cannot take one, naming the nearest that can. */
export function notEditable(graph: Graph, hook: string): UsageError {
  const near = nearest(hook, editableHooks(graph), 3);
  return new UsageError(`'${hook}' can be read but not edited: nothing downstream reads it (attention computes its pattern internally); the nearest hooks that take an edit: ${near.join(', ')}`);
}

export function withInterventions(graph: Graph, list: readonly InterventionSpec[]): Graph {
  const at = new Map<Node, InterventionSpec & { size: number }>();
  const editable = new Set(editableHooks(graph));
  for (const iv of list) {
    const h = graph.hooks[iv.hook];
    if (!h) throw new UsageError(`the model has no hook '${iv.hook}'`);
    if (!editable.has(iv.hook)) throw notEditable(graph, iv.hook);
    if (iv.every && iv.rows !== 1) throw new Error(`internal: an intervention at every position has one row, not ${iv.rows}`);
    at.set(h.node, { ...iv, size: h.shape.reduce((x, y) => x * y, 1) }); // per position
  }
  const pos = graph.nodes.find((n) => n.op.name === 'input' && n.attr.name === 'pos');
  if (!pos) throw new UsageError('interventions need a graph with a position input');
  // a batch of B sequences ([B, T, ...] rows: token ids or the residual stream come in so): each
  // sequence has its own tables
  const rowInput = graph.nodes.find((n) => n.op.name === 'input' && (n.attr.name === 'token' || n.attr.name === 'resid'));
  const batch = rowInput?.shape.length === 3 ? rowInput.shape[0]! : 1;
  return rebuildWith(graph, (n, m, g) => {
    const iv = at.get(n);
    if (!iv) return undefined;
    const shape = batch > 1 ? [batch, iv.rows, iv.size] : [iv.rows, iv.size];
    const table = (k: 'a' | 'b') => g.apply(input, [], { name: ivName(iv.hook, k), shape, dtype: 'f32' });
    // (the position input rebuilt: hash-consing gives the same node)
    return { node: g.apply(intervene, [m, g.apply(pos.op, [], pos.attr), table('a'), table('b')], iv.every ? { every: true } : {}) };
  });
}
