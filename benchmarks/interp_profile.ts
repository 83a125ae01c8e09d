// Where the interpretability workloads' time goes (benchmarks/interp.ts's, on its model file): for each,
// the host's preparation, the GPU's work (queue drained), the read-back, and the GPU time of each kernel
// of its main pass (every dispatch timed alone). For the GPU machine; prints JSON.
//   node --no-concurrent-recompilation dist/benchmarks/interp_profile.js --out DIR
import { parseArgs } from 'node:util';
import path from 'node:path';
import { Model } from '../runtime/model.js';
import { releaseGpu } from '../runtime/gpu.js';
import { loadModelSource } from '../runtime/node/load.js';
import { preparedRun, submitRun } from '../runtime/interp/run.js';
import { logitLens } from '../runtime/interp/lens.js';
import type { Executor } from '../runtime/executor.js';

const { values: a } = parseArgs({ options: { out: { type: 'string', default: '/tmp/tapir-interp' } } });
const model = await Model.create(loadModelSource(path.join(a.out!, 'model.gguf')));
const d = model.executor.gpu.device, V = model.config.vocabSize;
let seed = 7;
const prompt = (n: number) => [model.tokenizer.vocab.bos, ...Array.from({ length: n - 1 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) % V))];
const ms = (t: number) => +(performance.now() - t).toFixed(2);
const top = async (ex: Executor, inputs: Record<string, number | Int32Array | Float32Array>) => {
  const p = await ex.profile(inputs);
  if (!p) return undefined;
  const all = [...p.entries()].sort((x, y) => y[1].ns - x[1].ns);
  return { total_ms: +(all.reduce((s, [, v]) => s + v.ns, 0) / 1e6).toFixed(2), kernels: all.slice(0, 8).map(([k, v]) => `${k} x${v.count}: ${(v.ns / 1e6).toFixed(2)} ms`) };
};
const out: Record<string, unknown> = { device: model.executor.gpu.adapterInfo, bindingBytes: model.bindingBytes, blockSize: model.blockSize };

