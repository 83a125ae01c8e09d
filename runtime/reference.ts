// The float64 reference forward pass: the same graph, evaluated node by node with each op's plain
// reference (never its kernel). The independent check on everything the GPU computes.
import { type Graph, type Node } from '../compiler/ir/graph.js';
import type { WeightMap } from './weights.js';
import { dequantize } from '../ops/dequant.js';
import { leafKind } from '../compiler/ir/op.js';

export class ReferenceRunner {
  private weights = new Map<string, Float64Array>();
  private state = new Map<Node, Float64Array>();
  private consts = new Map<Node, Float64Array>();

  constructor(readonly graph: Graph, weights: WeightMap) {
    for (const n of graph.nodes) {
      const kind = leafKind(n);
      if (kind === 'weight') {
        const w = weights.get(String(n.attr.name))!;
        this.weights.set(String(n.attr.name), dequantize(w.dtype, w.bytes, n.size));
      }
      if (kind === 'const') this.consts.set(n, n.op.reference([], n.attr, { srcs: [], out: n.shape }));
    }
    this.reset();
  }

  reset() {
    for (const n of this.graph.nodes) if (leafKind(n) === 'state') this.state.set(n, n.op.reference([], n.attr, { srcs: [], out: n.shape }));
  }

  /** One decode step; returns every node's value (outputs included). */
  step(inputs: Readonly<Record<string, number | ArrayLike<number>>>): Map<Node, Float64Array> {
    const values = new Map<Node, Float64Array>();
    for (const n of this.graph.nodes) {
      switch (leafKind(n)) {
        case 'input': {
          const v = inputs[String(n.attr.name)]!;
          values.set(n, typeof v === 'number' ? Float64Array.of(v) : Float64Array.from(v));
          break;
        }
        case 'weight': values.set(n, this.weights.get(String(n.attr.name))!); break;
        case 'state': values.set(n, this.state.get(n)!); break;
        case 'const': values.set(n, this.consts.get(n)!); break;
        default:
          values.set(n, n.op.reference(n.srcs.map((s) => values.get(s)!), n.attr, { srcs: n.srcs.map((s) => s.shape), out: n.shape }));
      }
    }
    return values;
  }

  output(inputs: Readonly<Record<string, number | ArrayLike<number>>>, name: string): Float64Array {
    return this.step(inputs).get(this.graph.outputs[name]!)!;
  }
}
