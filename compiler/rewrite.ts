// Applies rewrite rules until none fires. Each sweep rebuilds the graph bottom-up, trying the rules on
// every rebuilt node; sweeps repeat until one changes nothing (the fixed point). A rule set that keeps
// rewriting (a loop) is an error, not a hang. A rule that absorbs a node other readers still need (a
// tapped value) names where its value now lives (`alias`); after the sweep every reader is redirected.
import { GraphBuilder, type Graph, type Node } from './ir/graph.js';
import type { Builder } from './ir/op.js';

/** What a rule may do besides build nodes. */
export interface RuleCtx {
  g: Builder;
  /** how many nodes read `n` (outputs count as readers) */
  uses(n: Node): number;
  /** `old` is absorbed but still read elsewhere (a tap): its readers read `now` instead */
  alias(old: Node, now: Node): void;
  /** whether another rule absorbed `n` this sweep (its other readers will read the alias) */
  aliased(n: Node): boolean;
}
/** A fusion (or other rewrite): the replacement for `n`, or undefined when it does not match.
 *  The rules of an op set live beside its ops (ops/rules.ts). */
export interface Rule {
  readonly name: string;
  /** the seed kernel it reproduces, or why it exists */
  readonly why: string;
  rewrite(n: Node, c: RuleCtx): Node | undefined;
}

/** A pattern over a node and its sources: an op name, with optional patterns for the sources (in
 *  order; `_` matches anything) and a test on the node. `match` returns the matched nodes by the
 *  names the pattern gives them, or undefined. Rules read as the subgraph they rewrite. */
export type Pattern = '_' | { op: string; as?: string; srcs?: readonly Pattern[]; where?: (n: Node) => boolean };
export function match(n: Node | undefined, p: Pattern): Record<string, Node> | undefined {
  const got: Record<string, Node> = {};
  const walk = (x: Node | undefined, q: Pattern): boolean => {
    if (q === '_') return x !== undefined;
    if (!x || x.op.name !== q.op || (q.where && !q.where(x))) return false;
    if (q.as) { if (got[q.as] && got[q.as] !== x) return false; got[q.as] = x; }
    return (q.srcs ?? []).every((s, i) => walk(x.srcs[i], s));
  };
  return walk(n, p) ? got : undefined;
}

export const MAX_SWEEPS = 32;

export interface RewriteResult { graph: Graph; fired: Record<string, number>; sweeps: number }

export function rewrite(graph: Graph, rules: readonly Rule[]): RewriteResult {
  const fired: Record<string, number> = {};
  let current = graph;
  for (let sweep = 1; sweep <= MAX_SWEEPS; sweep++) {
    const uses = new Map<Node, number>();
    for (const n of current.nodes) for (const s of n.srcs) uses.set(s, (uses.get(s) ?? 0) + 1);
    for (const n of Object.values(current.outputs)) uses.set(n, (uses.get(n) ?? 0) + 1);
    const g = new GraphBuilder();
    const map = new Map<Node, Node>();
    const origin = new Map<Node, Node>(); // rebuilt node -> node of `current`, for use counts
    const aliases = new Map<Node, Node>(); // rebuilt node -> the node that now holds its value
    let changes = 0;
    for (const n of current.nodes) {
      let m = g.apply(n.op, n.srcs.map((s) => map.get(s)!), n.attr);
      origin.set(m, n);
      // nodes a rule made this sweep (not replacements) are read once, by what the rule built
      const ctx = {
        g, uses: (x: Node) => uses.get(origin.get(x) ?? x) ?? 1,
        alias: (old: Node, now: Node) => { if (old !== now && ctx.uses(old) > 1) aliases.set(old, now); },
        aliased: (x: Node) => aliases.has(x),
      };
      for (const r of rules) {
        const out = r.rewrite(m, ctx);
        if (out && out !== m) {
          fired[r.name] = (fired[r.name] ?? 0) + 1;
          changes++;
          origin.set(out, n); // the replacement has the readers of what it replaces
          m = out;
          break; // one rule per node per sweep; the next sweep sees the result
        }
      }
      map.set(n, m);
    }
    current = g.finish(Object.fromEntries(Object.entries(current.outputs).map(([k, n]) => [k, map.get(n)!])));
    if (aliases.size) current = redirect(current, aliases);
    if (changes === 0) return { graph: current, fired, sweeps: sweep };
  }
  throw new Error(`internal: the rewrite rules did not reach a fixed point in ${MAX_SWEEPS} sweeps (a rule loop?)`);
}

/** The graph with every read of an aliased node reading its alias instead. Rebuilt in the old order,
 *  except that an alias is built (depth-first) before a reader that comes earlier. */
function redirect(graph: Graph, aliases: ReadonlyMap<Node, Node>): Graph {
  const g = new GraphBuilder();
  const done = new Map<Node, Node>();
  const resolve = (n: Node): Node => { let m = n; for (let i = 0; aliases.has(m); i++) { if (i > 64) throw new Error('internal: alias cycle'); m = aliases.get(m)!; } return m; };
  const build = (n0: Node): Node => {
    const n = resolve(n0);
    let m = done.get(n);
    if (!m) { m = g.apply(n.op, n.srcs.map(build), n.attr); done.set(n, m); }
    return m;
  };
  for (const n of graph.nodes) if (!aliases.has(n)) build(n);
  return g.finish(Object.fromEntries(Object.entries(graph.outputs).map(([k, n]) => [k, build(n)])));
}