for (const [name, prompts] of [['cache128', [prompt(128)]], ['cache8x128', Array.from({ length: 8 }, () => prompt(128))], ['prefill16', [prompt(16)]], ['prefill512', [prompt(512)]]] as const) {
  const phases: unknown[] = [];
  for (let k = 0; k < 4; k++) {
    const t0 = performance.now();
    const run = await preparedRun(model, prompts, { interventions: [], hooks: 'blocks.*.hook_resid_post', head: 'last' });
    const prep = ms(t0);
    const t1 = performance.now();
    submitRun(prompts, run, () => []);
    const submit = ms(t1);
    const t2 = performance.now();
    await d.queue.onSubmittedWorkDone();
    const gpu = ms(t2);
    const t3 = performance.now();
    await model.runBatchWithHooks(prompts, { interventions: [], hooks: 'blocks.*.hook_resid_post', logits: 'none' });
    phases.push({ prep, submit, gpu, whole: ms(t3) });
  }
  const run = await preparedRun(model, prompts, { interventions: [], hooks: 'blocks.*.hook_resid_post', head: 'last' });
  const b = run.blocks[0]!;
  out[name] = { blocks: run.blocks.length, phases, profile: await top(b.ex, { token: Int32Array.from(prompts.flatMap((p) => p.slice(0, b.len))), pos: 0 }) };
}
{
  const p16 = prompt(16);
  const times: number[] = [];
  const phases: Record<string, number>[] = [];
  for (let k = 0; k < 4; k++) {
    const t = performance.now(), timings: Record<string, number> = {};
    await logitLens(model, p16, { target: 5, top: 5, timings }); // (each phase's ms: runtime/interp/lens.ts)
    times.push(ms(t));
    phases.push(timings);
  }
  const head = await model.lensExecutor(model.config.nLayers, 16, 5);
  out.lens16 = { times, phases, head: await top(head, { target: Int32Array.of(5) }) };
}
{
  // one patched batch: 4 sequences from position 8 of a 16-token prompt, layer 0
  const t = prompt(16), n = 16, size = model.config.dim;
  const resid = new Float32Array(n * size);
  const r = { layer: 0, from: 8, batch: 8, hook: 'blocks.0.hook_resid_pre', a: new Float32Array(8 * n * size).fill(1), b: new Float32Array(8 * n * size), ids: Int32Array.of(1, 2), tokens: t, resid };
  await model.runWithCache(t, { hooks: 'blocks.0.hook_resid_pre', logits: 'last' });
  const times: number[] = [];
  for (let k = 0; k < 4; k++) { const s = performance.now(); await model.patchedRuns(r); times.push(ms(s)); }
  const ex = await model.variant({ interventions: [{ hook: r.hook, rows: n }], startLayer: 0, positions: 8, batch: 8, head: 'last', pick: 2 });
  out.patch_batch = { times, profile: await top(ex, { token: new Int32Array(64), pos: 8, pick: r.ids }) };
}
{
  // reading back: a MAP_READ buffer filled on the GPU, mapped, copied out
  const r: Record<string, unknown> = {};
  for (const mb of [16, 128]) {
    const bytes = mb << 20;
    const src = d.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const dst = d.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const times: unknown[] = [];
    for (let k = 0; k < 3; k++) {
      const enc = d.createCommandEncoder();
      enc.copyBufferToBuffer(src, 0, dst, 0, bytes);
      d.queue.submit([enc.finish()]);
      const t0 = performance.now();
      await dst.mapAsync(GPUMapMode.READ);
      const map = ms(t0);
      const t1 = performance.now();
      const copy = new Float32Array(dst.getMappedRange()).slice(0);
      const slice = ms(t1);
      dst.unmap();
      const t2 = performance.now();
      copy.slice(0);
      times.push({ map, copyOut: slice, jsCopy: ms(t2) });
    }
    r[`${mb}MiB`] = times;
    // what a hooked run pays: a fresh staging buffer each time (created, filled, mapped), copied into an
    // array touched beforehand (runtime/interp/run.ts makes its arrays while the GPU runs)
    const fresh: unknown[] = [];
    for (let k = 0; k < 3; k++) {
      const t0 = performance.now();
      const tmp = d.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const create = ms(t0);
      const enc = d.createCommandEncoder();
      enc.copyBufferToBuffer(src, 0, tmp, 0, bytes);
      d.queue.submit([enc.finish()]);
      const t1 = performance.now();
      const into = new Float32Array(bytes / 4).fill(0);
      const touch = ms(t1);
      const t2 = performance.now();
      await tmp.mapAsync(GPUMapMode.READ);
      const map = ms(t2);
      const t3 = performance.now();
      into.set(new Float32Array(tmp.getMappedRange()));
      const copyInto = ms(t3);
      const t4 = performance.now();
      tmp.destroy();
      fresh.push({ create, touch, map, copyInto, destroy: ms(t4) });
    }
    r[`${mb}MiB_fresh_staging`] = fresh;
    src.destroy();
    dst.destroy();
  }
  out.readback = r;
}
{
  // what awaiting the GPU costs by itself: onSubmittedWorkDone on an idle queue, and mapping a small
  // buffer right after a copy into it (dawn.node resolves both as it processes its events)
  const idle: number[] = [], map: number[] = [], afterWork: number[] = [];
  for (let k = 0; k < 5; k++) { const t = performance.now(); await d.queue.onSubmittedWorkDone(); idle.push(ms(t)); }
  const src = d.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const dst = d.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  for (let k = 0; k < 5; k++) {
    const enc = d.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, dst, 0, 256);
    d.queue.submit([enc.finish()]);
    const t = performance.now();
    await dst.mapAsync(GPUMapMode.READ);
    map.push(ms(t));
    dst.unmap();
  }
  // a 16-token prefill submitted, then its completion awaited twice (the second wait has nothing to wait for)
  for (let k = 0; k < 3; k++) {
    const run = await preparedRun(model, [prompt(16)], { interventions: [], hooks: [], head: 'last' });
    submitRun([prompt(16)], run, () => []);
    await d.queue.onSubmittedWorkDone();
    const t = performance.now();
    await d.queue.onSubmittedWorkDone();
    afterWork.push(ms(t));
  }
  out.waits = { idleOnSubmittedWorkDone: idle, smallMapAsync: map, secondWaitAfterWork: afterWork };
  src.destroy();
  dst.destroy();
}
{
  // a block of at most 32 positions (matmulSmallKernel) and one of 40 (matmulKernel) give the same bits
  const p40 = prompt(40);
  const hook = `blocks.${model.config.nLayers - 1}.hook_resid_post`;
  const big = (await model.runWithCache(p40, { hooks: hook, logits: 'none' })).cache.get(hook)!.data;
  const small = (await model.runWithCache(p40.slice(0, 20), { hooks: hook, logits: 'none' })).cache.get(hook)!.data;
  let diff = 0;
  for (let i = 0; i < small.length; i++) if (small[i] !== big[i]) diff++;
  out.blockInvariance = { compared: small.length, differing: diff };
}
console.log(JSON.stringify(out, null, 1));
model.dispose();
await releaseGpu();
process.exit(0);
