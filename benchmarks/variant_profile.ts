// What making a plan variant costs on a warm process (GPU machine): the graph built, compiled, and its
// executor created, each timed, for a few prompt lengths; run under --cpu-prof to see inside.
//   node --no-concurrent-recompilation [--cpu-prof --cpu-prof-dir=D] dist/benchmarks/variant_profile.js --out DIR   (DIR/model.gguf)
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Model, dtypesOf } from '../runtime/model.js';
import { releaseGpu } from '../runtime/gpu.js';
import { loadModelSource } from '../runtime/node/load.js';
import { compile } from '../compiler/passes.js';
import { OPSET } from '../ops/index.js';
import { llama } from '../models/llama.js';
import { Executor } from '../runtime/executor.js';

const { values: a } = parseArgs({ options: { out: { type: 'string', default: '/tmp/tapir-interp' } } });
const src = loadModelSource(path.join(a.out!, 'model.gguf'));
const l0 = performance.now();
const model = await Model.create(src);
const l1 = performance.now();
await model.executor.gpu.device.queue.onSubmittedWorkDone();
console.log(JSON.stringify({ load_ms: +(l1 - l0).toFixed(1), upload_tail_ms: +(performance.now() - l1).toFixed(1) }));
const taps = Array.from({ length: model.config.nLayers }, (_, l) => `blocks.${l}.hook_resid_post`);
const rows: Record<string, number>[] = [];
for (const positions of [77, 78, 79, 80, 81, 82]) {
  const t0 = performance.now();
  const graph = llama(model.config, dtypesOf(src.weights), { positions, head: 'last' });
  const t1 = performance.now();
  const plan = compile(graph, OPSET, model['target'], { taps }).plan!;
  const t2 = performance.now();
  const ex = await Executor.create(model.executor.gpu, plan, src.weights, model.executor);
  const t3 = performance.now(); // (ex is kept: the next variants borrow its arena buffers)
  await model.executor.gpu.device.queue.onSubmittedWorkDone();
  const t4 = performance.now();
  rows.push({ positions, build: t1 - t0, compile: t2 - t1, executor: t3 - t2, drain: t4 - t3, dispatches: plan.dispatches.length, buffers: plan.buffers.size });
}
console.log(JSON.stringify(rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, +v.toFixed(1)])))));
model.dispose();
await releaseGpu();
