// Applies rewrite rules until none fires. Each sweep rebuilds the graph bottom-up, trying the rules on
// every rebuilt node; sweeps repeat until one changes nothing (the fixed point). A rule set that keeps
// rewriting (a loop) is an error, not a hang.
import { GraphBuilder, type Graph, type Node } from './graph.js';
import { type Rule } from './rules.js';

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
    let changes = 0;
    for (const n of current.nodes) {
      let m = g.apply(n.op, n.srcs.map((s) => map.get(s)!), n.attr);
      origin.set(m, n);
      // nodes a rule made this sweep (not replacements) are read once, by what the rule built
      const ctx = { g, uses: (x: Node) => uses.get(origin.get(x) ?? x) ?? 1 };
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
    if (changes === 0) return { graph: current, fired, sweeps: sweep };
  }
  throw new Error(`internal: the rewrite rules did not reach a fixed point in ${MAX_SWEEPS} sweeps (a rule loop?)`);
}
