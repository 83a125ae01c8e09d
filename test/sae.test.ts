// Sparse autoencoders on the GPU against their float64 references: the forward pass, every gradient (the
// reference's gradients also against finite differences), Adam, and training that recovers a known
// sparse dictionary and resumes bit-identically.
import { describe, expect, it } from 'vitest';
import { randomSource, relErr } from './helpers/numeric.js';
import { getGpu } from '../runtime/gpu.js';
import { GpuSae, PARAMS, type SaeDims, type SaeTensors } from '../runtime/sae/gpu_sae.js';
import { initSae, saeReference } from '../runtime/sae/sae.js';
import { saeBackwardReference } from '../ops/sae_backward.js';
import { saeAuxReference } from '../ops/sae_encode.js';
import { adamReference } from '../ops/adam.js';
import { trainSae } from '../runtime/sae/train.js';
import { writeStoreFromRows } from '../runtime/sae/store.js';
import { Rng } from '../runtime/sampler.js';
import { loadSaeLens, saveSaeLens } from '../runtime/sae/files.js';
import { applySae } from '../runtime/sae/apply.js';
import { writeSafetensors } from '../runtime/formats/safetensors.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { GGUF } from './helpers/models.js';
import { saeSplicing } from '../runtime/sae/splice.js';
import { withSaes } from '../ops/sae_splice.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { Graph } from '../compiler/ir/graph.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TOL = 1e-5;
const rnd = randomSource();
const seedNote = `random seed ${rnd.seed}`;
const hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, l1: 0 };
const randomParams = (d: SaeDims): SaeTensors => ({ W_enc: rnd.normal(d.dIn * d.dSae, 0.3), b_enc: rnd.normal(d.dSae, 0.1), W_dec: rnd.normal(d.dSae * d.dIn, 0.3), b_dec: rnd.normal(d.dIn, 0.1) });
/** Central differences of `lossOf` at six random entries of each parameter equal `grads` (1e-5, relative past 1). */
function expectFiniteDifferences(p: SaeTensors, lossOf: (q: SaeTensors) => { loss: number }, grads: Record<(typeof PARAMS)[number], ArrayLike<number>>) {
  const h = 1e-6;
  for (const name of PARAMS)
    for (let trial = 0; trial < 6; trial++) {
      const n = Math.floor(rnd.uniform() * p[name].length);
      const up = { ...p, [name]: Float64Array.from(p[name]) } as unknown as SaeTensors, down = { ...p, [name]: Float64Array.from(p[name]) } as unknown as SaeTensors;
      up[name][n]! += h; down[name][n]! -= h;
      const fd = (lossOf(up).loss - lossOf(down).loss) / (2 * h);
      expect(Math.abs(fd - grads[name][n]!), `${name}[${n}] ${seedNote}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(fd)));
    }
}
const shapeOf = (d: SaeDims, rows: number) => ({ rows, dIn: d.dIn, dSae: d.dSae, arch: d.arch, k: d.k });

describe('SAE kernels match their float64 references', () => {
  const cases: [string, SaeDims, number][] = [['topk', { dIn: 24, dSae: 300, arch: 'topk', k: 7 }, 0], ['relu', { dIn: 24, dSae: 300, arch: 'relu', k: 0 }, 0], ['relu + L1', { dIn: 24, dSae: 300, arch: 'relu', k: 0 }, 0.3]];
  it.each(cases)('%s: forward, gradients and an Adam step', async (_, dims, l1) => {
    const rows = 37;
    const p = randomParams(dims), x = rnd.normal(rows * dims.dIn);
    const sae = new GpuSae(await getGpu(), dims, rows, { ...hyper, l1 }, p);
    try {
      const ref = saeReference(p, dims, x, rows);
      sae.trainStep(x, 1);
      expect(relErr(await sae.read('pre'), ref.pre), seedNote).toBeLessThanOrEqual(TOL);
      expect(relErr(await sae.read('acts'), ref.acts), seedNote).toBeLessThanOrEqual(TOL);
      expect(relErr(await sae.read('xHat'), ref.xHat), seedNote).toBeLessThanOrEqual(TOL);
      if (dims.arch === 'topk') {
        const chosen = new Uint32Array((await sae.read('chosen')).buffer, 0, rows * dims.k);
        expect([...chosen].sort((a, b) => a - b)).toEqual([...ref.chosen].sort((a, b) => a - b));
        for (let b = 0; b < rows; b++) expect((await sae.read('acts')).slice(b * dims.dSae, (b + 1) * dims.dSae).filter((v) => v !== 0).length).toBeLessThanOrEqual(dims.k);
      }
      const { grads } = saeBackwardReference(x, ref.acts, ref.xHat, { wEnc: p.W_enc, bEnc: p.b_enc, wDec: p.W_dec, bDec: p.b_dec }, shapeOf(dims, rows), l1);
      const byName = { W_enc: grads.wEnc, b_enc: grads.bEnc, W_dec: grads.wDec, b_dec: grads.bDec };
      for (const name of PARAMS) {
        const got = await sae.read(`${name}:grad`);
        expect(relErr(got, byName[name]), `${name} gradient, ${seedNote}`).toBeLessThanOrEqual(TOL);
        // Adam's first step from zero moments, on the GPU's gradient (TopK renormalises W_dec after it)
        if (dims.arch === 'topk' && name === 'W_dec') continue;
        const want = Float64Array.from(p[name]);
        adamReference(want, got, new Float64Array(want.length), new Float64Array(want.length), 1, hyper);
        expect(relErr(await sae.read(name), want), `${name} after Adam, ${seedNote}`).toBeLessThanOrEqual(TOL);
      }
    } finally {
      sae.destroy();
    }
  });

  it('aux-K: the dead latents reconstruct the error; their gradients and the selection match the reference', async () => {
    const dims: SaeDims = { dIn: 24, dSae: 300, arch: 'topk', k: 7 }, rows = 37, kAux = 12, alpha = 1 / 32;
    const p = randomParams(dims), x = rnd.normal(rows * dims.dIn);
    const since = Float32Array.from({ length: dims.dSae }, (_, j) => (j % 3 === 0 ? 1e6 : 10));
    const sae = new GpuSae(await getGpu(), dims, rows, { ...hyper, auxK: kAux, auxAlpha: alpha, deadWindow: 1000 }, p);
    try {
      sae.write('since', since);
      sae.trainStep(x, 1);
      const ref = saeReference(p, dims, x, rows);
      const actsAux = saeAuxReference(ref.pre, Array.from(since, (v) => v >= 1000), rows, dims.dSae, kAux);
      expect(relErr(await sae.read('actsAux'), actsAux), seedNote).toBeLessThanOrEqual(TOL);
      const { grads } = saeBackwardReference(x, ref.acts, ref.xHat, { wEnc: p.W_enc, bEnc: p.b_enc, wDec: p.W_dec, bDec: p.b_dec }, shapeOf(dims, rows), 0, { acts: actsAux, alpha });
      const byName = { W_enc: grads.wEnc, b_enc: grads.bEnc, W_dec: grads.wDec, b_dec: grads.bDec };
      for (const name of PARAMS) expect(relErr(await sae.read(`${name}:grad`), byName[name]), `${name} gradient, ${seedNote}`).toBeLessThanOrEqual(TOL);
      // tokens since each latent fired: reset where it fired in this batch, else + the batch
      const fired = Array.from({ length: dims.dSae }, (_, j) => Array.from({ length: rows }, (_, b) => ref.acts[b * dims.dSae + j]! > 0).some(Boolean));
      expect(Array.from(await sae.read('since')).slice(0, dims.dSae)).toEqual(fired.map((f, j) => (f ? 0 : since[j]! + rows)));
    } finally {
      sae.destroy();
    }
  });

  it('aux-K: the reference gradients equal finite differences (the error held constant)', () => {
    const dims: SaeDims = { dIn: 6, dSae: 20, arch: 'topk', k: 3 }, rows = 5, kAux = 4, alpha = 0.5;
    const p = randomParams(dims), x = rnd.normal(rows * dims.dIn);
    const dead = Array.from({ length: dims.dSae }, (_, j) => j % 2 === 0);
    const base = saeReference(p, dims, x, rows);
    const e = Float64Array.from(x, (v, n) => v - base.xHat[n]!);
    const lossOf = (q: SaeTensors) => {
      const f = saeReference(q, dims, x, rows);
      return saeBackwardReference(x, f.acts, f.xHat, { wEnc: q.W_enc, bEnc: q.b_enc, wDec: q.W_dec, bDec: q.b_dec }, shapeOf(dims, rows), 0,
        { acts: saeAuxReference(f.pre, dead, rows, dims.dSae, kAux), alpha, e });
    };
    const at = lossOf(p);
    const byName = { W_enc: at.grads.wEnc, b_enc: at.grads.bEnc, W_dec: at.grads.wDec, b_dec: at.grads.bDec };
    expectFiniteDifferences(p, lossOf, byName);
  });

  it.each([['topk', 0], ['relu', 0.2]] as const)('the reference gradients equal finite differences (%s, L1 %s)', (arch, l1) => {
    const dims: SaeDims = { dIn: 6, dSae: 20, arch, k: arch === 'topk' ? 3 : 0 };
    const rows = 5;
    const p = randomParams(dims), x = rnd.normal(rows * dims.dIn);
    const lossOf = (q: SaeTensors) => {
      const f = saeReference(q, dims, x, rows);
      return saeBackwardReference(x, f.acts, f.xHat, { wEnc: q.W_enc, bEnc: q.b_enc, wDec: q.W_dec, bDec: q.b_dec }, shapeOf(dims, rows), l1);
    };
    const at = lossOf(p);
    const byName = { W_enc: at.grads.wEnc, b_enc: at.grads.bEnc, W_dec: at.grads.wDec, b_dec: at.grads.bDec };
    expectFiniteDifferences(p, lossOf, byName);
  });
});

describe('SAE training', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-sae-'));
  // data drawn from a known sparse dictionary: 48 unit atoms in 16 dimensions, 3 active a row with
  // positive coefficients
  const dIn = 16, atoms = 48, active = 3;
  const rng = new Rng(11);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.f32())) * Math.cos(2 * Math.PI * rng.f32());
  const dict = new Float64Array(atoms * dIn).map(gauss);
  for (let a = 0; a < atoms; a++) { const n = Math.hypot(...dict.subarray(a * dIn, (a + 1) * dIn)); for (let i = 0; i < dIn; i++) dict[a * dIn + i]! /= n; }
  const rows = 12000, x = new Float32Array(rows * dIn);
  for (let r = 0; r < rows; r++)
    for (let t = 0; t < active; t++) {
      const a = rng.u32() % atoms, c = 0.5 + rng.f32();
      for (let i = 0; i < dIn; i++) x[r * dIn + i]! += c * dict[a * dIn + i]!;
    }
  const store = path.join(dir, 'store');
  writeStoreFromRows(store, x, dIn, { perShard: 1000 });
  const opts = (out: string, steps: number) => ({ store, out, arch: 'topk' as const, k: active, dSae: 96, steps, batch: 256, seed: 3,
    hyper: { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, l1: 0 }, checkpointEvery: 50, logEvery: 50, deadWindow: 5000 });

  it('recovers a known sparse dictionary: mean best cosine over the true atoms >= 0.9', async () => {
    const r = await trainSae(await getGpu(), opts(path.join(dir, 'a'), 1000));
    let sum = 0;
    for (let a = 0; a < atoms; a++) {
      let best = -1;
      for (let j = 0; j < r.dims.dSae; j++) {
        let dot = 0, nn = 0;
        for (let i = 0; i < dIn; i++) { dot += dict[a * dIn + i]! * r.params.W_dec[j * dIn + i]!; nn += r.params.W_dec[j * dIn + i]! ** 2; }
        best = Math.max(best, dot / Math.sqrt(nn));
      }
      sum += best;
    }
    const last = r.log[r.log.length - 1]!;
    expect(sum / atoms, JSON.stringify(last)).toBeGreaterThanOrEqual(0.9);
    expect(last.fvu).toBeLessThan(0.2); // (the dictionary, not the last batch's fit, is what this checks)
  });

  it('stopped and started again from its checkpoint, ends bit-identical to an uninterrupted run', async () => {
    const gpu = await getGpu();
    const whole = await trainSae(gpu, opts(path.join(dir, 'whole'), 200));
    const cut = path.join(dir, 'cut');
    const first = await trainSae(gpu, { ...opts(cut, 200), stopAfter: 120 }); // "killed" after step 120; last checkpoint at 100
    expect(first.step).toBe(120);
    const resumed = await trainSae(gpu, opts(cut, 200));
    for (const p of PARAMS) expect(Buffer.from(resumed.params[p].buffer).equals(Buffer.from(whole.params[p].buffer)), p).toBe(true);
    expect(resumed.log.map((l) => l.loss)).toEqual(whole.log.slice(2).map((l) => l.loss));
  });
});

describe('SAE files in SAELens layout', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-saelens-'));
  const dIn = 6, dSae = 10;
  const f32 = (n: number) => rnd.normal(n, 0.5);
  const tensors = { W_enc: f32(dIn * dSae), b_enc: f32(dSae), W_dec: f32(dSae * dIn), b_dec: f32(dIn) };
  const shapes = { W_enc: [dIn, dSae], b_enc: [dSae], W_dec: [dSae, dIn], b_dec: [dIn] };
  const fixture = (name: string, cfg: object, shapeOf = shapes) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    // hand-built: SAELens 6.x's cfg.json fields, tensors by its names (b_dec last, as torch would order them anyway)
    fs.writeFileSync(path.join(d, 'cfg.json'), JSON.stringify({ d_in: dIn, d_sae: dSae, dtype: 'float32', device: 'cpu', apply_b_dec_to_input: true, normalize_activations: 'none', reshape_activations: 'none', metadata: { hook_name: 'blocks.1.hook_resid_post', model_name: 'x' }, ...cfg }));
    fs.writeFileSync(path.join(d, 'sae_weights.safetensors'), writeSafetensors(PARAMS.map((n) => ({ name: n, dtype: 'f32' as const, shape: shapeOf[n], bytes: new Uint8Array(tensors[n].buffer) }))));
    return d;
  };

  it('a hand-built standard (ReLU) SAE loads and runs as its float64 reference says', async () => {
    const s = loadSaeLens(fixture('standard', { architecture: 'standard' }));
    expect(s.dims).toEqual({ dIn, dSae, arch: 'relu', k: 0 });
    expect(s.hook).toBe('blocks.1.hook_resid_post');
    const rows = 300, x = rnd.normal(rows * dIn);
    const got = await applySae(await getGpu(), s, x);
    expect(relErr(got, saeReference(tensors, s.dims, x, rows).xHat), seedNote).toBeLessThanOrEqual(TOL);
  });

  it('saved with an input scale, the scale is folded in: the file alone reconstructs unscaled inputs', async () => {
    const dims: SaeDims = { dIn, dSae, arch: 'topk', k: 3 };
    const scale = 2.5, out = path.join(dir, 'folded');
    saveSaeLens(out, { dims, params: tensors, inputScale: scale, hook: 'blocks.0.hook_resid_post' });
    const back = loadSaeLens(out);
    expect([back.dims.arch, back.dims.k, back.inputScale]).toEqual(['topk', 3, 1]);
    const rows = 50, x = rnd.normal(rows * dIn);
    const want = saeReference(tensors, dims, x.map((v) => v * scale), rows).xHat.map((v) => v / scale);
    expect(relErr(await applySae(await getGpu(), back, x), want), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each([
    ['a wrong shape', () => fixture('shape', { architecture: 'standard' }, { ...shapes, W_dec: [dIn, dSae] }), /W_dec' has shape/],
    ['an unsupported architecture', () => fixture('gated', { architecture: 'gated' }), /architecture 'gated' is not supported/],
    ['TopK without k', () => fixture('nok', { architecture: 'topk' }), /TopK needs an integer k/],
  ])('%s is a clear error', (_, make, msg) => {
    expect(() => loadSaeLens(make())).toThrow(msg);
  });
});

describe('an SAE spliced into the model at its hook', () => {
  it('replaces the hook by its reconstruction (or keeps it with the error term), with its latents as hooks', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 256 });
    try {
      const hook = 'blocks.2.hook_resid_post', dims: SaeDims = { dIn: 64, dSae: 128, arch: 'topk', k: 4 };
      const sae = { dims, params: randomParams(dims), inputScale: 1, hook };
      const tokens = model.tokenizer.encode('Once upon a time, there was a little girl named Lily.');
      const names = ['input', 'acts_pre', 'acts_post', 'recons', 'error', 'output'].map((h) => `${hook}.hook_sae_${h}`);
      const clean = await model.runWithCache(tokens, { hooks: hook });
      const r = await model.runWithHooks(tokens, { interventions: [], saes: [{ sae }], hooks: names });
      const x = clean.cache.get(hook)!.data;
      expect(relErr(r.cache.get(names[0]!)!.data, x)).toBeLessThanOrEqual(1e-6);
      const ref = saeReference(sae.params, dims, x, tokens.length);
      expect(relErr(r.cache.get(names[1]!)!.data, ref.pre), seedNote).toBeLessThanOrEqual(TOL);
      expect(relErr(r.cache.get(names[2]!)!.data, ref.acts), seedNote).toBeLessThanOrEqual(TOL);
      expect(relErr(r.cache.get(names[3]!)!.data, ref.xHat), seedNote).toBeLessThanOrEqual(TOL);
      expect(r.cache.get(names[2]!)!.shape).toEqual([1, tokens.length, 128]);
      // downstream runs on the reconstruction: the logits move, and equal a plain replacement's
      const replaced = await model.runWithHooks(tokens, { interventions: [{ hook, replace: Float32Array.from(ref.xHat) }] });
      expect(relErr(r.logits.flatMap((l) => [...l]), replaced.logits.flatMap((l) => [...l]))).toBeLessThanOrEqual(1e-4);
      expect(relErr(r.logits.flatMap((l) => [...l]), clean.logits.flatMap((l) => [...l]))).toBeGreaterThan(1e-3);
      // with the error term the hook's value is unchanged: so are the logits
      const kept = await model.runWithHooks(tokens, { interventions: [], saes: [{ sae, errorTerm: true }] });
      expect(relErr(kept.logits.flatMap((l) => [...l]), clean.logits.flatMap((l) => [...l]))).toBeLessThanOrEqual(1e-5);
      await expect(model.runWithHooks(tokens, { interventions: [], saes: [{ sae }], hooks: `${hook}.hook_sae_latents` })).rejects.toThrow(/unknown hook/);
      await expect(model.runWithHooks(tokens, { interventions: [], saes: [{ sae: { ...sae, hook: 'blocks.9.hook_resid_post' } }] })).rejects.toThrow(/not a hook of this model/);
    } finally {
      model.dispose();
    }
  });

  it('is ops of the graph: the float64 reference runs through the splice (ReLU, an input scale) and the GPU agrees with it', async () => {
    const src = loadModelSource(GGUF);
    const model = await Model.create(src, { contextLength: 256 });
    try {
      const hook = 'blocks.1.hook_resid_mid', dims: SaeDims = { dIn: 64, dSae: 96, arch: 'relu', k: 0 };
      const sae = { dims, params: randomParams(dims), inputScale: 1.75, hook };
      const tokens = model.tokenizer.encode('Lily saw a big dog.');
      const acts = `${hook}.hook_sae_acts_post`, recons = `${hook}.hook_sae_recons`;
      const r = await model.runWithHooks(tokens, { interventions: [], saes: [{ sae }], hooks: [acts, recons] });
      const { specs, tensors } = saeSplicing(model.graph, [{ sae }]);
      const g = withSaes(model.graph, specs);
      expect(g.nodes.some((n) => n.op.name === 'sae_encode') && g.nodes.some((n) => n.op.name === 'sae_decode')).toBe(true);
      const ref = new ReferenceRunner(new Graph({ logits: g.outputs.logits!, acts: g.hooks[acts]!.node, recons: g.hooks[recons]!.node }), new Map([...src.weights, ...tensors]));
      const want = { logits: [] as number[], acts: [] as number[], recons: [] as number[] };
      tokens.forEach((token, pos) => {
        const v = ref.step({ token, pos });
        for (const k of ['logits', 'acts', 'recons'] as const) want[k].push(...v.get(ref.graph.outputs[k]!)!);
      });
      expect(relErr(r.cache.get(acts)!.data, want.acts), seedNote).toBeLessThanOrEqual(TOL);
      expect(relErr(r.cache.get(recons)!.data, want.recons), seedNote).toBeLessThanOrEqual(TOL);
      expect(relErr(r.logits.flatMap((l) => [...l]), want.logits), seedNote).toBeLessThanOrEqual(1e-4);
      // the latents are the SAE's own (a plain applySae of the clean value, scaled) before anything downstream
      const clean = (await model.runWithCache(tokens, { hooks: hook })).cache.get(hook)!.data;
      const direct = saeReference(sae.params, dims, clean.map((v) => v * sae.inputScale), tokens.length);
      expect(relErr(r.cache.get(acts)!.data, direct.acts), seedNote).toBeLessThanOrEqual(TOL);
      await expect(model.runWithHooks(tokens, { interventions: [], saes: [{ sae }, { sae: { ...sae } }] })).rejects.toThrow(/one SAE a hook/);
      await expect(model.runWithHooks(tokens, { interventions: [], saes: [{ sae: { ...sae, dims: { ...dims, dIn: 32 } } }] })).rejects.toThrow(/reads 32 values/);
    } finally {
      model.dispose();
    }
  });
});
