// Runs fuzz cases for one format, reporting each before and after it runs (the parent's watchdog
// uses these to find hangs; the worker's heap limit turns a runaway allocation into an OOM report).
import { parentPort, workerData } from 'node:worker_threads';
import { makeTarget, rng, type Format } from './fuzz_targets.js';

const { format, start, end, seed } = workerData as { format: Format; start: number; end: number; seed: number };
const target = makeTarget(format);
parentPort!.postMessage({ i: start, phase: 'ready' });
for (let i = start; i < end; i++) {
  parentPort!.postMessage({ i, phase: 'start' });
  const t0 = performance.now();
  try {
    const outcome = target.run(rng(seed * 1_000_003 + i));
    parentPort!.postMessage({ i, phase: 'done', outcome, ms: performance.now() - t0 });
  } catch (e) {
    parentPort!.postMessage({ i, phase: 'done', outcome: 'crash', ms: performance.now() - t0, error: String((e as Error)?.stack ?? e).split('\n').slice(0, 4).join(' | ') });
  }
}
