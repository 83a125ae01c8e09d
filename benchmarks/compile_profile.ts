// Where compiling a plan variant's time goes (CPU only): the 1B-shape graph built, then each pass timed.
//   node --no-concurrent-recompilation dist/benchmarks/compile_profile.js [--preset P] [--positions N]
import { parseArgs } from 'node:util';
import { llama } from '../models/llama.js';
import { PASSES } from '../compiler/passes.js';
import { OPSET } from '../ops/index.js';
import { synthModel } from '../runtime/synth/synth.js';

const { values: a } = parseArgs({ options: { preset: { type: 'string', default: 'llama-3.2-1b' }, positions: { type: 'string', default: '128' }, repeat: { type: 'string', default: '5' } } });
const config = { ...synthModel(a.preset!, 'f16').config, contextLength: 4096 };
const dt = () => 'f16' as const;
const hooks = Array.from({ length: config.nLayers }, (_, l) => `blocks.${l}.hook_resid_post`);
const target = { maxBindingBytes: 2 ** 31 - 4, maxStorageBuffers: 10, subgroups: true };
for (let r = 0; r < Number(a.repeat); r++) {
  const laps: Record<string, number> = {};
  let t = performance.now();
  const graph = llama(config, dt, { positions: Number(a.positions), head: 'last' });
  laps.build = performance.now() - t;
  let s = { graph, fired: {} } as never as Parameters<(typeof PASSES)[number]['run']>[0];
  for (const p of PASSES) {
    t = performance.now();
    s = p.run(s, { opset: OPSET, target, o: { taps: hooks } });
    laps[p.name] = performance.now() - t;
  }
  console.log(Object.entries(laps).map(([k, v]) => `${k} ${v.toFixed(1)}`).join('  '), ` nodes ${graph.nodes.length}`);
}
