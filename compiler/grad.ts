// Reverse-mode differentiation as a graph pass: from a scalar metric node, the gradient of the metric
// with respect to chosen nodes, as more nodes of the same graph. Each op states its vector-Jacobian
// product in its own file (Op.vjp); this pass knows no particular op. It walks the nodes the metric
// depends on from the metric back (ids descending: a node's users come after it), hands each node the
// sum of its users' contributions, and asks its op for its sources' shares — only for sources that
// lead to a node whose gradient was asked for. The float64 reference runner then differentiates by
// evaluating those nodes; the compiler fuses, plans and prints them like any other.
import { ShapeError } from './errors.js';
import type { Attr, Builder, Node, Op } from './ir/op.js';

/** The two ops the pass itself builds with (given by the op set, so the compiler names none): a constant
 *  (the seed, d metric / d metric = 1) and the sum of two gradients of one node. */
export interface GradOps { readonly fill: Op<{ shape: readonly number[]; value: number }>; readonly add: Op<Attr> }

/** d metric / d node for each of `wrt`, built with `b` (the builder that made the metric's graph). */
export function gradients(b: Builder, metric: Node, wrt: readonly Node[], ops: GradOps): Map<Node, Node> {
  if (metric.size !== 1) throw new ShapeError(`a gradient needs a scalar metric, got [${metric.shape}]`);
  const asked = new Set(wrt);
  // the nodes the metric depends on, and which of them lead to an asked-for node
  const order: Node[] = [], leads = new Map<Node, boolean>();
  const visit = (n: Node): boolean => {
    const known = leads.get(n);
    if (known !== undefined) return known;
    leads.set(n, false); // (a graph has no cycles; this only marks the node as seen)
    let l = asked.has(n);
    for (const s of n.srcs) l = visit(s) || l;
    leads.set(n, l);
    order.push(n);
    return l;
  };
  visit(metric);
  for (const w of wrt) if (!leads.get(w)) throw new ShapeError(`the metric does not depend on node %${w.id} (${w.op.name}): no gradient reaches it`);
  const parts = new Map<Node, Node[]>([[metric, [b.apply(ops.fill, [], { shape: [...metric.shape], value: 1 })]]]);
  const out = new Map<Node, Node>();
  for (const n of order.sort((x, y) => y.id - x.id)) {
    const mine = parts.get(n);
    if (!mine || !leads.get(n)) continue;
    // contributions summed in the order they were made (the users' order, last first)
    const dy = mine.reduce((acc, g) => b.apply(ops.add, [acc, g], {}));
    if (asked.has(n)) out.set(n, dy);
    const needs = n.srcs.map((s) => leads.get(s) === true);
    if (!needs.some(Boolean)) continue;
    if (!n.op.vjp) throw new ShapeError(`no gradient through ${n.op.name} (%${n.id}): the op states no backward`);
    const shares = n.op.vjp(n, dy, b);
    n.srcs.forEach((s, i) => {
      if (!needs[i]) return;
      const g = shares[i];
      if (!g) throw new ShapeError(`${n.op.name} (%${n.id}) gives no gradient to its source ${i} (${s.op.name}), which the metric's gradient needs`);
      if (g.shape.length !== s.shape.length || g.shape.some((d, k) => d !== s.shape[k])) throw new Error(`internal: ${n.op.name}'s gradient for source ${i} is [${g.shape}], the source is [${s.shape}]`);
      const list = parts.get(s);
      if (list) list.push(g); else parts.set(s, [g]);
    });
  }
  return out;
}
