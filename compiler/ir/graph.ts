// The graph IR: one immutable node type from model definition to kernel plan.
// A Node is an op applied to source nodes with an attribute record; nodes are hash-consed, so two
// equal subgraphs are the same object. Shapes and dtypes are inferred when a node is built, by the
// op's own rule (ops/*.ts), so a malformed graph fails where it is written.
import { ShapeError } from '../errors.js';
import type { Attr, AttrValue, Builder, Node, Op, TensorType } from './op.js';

export type { Attr, AttrValue, Node, TensorType } from './op.js';


class GraphNode implements Node {
  constructor(
    readonly id: number,
    readonly op: Op,
    readonly srcs: readonly Node[],
    readonly attr: Attr,
    readonly type: TensorType,
  ) {
    Object.freeze(this);
  }
  get shape() { return this.type.shape; }
  get dtype() { return this.type.dtype; }
  get size() { return this.type.shape.reduce((a, b) => a * b, 1); }
  toString() { return `%${this.id}`; }
}

/** An attribute value as text with every record's keys in a fixed (sorted) order: equal values,
 *  however they were written, give equal text (the hash-consing key). */
export const canonical = (v: AttrValue): string =>
  typeof v !== 'object' ? JSON.stringify(v)
    : Array.isArray(v) ? `[${v.map(canonical).join(',')}]`
      : `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Attr)[k]!)}`).join(',')}}`;

// Rewrites rebuild nodes from the attribute records of nodes already built: those records are frozen
// deep copies made here, so each one's key text is worked out once and it is never copied again.
const deepFrozen = new WeakSet<object>();
const keyText = new WeakMap<object, string>();

/** deep-frozen copy of an attribute value (a record inside a record is frozen too) */
const frozen = (v: AttrValue): AttrValue => {
  if (typeof v !== 'object' || deepFrozen.has(v)) return v;
  const f = Object.freeze(Array.isArray(v) ? v.map(frozen) : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, frozen(x as AttrValue)])));
  deepFrozen.add(f);
  return f;
};

/** canonical(attr), remembered for the records frozen() made */
const attrKey = (a: Attr): string => {
  let k = keyText.get(a);
  if (k === undefined) { k = canonical(a); if (deepFrozen.has(a)) keyText.set(a, k); }
  return k;
};

/** Builds a graph; hash-conses nodes so each distinct (op, srcs, attr) exists once. */
export class GraphBuilder implements Builder {
  private nodes: Node[] = [];
  private memo = new Map<string, Node>();
  private taps: Record<string, Hook> = {};

  /** Name a node as a hook point (a tap): `runWithCache`-style tools can then read or edit it. */
  tap(name: string, node: Node, shape: readonly number[] = node.shape): Node {
    if (this.taps[name]) throw new ShapeError(`hook '${name}' is defined twice`);
    this.taps[name] = { node, shape };
    return node;
  }

  apply<A extends Attr>(op: Op<A>, srcs: readonly Node[], attr: A): Node {
    const key = `${op.name}(${srcs.map((s) => s.id).join(',')})${attrKey(attr)}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    let type: TensorType;
    try {
      type = op.infer(srcs.map((s) => s.type), attr);
    } catch (e) {
      if (e instanceof ShapeError) throw new ShapeError(`${op.name}(${srcs.map((s) => fmtType(s.type)).join(', ')}): ${e.message}`);
      throw e;
    }
    const node = new GraphNode(this.nodes.length, op as Op, Object.freeze([...srcs]), frozen(attr) as Attr, Object.freeze({ shape: Object.freeze([...type.shape]), dtype: type.dtype }));
    this.nodes.push(node);
    this.memo.set(key, node);
    return node;
  }

  finish(outputs: Record<string, Node>, hooks: Record<string, Hook> = {}): Graph {
    return new Graph(Object.freeze({ ...outputs }), Object.freeze({ ...this.taps, ...hooks }));
  }
}

/** An attribute value as IR text: scalars and lists of scalars as JSON, a record as `{k=v ...}`. */
export const attrText = (v: AttrValue): string =>
  typeof v !== 'object' ? JSON.stringify(v)
    : Array.isArray(v) ? (v.every((x) => typeof x !== 'object') ? JSON.stringify(v) : `[${v.map(attrText).join(', ')}]`)
      : `{${Object.entries(v).map(([k, x]) => `${k}=${attrText(x as AttrValue)}`).join(' ')}}`;

