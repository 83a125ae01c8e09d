// tapir compile: how the model becomes kernels (fused IR, plan, WGSL, pictures), without a GPU.
import fs from 'node:fs';
import path from 'node:path';
import { compile, PASSES } from '../../compiler/passes.js';
import { report } from '../../compiler/report.js';
import { fusedOps, toDot, toSvg } from '../../compiler/svg.js';
import { target } from '../../compiler/target.js';
import { OPSET } from '../../ops/index.js';
import { modelGraph } from '../../runtime/model.js';
import { defaultModel, loadModelSource } from '../../runtime/node/load.js';
import { command } from '../command.js';
import { out } from '../common.js';

export default command({
  name: 'compile',
  summary: 'show how the model becomes kernels: fused IR, plan, WGSL, pictures',
  usage: `tapir compile [-m MODEL] [--svg FILE] [--ir FILE] [--wgsl DIR] [--no-fuse]
                     [--disable-rule NAME]... [--dump-after PASS] [--json]`,
  about: `Compiles the model without running it and reports what one decode step costs: dispatches (per
layer), weight bytes read, memory allocated.`,
  options: {
    svg: { kind: 'output', arg: 'FILE', help: 'the graph after fusion, kernels as clusters (FILE), and before (FILE with .before.svg)' },
    ir: { kind: 'output', arg: 'FILE', help: 'the fused graph as text (parses back with tapir\'s IR grammar)' },
    wgsl: { kind: 'output', arg: 'DIR', help: 'one .wgsl file per kernel, each naming the ops it fused' },
    'no-fuse': { kind: 'flag', help: 'compile without the fusion rules' },
    'disable-rule': { kind: 'string', arg: 'R', multiple: true, help: 'leave out one rule (repeatable): ${RULE_NAMES}' },
    'dump-after': { kind: 'string', arg: 'PASS', help: 'print the IR after a pass: ${PASS_NAMES}' },
  },
  fill: () => ({ RULE_NAMES: OPSET.rules.map((r) => r.name).join(', '), PASS_NAMES: PASSES.map((p) => p.name).join(', ') }),
  async run(o) {
    const file = o.model ?? defaultModel();
    const { graph } = modelGraph(loadModelSource(file, { tokenizer: o.tokenizer }), o.context);
    // no GPU needed: plan for WebGPU's default binding limit
    const opts = { fuse: !o['no-fuse'], disableRules: o['disable-rule'], dumpAfter: o['dump-after'] };
    const t = target({ maxBindingBytes: 128 << 20 });
    const c = compile(graph, OPSET, t, opts);
    const plan = c.plan!;
    const r = report(plan);
    if (o.ir !== undefined) fs.writeFileSync(o.ir, c.graph.toString());
    if (o.wgsl !== undefined) {
      fs.mkdirSync(o.wgsl, { recursive: true });
      for (const [name, code] of c.wgsl!) {
        const nodes = plan.dispatches.filter((d) => d.kernel === name).map((d) => d.node);
        const fused = [...new Set(nodes.map((n) => fusedOps(n).join(' + ')))].join('; ');
        fs.writeFileSync(path.join(o.wgsl, `${name.replace(/\+/g, '__')}.wgsl`), `// fuses: ${fused}\n${code}`);
      }
    }
    if (o.svg !== undefined) {
      const before = compile(graph, OPSET, t, { ...opts, fuse: false });
      fs.writeFileSync(o.svg, await toSvg(toDot(c.graph, plan, `${path.basename(file)}: ${r.dispatches} dispatches per token (${r.dispatchesPerLayer} per layer)`)));
      fs.writeFileSync(o.svg.replace(/(\.svg)?$/, '.before.svg'), await toSvg(toDot(before.graph, before.plan, `${path.basename(file)} before fusion: ${before.plan!.dispatches.length} dispatches per token`)));
    }
    if (c.dump) out(c.dump);
    if (o.json) out(JSON.stringify({ model: file, fused: !o['no-fuse'], rulesFired: c.fired, ...r }) + '\n');
    else if (!c.dump) {
      out(`${r.dispatches} dispatches per token (${r.dispatchesPerLayer} per layer, ${r.layers} layers), ${r.kernels.length} kernels\n`);
      for (const b of r.byPosition.slice(1)) out(`  from position ${b.from}: ${b.dispatches} dispatches per token (${b.dispatchesPerLayer} per layer)\n`);
      out(`weights read per token: ${(r.weightBytesPerToken / 2 ** 20).toFixed(2)} MiB; activations: ${r.activationBytes} B (${r.activationBytesWithoutReuse} B without buffer reuse)\n`);
      out(`rules fired: ${Object.entries(c.fired).map(([k, v]) => `${k}×${v}`).join(', ') || 'none'}\n`);
    }
  },
});
