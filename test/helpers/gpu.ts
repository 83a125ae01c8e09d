// Runs a small graph both ways: lowered to kernels on the shared GPU, and through the ops' float64
// references. Weights are given by name; their shapes come from the graph.
import { GraphBuilder, type Node } from '../../compiler/ir/graph.js';
import { lowerGraph } from '../../compiler/plan.js';
import { fragments, kernels } from '../../ops/kernels.gen.js';
import { ops } from '../../ops/index.js';
import { Executor } from '../../runtime/executor.js';
import { getGpu, targetOf } from '../../runtime/gpu.js';
import { ReferenceRunner } from '../../runtime/reference.js';
import { f32Weight, type WeightMap, type WeightTensor } from '../../runtime/weights.js';
import { leafKind } from '../../compiler/ir/op.js';

export type Ops = ReturnType<typeof ops>;

export async function runBoth(
  build: (o: Ops, g: GraphBuilder) => Node,
  data: Record<string, Float32Array | WeightTensor>,
  inputs: Record<string, number | Int32Array | Float32Array>,
  opts: { maxBindingBytes?: number; maxStorageBuffers?: number; reference?: (o: Ops) => Node; subgroups?: boolean; splitCols?: number; transposedSplit?: { groups: number; minRows: number } } = {},
) {
  const g = new GraphBuilder();
  const graph = g.finish({ out: build(ops(g), g) });
  const weights: WeightMap = new Map();
  for (const n of graph.nodes)
    if (leafKind(n) === 'weight') {
      const d = data[String(n.attr.name)]!;
      weights.set(String(n.attr.name), d instanceof Float32Array ? f32Weight(n.shape, d) : d);
    }
  const device = await getGpu();
  // subgroups: false runs the kernels as a device without them would (each invocation its own subgroup)
  const gpu = opts.subgroups === false ? { ...device, features: device.features.filter((f) => f !== 'subgroups') } : device;
  const plan = lowerGraph(graph, { ...targetOf(gpu, opts.maxBindingBytes), ...(opts.maxStorageBuffers ? { maxStorageBuffers: opts.maxStorageBuffers } : {}), ...(opts.splitCols ? { splitCols: opts.splitCols } : {}), ...(opts.transposedSplit ? { transposedSplit: opts.transposedSplit } : {}) }, { kernels, fragments });
  const ex = new Executor(gpu, plan, weights);
  try {
    ex.reset();
    const out = (await ex.run(inputs, 'out')).subarray(0, graph.outputs.out!.size);
    // the reference evaluates `opts.reference` instead where the GPU graph has no float64 meaning of its own (fused)
    const rg = new GraphBuilder();
    const refGraph = opts.reference ? rg.finish({ out: opts.reference(ops(rg)) }) : graph;
    const ref = new ReferenceRunner(refGraph, weights).output(inputs, 'out');
    return { out, ref, plan };
  } finally {
    ex.destroy();
  }
}
