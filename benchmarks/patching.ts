// Activation patching, reactive vs naive: a full (layers × positions) hook_resid_pre sweep on
// stories260K. Prints wall time, layer-steps (one layer at one position) and the weight bytes they
// read, and the ratios. Run: node --no-concurrent-recompilation dist/benchmarks/patching.js [--json]
import { Model } from '../runtime/model.js';
import { releaseGpu } from '../runtime/gpu.js';
import { defaultModel, loadModelSource } from '../runtime/node/load.js';
import { activationPatching, activationPatchingNaive } from '../runtime/interp/patching.js';

const model = await Model.create(loadModelSource(defaultModel()), { contextLength: 64 });
const tok = model.tokenizer;
const clean = tok.encode('Lily and Ben went to the park. Lily'), corrupt = tok.encode('Tim and Ben went to the park. Tim');
const o = { target: tok.idOf(' was')!, distractor: tok.idOf(' and')!, sites: ['resid_pre'] };
// bytes of weights one layer reads per position
const layerBytes = [...model.plan.buffers.values()].filter((b) => b.kind === 'weight' && /^w:blk\.0\./.test(b.id)).reduce((s, b) => s + b.bytes, 0);
await activationPatching(model, clean, corrupt, o); // warm the pipelines
let t0 = performance.now();
const fast = await activationPatching(model, clean, corrupt, o);
const fastMs = performance.now() - t0;
t0 = performance.now();
const slow = await activationPatchingNaive(model, clean, corrupt, o);
const slowMs = performance.now() - t0;
let worst = 0;
fast.sites[0]!.scores.forEach((row, l) => row.forEach((v, c) => (worst = Math.max(worst, Math.abs(v! - slow.sites[0]!.scores[l]![c]!)))));
const r = {
  model: model.file, positions: clean.length, layers: model.config.nLayers,
  reactive: { ms: +fastMs.toFixed(0), layerSteps: fast.work.layerSteps, weightBytes: fast.work.layerSteps * layerBytes },
  naive: { ms: +slowMs.toFixed(0), layerSteps: fast.work.naiveLayerSteps, weightBytes: fast.work.naiveLayerSteps * layerBytes },
  workRatio: +(fast.work.layerSteps / fast.work.naiveLayerSteps).toFixed(3), timeRatio: +(fastMs / slowMs).toFixed(3), maxScoreDifference: worst,
};
if (process.argv.includes('--json')) console.log(JSON.stringify(r));
else {
  console.log(`full resid_pre sweep, ${r.layers} layers × ${r.positions} positions (${r.model})`);
  console.log(`reactive: ${r.reactive.ms} ms, ${r.reactive.layerSteps} layer-steps (${(r.reactive.weightBytes / 2 ** 20).toFixed(1)} MiB of weights read)`);
  console.log(`naive:    ${r.naive.ms} ms, ${r.naive.layerSteps} layer-steps (${(r.naive.weightBytes / 2 ** 20).toFixed(1)} MiB)`);
  console.log(`work ratio ${r.workRatio}, time ratio ${r.timeRatio}; scores agree within ${worst.toExponential(1)}`);
}
model.dispose();
await releaseGpu();
process.exit(0);
