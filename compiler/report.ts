// What a compiled plan costs per token: dispatches (per layer too), weight bytes read, memory.
import { type Plan } from './plan.js';
import type { Node } from './ir/graph.js';
import { leafKind } from './ir/op.js';

const LAYER = /^(?:blk|cache\.[kv])\.(\d+)\b/;

const leafLayer = (n: Node) => {
  const m = leafKind(n) ? LAYER.exec(String(n.attr.name ?? '')) : null;
  return m ? Number(m[1]) : -1;
};

/** The transformer layer a node belongs to: that of the weights and caches it reads itself, or, if it
 *  reads none (rope, add, ...), the deepest layer of what it reads; -1 outside the layers. */
export function layerOf(n: Node, memo = new Map<Node, number>()): number {
  const hit = memo.get(n);
  if (hit !== undefined) return hit;
  const leaves = n.srcs.filter((s) => leafKind(s));
  const own = leaves.length ? Math.max(-1, ...leaves.map(leafLayer)) : -1;
  const l = leafKind(n) ? leafLayer(n) : leaves.some((s) => leafKind(s) === 'weight' || leafKind(s) === 'state') && own < 0 ? -1
    : own >= 0 ? own : Math.max(-1, ...n.srcs.map((s) => layerOf(s, memo)));
  memo.set(n, l);
  return l;
}

export interface PlanReport {
  /** dispatches of a decode step at position 0 */
  dispatches: number;
  /** where the plan runs other kernels at other positions (attention past SHORT_KEYS): each range's
   *  first position and its dispatches a token */
  byPosition: { from: number; dispatches: number; dispatchesPerLayer: number }[];
  /** graph nodes that dispatch work (a node may dispatch several kernels: split attention, weight pieces) */
  dispatchingNodes: number;
  dispatchesPerLayer: number;
  layers: number;
  kernels: string[];
  weightBytesPerToken: number;
  bytesAllocated: Record<string, number>;
  activationBytes: number;
  activationBytesWithoutReuse: number;
}

export function report(plan: Plan): PlanReport {
  const memo = new Map<Node, number>();
  const at = (pos: number) => {
    const ds = plan.dispatchesAt(pos), perLayer = new Map<number, number>();
    for (const d of ds) {
      const l = layerOf(d.node, memo);
      if (l >= 0) perLayer.set(l, (perLayer.get(l) ?? 0) + 1);
    }
    return { from: pos, dispatches: ds.length, dispatchesPerLayer: Math.max(0, ...perLayer.values()), layers: perLayer.size };
  };
  const byPosition = plan.positionBreaks().map(at);
  const first = byPosition[0]!;
  const bytes = plan.bytesByKind();
  return {
    dispatches: first.dispatches,
    byPosition: byPosition.map(({ from, dispatches, dispatchesPerLayer }) => ({ from, dispatches, dispatchesPerLayer })),
    dispatchingNodes: new Set(plan.dispatches.map((d) => d.node)).size,
    dispatchesPerLayer: first.dispatchesPerLayer,
    layers: first.layers,
    kernels: [...new Set(plan.dispatches.map((d) => d.kernel))],
    weightBytesPerToken: bytes.weight ?? 0,
    bytesAllocated: bytes,
    activationBytes: plan.memory.activationBytes,
    activationBytesWithoutReuse: plan.memory.naiveActivationBytes,
  };
}
