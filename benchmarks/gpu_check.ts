// The new interpretability kernels checked on the GPU machine (CI has no GPU): on stories260K, the lens's
// GPU reductions against ops/lens_stats.ts's float64 reference applied to the same lens logits; batched
// patching against one site a pass (to the bit) and against the naive sweep (1e-5); the backward kernels'
// gradients at hooks against the float64 reference of the same backward (1e-4). Prints JSON; exit 1
// if a check fails.   node --no-concurrent-recompilation dist/benchmarks/gpu_check.js MODEL.gguf
import { Model } from '../runtime/model.js';
import { releaseGpu } from '../runtime/gpu.js';
import { loadModelSource } from '../runtime/node/load.js';
import { logitLens } from '../runtime/interp/lens.js';
import { activationPatching, activationPatchingNaive } from '../runtime/interp/patching.js';
import { lensStats } from '../ops/lens_stats.js';
import { gradientGraph } from '../runtime/interp/gradients.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { relErr } from '../test/helpers/numeric.js';
import { type WeightMap, weightOf, weightRows } from '../runtime/weights.js';

const model = await Model.create(loadModelSource(process.argv[2]!), { contextLength: 64 });
const tok = model.tokenizer, V = model.config.vocabSize, L = model.config.nLayers;
const out: Record<string, unknown> = { device: model.executor.gpu.adapterInfo };
let ok = true;
{
  const tokens = tok.encode('Once upon a time, there was a little girl named');
  const target = tok.idOf(' Lily')!, top = 5, n = tokens.length;
  const r = await logitLens(model, tokens, { target, top, logits: true });
  const z = new Float64Array(L * n * V);
  r.logits!.forEach((layer, l) => layer.forEach((row, p) => z.set(row, (l * n + p) * V)));
  const ref = lensStats.reference([z, Float64Array.of(target)], { layers: L, top }, { srcs: [[L * n, V], [1]], out: [L * n, 3 + 2 * top] });
  let worstProb = 0, worstKl = 0, idsOff = 0;
  r.layers.forEach((layer, l) => layer.cells.forEach((c, p) => {
    const f = ref.subarray((l * n + p) * (3 + 2 * top));
    if (c.target!.rank !== f[1] || c.top.some((t, j) => t.id !== f[3 + j])) idsOff++;
    worstProb = Math.max(worstProb, Math.abs(c.target!.prob - f[2]!) / Math.max(f[2]!, 1e-3), ...c.top.map((t, j) => Math.abs(t.prob - f[3 + top + j]!) / Math.max(f[3 + top + j]!, 1e-3)));
    worstKl = Math.max(worstKl, Math.abs(c.kl - f[0]!) / Math.max(1, f[0]!));
  }));
  const pass = idsOff === 0 && worstProb <= 1e-5 && worstKl <= 1e-5;
  out.lens = { cells: L * n, cellsWithOtherTokensOrRank: idsOff, worstProbabilityError: worstProb, worstKlError: worstKl, pass };
  ok &&= pass;
}
{
  const clean = tok.encode('Lily and Ben went to the park. Lily'), corrupt = tok.encode('Tim and Ben went to the park. Tim');
  const o = { target: tok.idOf(' and')!, distractor: tok.idOf(' was')!, sites: ['resid_pre', 'z'] };
  const [batched, single, naive] = [await activationPatching(model, clean, corrupt, o), await activationPatching(model, clean, corrupt, { ...o, rows: 1 }), await activationPatchingNaive(model, clean, corrupt, o)];
  const same = batched.sites.every((s, i) => JSON.stringify(s.effects) === JSON.stringify(single.sites[i]!.effects));
  let worst = 0;
  batched.sites.forEach((s, i) => s.scores.forEach((row, l) => row.forEach((v, c) => (worst = Math.max(worst, Math.abs(v! - naive.sites[i]!.scores[l]![c]!))))));
  const pass = same && worst <= 1e-5;
  out.patching = { sites: batched.sites.reduce((k, s) => k + s.scores.flat().length, 0), batchedEqualsOneSiteAPassBitwise: same, worstScoreVsNaive: worst, pass };
  ok &&= pass;
}
{
  const src = loadModelSource(process.argv[2]!);
  const tokens = tok.encode('Once upon a time, there was a little girl named'), [target, distractor] = [tok.idOf(' Lily')!, tok.idOf(' Tim')!];
  const hooks = ['hook_embed', ...Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`), 'blocks.1.attn.hook_z', 'blocks.2.mlp.hook_post'];
  const r = await model.runWithGradients(tokens, { target, distractor, hooks });
  const ref = new ReferenceRunner(gradientGraph({ ...src.config, contextLength: 64 }, (n) => src.weights.get(n)?.dtype ?? 'f32', tokens.length, hooks), src.weights);
  const values = ref.step({ token: tokens, pos: 0, ids: [target, distractor] });
  const errs = hooks.map((h) => relErr(r.grads.get(h)!.data, values.get(ref.graph.outputs[`grad:${h}`]!)!));
  const pass = errs.every((e) => e <= 1e-4);
  out.gradients = { hooks: hooks.length, worstRelErr: Math.max(...errs), pass };
  ok &&= pass;
  // the same with every matrix stored as f16, where the device has subgroup matrices: the forward's and
  // the backward's products on the tensor cores (f16-rounded activations and gradients, f32 sums),
  // against the float64 backward of the same f16 weights. Tolerance 2e-2 (vector norm): each product on
  // the way from the metric to a hook (≤ ~25 here) rounds its inputs to f16 (2^-11 each, 2^-10 a
  // product), and cancellation in a sum can magnify a product's relative error several times.
  if (model.executor.gpu.matrices.ok) {
    const half: WeightMap = new Map([...src.weights].map(([n, w]) => [n, w.shape.length === 2 && w.dtype === 'f32' ? weightOf(w.shape, 'f16', new Float32Array(weightRows(w, 0, w.shape[0]!).slice().buffer)) : w]));
    const m16 = await Model.create({ ...src, weights: half }, { contextLength: 64 });
    try {
      const r16 = await m16.runWithGradients(tokens, { target, distractor, hooks });
      const ref16 = new ReferenceRunner(gradientGraph({ ...src.config, contextLength: 64 }, (n) => half.get(n)?.dtype ?? 'f32', tokens.length, hooks), half);
      const v16 = ref16.step({ token: tokens, pos: 0, ids: [target, distractor] });
      const e16 = hooks.map((h) => relErr(r16.grads.get(h)!.data, v16.get(ref16.graph.outputs[`grad:${h}`]!)!));
      const pass16 = e16.every((e) => e <= 2e-2);
      out.gradients_f16 = { hooks: hooks.length, worstRelErr: Math.max(...e16), relErrs: e16, pass: pass16 };
      ok &&= pass16;
    } finally { m16.dispose(); }
  }
}
console.log(JSON.stringify(out));
model.dispose();
await releaseGpu();
process.exit(ok ? 0 : 1);