export const fmtType = (t: TensorType) => `${t.dtype}[${t.shape.join(',')}]`;

/** A named point whose value can be read (TransformerLens's names), and how TL shapes it. */
export interface Hook {
  readonly node: Node;
  /** TL's shape per position, e.g. [nHeads, dHead] for attn.hook_q ([batch, pos] come first) */
  readonly shape: readonly number[];
  /** 'pattern': one [nHeads, context] row per query position, cached as TL does: [batch, head, query, key] */
  readonly layout?: 'pattern';
}

export class Graph {
  /** every node reachable from the outputs, in build order (sources before users) */
  readonly nodes: readonly Node[];
  constructor(readonly outputs: Readonly<Record<string, Node>>, readonly hooks: Readonly<Record<string, Hook>> = {}) {
    const seen = new Set<Node>();
    const order: Node[] = [];
    const visit = (n: Node) => {
      if (seen.has(n)) return;
      seen.add(n);
      n.srcs.forEach(visit);
      order.push(n);
    };
    Object.values(outputs).forEach(visit);
    // ids grow as the model is built and a node's sources always exist before it, so id order is
    // a topological order that reads in the order the model definition was written
    this.nodes = Object.freeze(order.sort((a, b) => a.id - b.id));
  }

  /** One line per node, numbered in order (so equal graphs print equal text):
   *  `%12 = matvec(%3, %11) {norm=true eps=0.00001} : f32[64]`, then `return logits=%N ...`.
   *  compiler/ir/text.ts parses it back. */
  toString(): string {
    const num = new Map(this.nodes.map((n, i) => [n, i]));
    const lines = this.nodes.map((n) => {
      const attrs = Object.entries(n.attr).map(([k, v]) => `${k}=${attrText(v)}`).join(' ');
      return `%${num.get(n)} = ${n.op.name}(${n.srcs.map((s) => `%${num.get(s)}`).join(', ')})${attrs ? ` {${attrs}}` : ''} : ${fmtType(n.type)}`;
    });
    const outs = Object.entries(this.outputs).map(([k, n]) => `${k}=%${num.get(n)}`).join(' ');
    return `${lines.join('\n')}\nreturn ${outs}\n`;
  }
}

/** What an edit puts in place of a node: the node its readers (and its hooks) see from now on, and
 *  hooks the edit adds, listed right after hook `after`. */
export interface NodeEdit { readonly node: Node; readonly hooks?: Readonly<Record<string, Hook>>; readonly after?: string }

/** The graph rebuilt node by node, with `edit(original, rebuilt, builder)` saying what replaces a node
 *  (undefined: nothing). The hooks' nodes are rebuilt too: some (norm scales, patterns) are computed
 *  only when tapped, outside the outputs' graph. Graph edits at hooks (interventions, SAE splices) are
 *  this with their own ops. */
export function rebuildWith(graph: Graph, edit: (n: Node, m: Node, g: GraphBuilder) => NodeEdit | undefined): Graph {
  const g = new GraphBuilder();
  const map = new Map<Node, Node>();
  const added = new Map<string, Readonly<Record<string, Hook>>>();
  const every = new Graph({ ...graph.outputs, ...Object.fromEntries(Object.entries(graph.hooks).map(([k, h]) => [`hook:${k}`, h.node])) });
  for (const n of every.nodes) {
    const m = g.apply(n.op, n.srcs.map((s) => map.get(s)!), n.attr);
    const e = edit(n, m, g);
    if (e?.hooks && e.after !== undefined) added.set(e.after, e.hooks);
    map.set(n, e?.node ?? m);
  }
  const hooks: Record<string, Hook> = {};
  for (const [k, h] of Object.entries(graph.hooks)) {
    hooks[k] = { ...h, node: map.get(h.node)! };
    Object.assign(hooks, added.get(k) ?? {});
  }
  return g.finish(Object.fromEntries(Object.entries(graph.outputs).map(([k, n]) => [k, map.get(n)!])), hooks);
}
