// tapir graph: the model's op graph as text, and optionally its plan and kernels.
import { toWGSL } from '../../compiler/kernel/wgsl.js';
import { command } from '../command.js';
import { openModel, out } from '../common.js';

export default command({
  name: 'graph',
  summary: "print the model's op graph and its kernel plan",
  usage: 'tapir graph [-m MODEL] [--plan] [options]',
  about: "Prints the model's op graph as text, one node per line; --plan adds the kernel dispatches.",
  options: {
    plan: { kind: 'flag', help: 'also print the lowered plan (buffers and dispatches)' },
    wgsl: { kind: 'flag', help: 'also print the WGSL of every kernel the plan dispatches' },
  },
  async run(o) {
    const { model } = await openModel(o);
    try {
      const kernels = [...new Set(model.plan.dispatches.map((d) => d.kernel))];
      if (o.json) {
        out(JSON.stringify({
          nodes: model.graph.nodes.map((n) => ({ id: n.id, op: n.op.name, srcs: n.srcs.map((s) => s.id), attr: n.attr, shape: n.shape, dtype: n.dtype })),
          wgsl: o.wgsl ? Object.fromEntries(kernels.map((k) => [k, toWGSL(model.plan.kernels.get(k)!)])) : undefined,
          dispatches: o.plan ? model.plan.dispatches.map((d) => ({ kernel: d.kernel, node: d.node.id, groups: d.groups, bind: d.bind, uniforms: d.uniforms })) : undefined,
        }) + '\n');
      } else {
        out(model.graph.toString());
        if (o.plan) out('\n' + model.plan.toString());
        if (o.wgsl) for (const k of kernels) out('\n' + toWGSL(model.plan.kernels.get(k)!));
      }
    } finally {
      model.dispose();
    }
  },
});
