// Every kernel against its op's float64 reference, on fresh random inputs, at sizes that are not
// multiples of the workgroup size. Error is norm-wise: ‖out − ref‖ / ‖ref‖ ≤ 1e-5 (f32).
import { describe, expect, it } from 'vitest';
import { randomSource, relErr } from './helpers/numeric.js';
import { runBoth } from './helpers/gpu.js';
import { weightOf } from '../runtime/weights.js';
import { llama3RopeFactors } from '../ops/rope_table.js';

const TOL = 1e-5;
const rnd = randomSource();
const seedNote = `random seed ${rnd.seed}`;

describe('kernels match their references', () => {
  it('relErr never lets NaN pass', () => {
    expect(relErr([1, NaN], [1, 2]) <= TOL).toBe(false);
    expect(relErr([1, 2], [1, NaN]) <= TOL).toBe(false);
  });

  it.each([[1, 7], [67, 131], [300, 64], [5, 1000]])('matvec %i x %i', async (rows, cols) => {
    const { out, ref } = await runBoth((o) => o.matvec(o.weight('w', [rows, cols]), o.weight('x', [cols])),
      { w: rnd.normal(rows * cols), x: rnd.normal(cols) }, {});
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it('matvec with the weight split across bindings', async () => {
    const rows = 100, cols = 37;
    const { out, ref, plan } = await runBoth((o) => o.matvec(o.weight('w', [rows, cols]), o.weight('x', [cols])),
      { w: rnd.normal(rows * cols), x: rnd.normal(cols) }, {}, { maxBindingBytes: 7 * cols * 4 + 5 });
    expect(plan.dispatches.filter((d) => d.kernel === 'matvecKernel').length).toBe(Math.ceil(rows / 7));
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each([[1], [100], [1000]])('rmsnorm n=%i', async (n) => {
    const { out, ref } = await runBoth((o) => o.rmsnorm(o.weight('x', [n]), o.weight('w', [n]), 1e-5), { x: rnd.normal(n, 3), w: rnd.normal(n) }, {});
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each([[true], [false]])('embedding (table split: %s)', async (split) => {
    const vocab = 77, dim = 70;
    const token = rnd.int(0, vocab);
    const { out, ref } = await runBoth((o) => o.embedding(o.weight('t', [vocab, dim]), o.input('token', [1])),
      { t: rnd.normal(vocab * dim) }, { token }, { maxBindingBytes: split ? 10 * dim * 4 : undefined });
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
    expect(Array.from(out)).toEqual(Array.from(ref).map(Math.fround));
  });

  it.each([[3, 10, 10], [5, 12, 6]])('rope: %i heads of %i, rotDim %i', async (heads, hs, rotDim) => {
    const pos = rnd.int(0, 90);
    const { out, ref } = await runBoth((o) => o.rope(o.weight('x', [heads * hs]), o.input('pos', [1]), o.ropeTable(97, rotDim, 10000), hs),
      { x: rnd.normal(heads * hs) }, { pos });
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it('kv_write writes one row in place', async () => {
    const ctx = 6, width = 37, pos = 4;
    const { out, ref } = await runBoth((o) => o.kvWrite(o.state('c', [ctx, width]), o.weight('x', [width]), o.input('pos', [1])),
      { x: rnd.normal(width) }, { pos });
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
    expect(out.slice(pos * width, (pos + 1) * width)).not.toContain(0);
  });

  it.each([[6, 2, 12, 0], [6, 2, 12, 66], [4, 4, 8, 129]])('attention: %i heads, %i kv heads, head size %i, pos %i', async (nHeads, nKvHeads, hs, pos) => {
    const ctx = 140, kvDim = nKvHeads * hs;
    const { out, ref } = await runBoth(
      (o) => o.attention(o.weight('q', [nHeads * hs]), o.weight('k', [ctx, kvDim]), o.weight('v', [ctx, kvDim]), o.input('pos', [1]), { nHeads, nKvHeads, headSize: hs }),
      { q: rnd.normal(nHeads * hs), k: rnd.normal(ctx * kvDim), v: rnd.normal(ctx * kvDim) }, { pos });
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each([[1], [130]])('add and silu_mul, n=%i', async (n) => {
    const a = rnd.normal(n, 4), b = rnd.normal(n);
    const sum = await runBoth((o) => o.add(o.weight('a', [n]), o.weight('b', [n])), { a, b }, {});
    expect(relErr(sum.out, sum.ref), seedNote).toBeLessThanOrEqual(TOL);
    const glu = await runBoth((o) => o.siluMul(o.weight('a', [n]), o.weight('b', [n])), { a, b }, {});
    expect(relErr(glu.out, glu.ref), seedNote).toBeLessThanOrEqual(TOL);
  });
});

describe('quantized weights are dequantized inside the kernels', () => {
  const dtypes = ['f16', 'bf16', 'q8_0', 'q4_0'] as const;
  it.each(dtypes)('matvec with %s weights matches the reference on the dequantized weights', async (dtype) => {
    const rows = 45, cols = 96; // cols: whole q8_0/q4_0 blocks, not a multiple of 64
    const w = weightOf([rows, cols], dtype, rnd.normal(rows * cols));
    const { out, ref } = await runBoth((o) => o.matvec(o.weight('w', [rows, cols], dtype), o.weight('x', [cols])), { w, x: rnd.normal(cols) }, {});
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each(dtypes)('matvec with %s weights split across bindings', async (dtype) => {
    const rows = 40, cols = 64;
    const w = weightOf([rows, cols], dtype, rnd.normal(rows * cols));
    const { out, ref, plan } = await runBoth((o) => o.matvec(o.weight('w', [rows, cols], dtype), o.weight('x', [cols])), { w, x: rnd.normal(cols) }, {}, { maxBindingBytes: 1000 });
    expect(plan.dispatches.length).toBeGreaterThan(1);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each(dtypes)('embedding with a %s table', async (dtype) => {
    const vocab = 50, dim = 96;
    const t = weightOf([vocab, dim], dtype, rnd.normal(vocab * dim));
    const { out, ref } = await runBoth((o) => o.embedding(o.weight('t', [vocab, dim], dtype), o.input('token', [1])), { t }, { token: rnd.int(0, vocab) }, { maxBindingBytes: 1200 });
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it('f16 rows of odd length', async () => {
    const rows = 9, cols = 33;
    const w = weightOf([rows, cols], 'f16', rnd.normal(rows * cols));
    const { out, ref } = await runBoth((o) => o.matvec(o.weight('w', [rows, cols], 'f16'), o.weight('x', [cols])), { w, x: rnd.normal(cols) }, {});
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });
});

describe('Llama 3 RoPE scaling', () => {
  const s = { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 };
  it('matches the HF formulation of scaled inverse frequencies', () => {
    const dim = 64, theta = 500000;
    const factors = llama3RopeFactors(s, dim, theta);
    for (let i = 0; i < dim / 2; i++) {
      // HF: inv_freq / factor for long wavelengths, unchanged for short, linear blend of the two between
      const inv = 1 / theta ** ((2 * i) / dim), wavelen = 2 * Math.PI / inv;
      const smooth = (8192 / wavelen - 1) / (4 - 1);
      const hf = wavelen < 8192 / 4 ? inv : wavelen > 8192 / 1 ? inv / 32 : (1 - smooth) * (inv / 32) + smooth * inv;
      expect(inv / factors[i]!).toBeCloseTo(hf, 12);
    }
    expect(factors[0]).toBe(1);
    expect(factors[31]).toBe(32);
  });

  it('the scaled table turns differently from the unscaled one at positions >= 256, and the kernel follows it', async () => {
    const heads = 2, hs = 32, theta = 500000;
    const factors = llama3RopeFactors(s, hs, theta);
    const x = rnd.normal(heads * hs);
    const pos = 300 + rnd.int(0, 200);
    const scaled = await runBoth((o) => o.rope(o.weight('x', [heads * hs]), o.input('pos', [1]), o.ropeTable(512, hs, theta, factors), hs), { x }, { pos });
    const plain = await runBoth((o) => o.rope(o.weight('x', [heads * hs]), o.input('pos', [1]), o.ropeTable(512, hs, theta), hs), { x }, { pos });
    expect(relErr(scaled.out, scaled.ref), seedNote).toBeLessThanOrEqual(TOL);
    expect(relErr(scaled.ref, plain.ref)).toBeGreaterThan(1e-3);
  });
});

describe('GPU errors are not silent', () => {
  it('a kernel WebGPU rejects fails the plan that uses it', async () => {
    const { checked, getGpu } = await import('../runtime/gpu.js');
    const { pipelineFor } = await import('../runtime/executor.js');
    const gpu = await getGpu();
    // a constant that WGSL refuses to fold (−∞): the module does not compile
    const bad = { name: 'badKernel', source: 'test', workgroupSize: 64, shared: [], params: [{ kind: 'out' as const, name: 'o', elem: 'f32' as const }],
      body: [{ k: 'assign' as const, op: '=' as const, target: { k: 'index' as const, array: 'o', index: { k: 'lit' as const, text: '0', ty: 'u32' as const }, ty: 'f32' as const },
        value: { k: 'call' as const, fn: 'bitcastF32', args: [{ k: 'lit' as const, text: '0xff800000', ty: 'u32' as const }], ty: 'f32' as const } }] };
    const before = gpu.modules.length;
    try {
      await expect(checked(gpu, () => pipelineFor(gpu, bad))).rejects.toThrow(/WebGPU rejected what tapir built/);
    } finally {
      // a hand-built kernel must not stay in the shared context (the provenance test checks every module)
      for (const code of gpu.modules.splice(before)) {
        gpu.shaderModules.delete(code);
        for (const key of [...gpu.pipelines.keys()]) if (key.startsWith(code)) gpu.pipelines.delete(key);
      }
    }
  });
});
