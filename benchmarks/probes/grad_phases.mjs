// Why grad128 and cache128 alternate between two times (run 2026-12-07-h100-l: 29 / 41 ms by turns):
// each call's time beside the time inside Executor.run and in mapAsync, and the garbage collections
// during it, in three modes (back to back; a forced collection before each; 30 ms of idle before each).
// On the GPU machine, after `gpu-machine.sh quick` (or interp --prepare) left /tmp/tapir and /tmp/interp:
//   cp benchmarks/probes/grad_phases.mjs /tmp/tapir/ && (cd /tmp/tapir && ./node --no-concurrent-recompilation --expose-gc grad_phases.mjs)
import { PerformanceObserver } from 'node:perf_hooks';
import { Model } from '/tmp/tapir/dist/runtime/model.js';
import { Executor } from '/tmp/tapir/dist/runtime/executor.js';
import { releaseGpu } from '/tmp/tapir/dist/runtime/gpu.js';
import { loadModelSource } from '/tmp/tapir/dist/runtime/node/load.js';
const gcs = [];
new PerformanceObserver((l) => { for (const e of l.getEntries()) gcs.push({ t: e.startTime, ms: e.duration, kind: e.detail?.kind }); }).observe({ entryTypes: ['gc'] });
const model = await Model.create(loadModelSource('/tmp/interp/model.gguf'));
const V = model.config.vocabSize;
let seed = 12345; const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % V);
const prompt = (n) => [model.tokenizer.vocab.bos, ...Array.from({ length: n - 1 }, rand)];
const p128 = prompt(128);
let exMs = 0, mapMs = 0;
const run0 = Executor.prototype.run;
Executor.prototype.run = async function (...a) { const t = performance.now(); try { return await run0.apply(this, a); } finally { exMs += performance.now() - t; } };
const probe = model.executor.gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const proto = Object.getPrototypeOf(probe); const map0 = proto.mapAsync;
proto.mapAsync = async function (...a) { const t = performance.now(); try { return await map0.apply(this, a); } finally { mapMs += performance.now() - t; } };
const work = {
  grad128: () => model.runWithGradients(p128, { target: 1234, distractor: 5678, hooks: 'blocks.*.hook_resid_pre' }),
  cache128: () => model.runWithHooks(p128, { interventions: [], hooks: 'blocks.*.hook_resid_post', logits: 'none' }),
};
const out = {};
for (const mode of ['plain', 'gc', 'sleep']) for (const [name, f] of Object.entries(work)) {
  const rows = [];
  for (let i = 0; i < 14; i++) {
    if (mode === 'gc') global.gc();
    if (mode === 'sleep') await new Promise((r) => setTimeout(r, 30));
    exMs = 0; mapMs = 0; gcs.length = 0;
    const t0 = performance.now(); await f(); const ms = performance.now() - t0;
    await new Promise((r) => setImmediate(r));
    rows.push({ ms: +ms.toFixed(2), ex: +exMs.toFixed(2), map: +mapMs.toFixed(2), gc: gcs.map((g) => `${g.kind}:${g.ms.toFixed(1)}`).join(' ') });
  }
  out[`${name}/${mode}`] = rows;
  console.error(name, mode, rows.map((r) => `${r.ms}(${r.ex},${r.map})[${r.gc}]`).join(' '));
}
console.log(JSON.stringify(out));
await releaseGpu();
