// Pictures of the graph (graphviz, compiled to WebAssembly): ops as nodes with their shapes, weights
// small and grey, edges labelled with the shape that flows along them. After fusion, each dispatched
// kernel is a cluster labelled with its WGSL entry point and the ops it fused.
import { instance } from '@viz-js/viz';
import { fmtType, type Graph, type Node } from './ir/graph.js';
import { type Plan } from './plan.js';
import { leafKind } from './ir/op.js';

const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

/** The ops of the unfused graph a fused node stands for (each op describes its own). */
export const fusedOps = (n: Node): string[] => n.op.describe?.(n) ?? [n.op.name];

export function toDot(graph: Graph, plan?: Plan, title = ''): string {
  const num = new Map(graph.nodes.map((n, i) => [n, i]));
  const id = (n: Node) => `n${num.get(n)}`;
  const lines = ['digraph tapir {', '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=10]; edge [fontsize=8, fontname="Helvetica", color="#555555"];'];
  if (title) lines.push(`  labelloc=t; label="${esc(title)}"; fontname="Helvetica"; fontsize=14;`);
  const kernelOf = new Map<Node, string>();
  for (const d of plan?.dispatches ?? []) if (!kernelOf.has(d.node)) kernelOf.set(d.node, d.kernel);
  for (const n of graph.nodes) {
    const leaf = leafKind(n);
    const label = `${esc(String(leaf ? n.attr.name ?? n.op.name : n.op.name))}\\n${esc(fmtType(n.type))}`;
    const style = leaf === 'weight' ? ', shape=note, fillcolor="#f2f2f2", fontcolor="#888888", color="#bbbbbb", fontsize=8'
      : leaf ? ', shape=ellipse, fillcolor="#fff4d6"' : '';
    const k = kernelOf.get(n);
    if (k) {
      const ops = fusedOps(n);
      lines.push(`  subgraph cluster_${id(n)} { label="${esc(k)}"; style="rounded,filled"; fillcolor="#f7fbf2"; color="#7aa35a"; fontsize=9;`);
      lines.push(`    ${id(n)} [label="${esc(ops.join(' + '))}\\n${fmtType(n.type)}"${style}];`);
      lines.push('  }');
    } else lines.push(`  ${id(n)} [label="${label}"${style}];`);
  }
  for (const n of graph.nodes)
    for (const s of n.srcs)
      lines.push(`  ${id(s)} -> ${id(n)} [label="${esc(s.shape.join('×'))}"${leafKind(s) === 'weight' ? ', color="#cccccc", fontcolor="#aaaaaa"' : ''}];`);
  for (const [name, n] of Object.entries(graph.outputs)) {
    lines.push(`  "out:${esc(name)}" [label="${esc(name)}", shape=plaintext, fillcolor=none];`);
    lines.push(`  ${id(n)} -> "out:${esc(name)}";`);
  }
  lines.push('}');
  return lines.join('\n');
}

export async function toSvg(dot: string): Promise<string> {
  const viz = await instance();
  return viz.renderString(dot, { format: 'svg', engine: 'dot' });
}
