// Where loading time goes, and what creating ahead the pipelines a workload needs costs (GPU machine):
// the file's header, the tokenizer, compiling, pipelines, weight upload; then the pipelines of the
// workloads' plan variants created one by one, and side by side (createComputePipelineAsync).
//   node --no-concurrent-recompilation dist/benchmarks/load_profile.js --out DIR   (DIR/model.gguf)
import { parseArgs } from 'node:util';
import path from 'node:path';
import { loadModelSource } from '../runtime/node/load.js';
import { modelGraph } from '../runtime/model.js';
import { makeTokenizer } from '../runtime/tokenizer.js';
import { compile } from '../compiler/passes.js';
import { OPSET } from '../ops/index.js';
import { getGpu, releaseGpu, targetOf } from '../runtime/gpu.js';
import { Executor } from '../runtime/executor.js';
import { pipelineFor, planPipelines, preparePipelines } from '../runtime/pipelines.js';
import { lensHead, llama } from '../models/llama.js';
import { interventions } from '../ops/intervene.js';
import { dtypesOf } from '../runtime/model.js';

const { values: a } = parseArgs({ options: { out: { type: 'string', default: '/tmp/tapir-interp' }, parallel: { type: 'boolean' } } });
let t = performance.now();
const laps: Record<string, number> = {};
const lap = (s: string) => { const n = performance.now(); laps[s] = +(n - t).toFixed(1); t = n; };
const gpu = await getGpu(); lap('gpu');
const src = loadModelSource(path.join(a.out!, 'model.gguf')); lap('header');
const { config, graph } = modelGraph(src); lap('graph');
makeTokenizer(src.vocab); lap('tokenizer');
const target = targetOf(gpu);
const plan = compile(graph, OPSET, target).plan!; lap('compile');
await preparePipelines(gpu, planPipelines(plan)); lap('decode pipelines');
const ex = await Executor.create(gpu, plan, src.weights); lap('upload');
await gpu.device.queue.onSubmittedWorkDone(); lap('upload done');
// the workloads' variants
const dt = dtypesOf(src.weights);
const hooks = Array.from({ length: config.nLayers }, (_, l) => `blocks.${l}.hook_resid_post`);
const graphs = [
  llama(config, dt, { positions: 128, head: 'last' }), llama(config, dt, { positions: 16, head: 'last' }),
  llama(config, dt, { positions: 1, startLayer: 1, batch: 16, head: 'last', pick: 2 }),
  lensHead(config, dt, { layers: config.nLayers, positions: 16, top: 5 }),
];
const plans = graphs.map((g, i) => compile(g, OPSET, target, i < 2 ? { taps: hooks } : i === 2 ? { edits: [interventions([{ hook: 'blocks.1.hook_resid_pre', rows: 16 }])] } : {}).plan!); lap('variants compile');
const wanted = plans.flatMap(planPipelines);
const before = gpu.pipelines.size;
if (a.parallel) await preparePipelines(gpu, wanted);
else for (const w of wanted) pipelineFor(gpu, w.kernel, w.values);
lap(a.parallel ? 'variant pipelines (async, side by side)' : 'variant pipelines (one by one)');
// uploading the same weights two ways: read from the file into each buffer's mapping at creation (what
// the executor does), or into one host buffer and queue.writeBuffer
const specs = [...plan.buffers.values()].filter((b) => b.weight);
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
const made: GPUBuffer[] = [];
for (const b of specs) {
  const w = src.weights.get(b.weight!.name)!;
  const buf = gpu.device.createBuffer({ size: Math.ceil(b.bytes / 4) * 4, usage, mappedAtCreation: true });
  w.readRowsInto!(b.weight!.rowStart, b.weight!.rows, new Uint8Array(buf.getMappedRange(), 0, b.bytes));
  buf.unmap();
  made.push(buf);
}
await gpu.device.queue.onSubmittedWorkDone(); lap('upload again: mapped at creation');
const host = new Uint8Array(Math.max(...specs.map((b) => b.bytes)));
for (const b of specs) {
  const w = src.weights.get(b.weight!.name)!;
  const buf = gpu.device.createBuffer({ size: Math.ceil(b.bytes / 4) * 4, usage });
  w.readRowsInto!(b.weight!.rowStart, b.weight!.rows, host.subarray(0, b.bytes));
  gpu.device.queue.writeBuffer(buf, 0, host, 0, b.bytes);
  made.push(buf);
}
await gpu.device.queue.onSubmittedWorkDone(); lap('upload again: one host buffer, writeBuffer');
for (const b of specs) src.weights.get(b.weight!.name)!.readRowsInto!(b.weight!.rowStart, b.weight!.rows, host.subarray(0, b.bytes));
lap('file read alone');
made.forEach((b) => b.destroy());
console.log(JSON.stringify({ laps, newPipelines: gpu.pipelines.size - before, decodePipelines: before }));
ex.destroy();
await releaseGpu();
process.exit(0);
