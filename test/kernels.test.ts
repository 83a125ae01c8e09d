// Every kernel against its op's float64 reference, on fresh random inputs, at sizes that are not
// multiples of the workgroup size. Error is norm-wise: ‖out − ref‖ / ‖ref‖ ≤ 1e-5 (f32).
import { describe, expect, it } from 'vitest';
import { randomSource, relErr } from './helpers/numeric.js';
import { runBoth } from './helpers/gpu.js';
import { weightOf } from '../runtime/weights.js';
import { llama3RopeFactors } from '../ops/rope_table.js';
import { OPSET } from '../ops/index.js';
import { kernels } from '../ops/kernels.gen.js';
import { toWGSL } from '../compiler/kernel/wgsl.js';
import { epilogueUse } from '../ops/epilogues.js';

const TOL = 1e-5;
const rnd = randomSource();
const seedNote = `random seed ${rnd.seed}`;

describe('kernels match their references', () => {
  it('relErr never lets NaN pass', () => {
    expect(relErr([1, NaN], [1, 2]) <= TOL).toBe(false);
    expect(relErr([1, 2], [1, NaN]) <= TOL).toBe(false);
  });

  it.each([[1, 7], [67, 131], [300, 64], [5, 1000]])('matvec %i x %i', async (rows, cols) => {
    // one signed dot product can cancel to near 0, where any f32 sum's relative error is unbounded
    // (seed 1621650559: 5e-5); a single row gets positive inputs, so its reference is well-conditioned
    const draw = (n: number) => (rows === 1 ? rnd.normal(n).map(Math.abs) : rnd.normal(n));
    const { out, ref } = await runBoth((o) => o.matvec(o.weight('w', [rows, cols]), o.weight('x', [cols])),
      { w: draw(rows * cols), x: draw(cols) }, {});
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

  // Past SHORT_KEYS (1024) positions of context the plan holds both ways, guarded by the position: one
  // kernel that holds every score below it, split-K chunks and their merge from it on (a block of rows
  // switches where its last row would pass it).
  it.each([[0, 1, 'short'], [1023, 1, 'short'], [1024, 1, 'split'], [1300, 1, 'split'], [1999, 1, 'split']] as const)(
    'flash attention past 1024 positions of context: pos %i, %i rows (%s)', async (pos, rows, way) => {
      const [nHeads, nKvHeads, hs, ctx] = [4, 2, 16, 2000], kvDim = nKvHeads * hs;
      const { out, ref, plan } = await runBoth(
        (o) => o.attention(o.weight('q', rows > 1 ? [rows, nHeads * hs] : [nHeads * hs]), o.weight('k', [ctx, kvDim]), o.weight('v', [ctx, kvDim]), o.input('pos', [1]), { nHeads, nKvHeads, headSize: hs, flash: true }),
        { q: rnd.normal(rows * nHeads * hs), k: rnd.normal(ctx * kvDim), v: rnd.normal(ctx * kvDim) }, { pos });
      expect(plan.dispatches.map((d) => d.kernel)).toEqual(['attentionShortKernel', 'flashAttentionKernel', 'flashCombineKernel']);
      expect(plan.dispatchesAt(pos).map((d) => d.kernel)).toEqual(way === 'short' ? ['attentionShortKernel'] : ['flashAttentionKernel', 'flashCombineKernel']);
      expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
    });

  // A prefill block's rows (ops/attention_block.ts): tiles of 16 query vectors of one KV head, partial
  // tiles (111 pairs), heads of 3 quads (21 key lanes) and of 128 lanes, one query head per KV head,
  // 20 per KV head (a row's heads in two tiles), and contexts past 1024 positions, where chunks of 1024
  // keys are merged (a block crossing it too).
  it.each([[6, 2, 12, 37, 0, 140], [20, 1, 8, 5, 3, 140], [4, 4, 8, 20, 66, 140], [8, 2, 64, 70, 300, 1024], [4, 1, 128, 33, 5, 200], [4, 2, 16, 40, 1000, 2000], [4, 2, 16, 3, 700, 2000], [4, 2, 16, 3, 1022, 2000], [4, 2, 16, 9, 1900, 2000]])(
    'attention of a prefill block: %i heads, %i kv heads, head size %i, %i rows from pos %i, context %i', async (nHeads, nKvHeads, hs, rows, pos, ctx) => {
      const kvDim = nKvHeads * hs;
      const { out, ref, plan } = await runBoth(
        (o) => o.attention(o.weight('q', [rows, nHeads * hs]), o.weight('k', [ctx, kvDim]), o.weight('v', [ctx, kvDim]), o.input('pos', [1]), { nHeads, nKvHeads, headSize: hs, flash: true }),
        { q: rnd.normal(rows * nHeads * hs, 0.5), k: rnd.normal(ctx * kvDim), v: rnd.normal(ctx * kvDim) }, { pos });
      // past 1024 positions of context the plan holds both ways, guarded by the block's position: one
      // chunk of keys while its last row is below 1024, chunks and their merge from there on
      expect(plan.dispatches.map((d) => d.kernel)).toEqual(ctx > 1024 ? ['attentionBlockKernel', 'attentionBlockKernel', 'flashCombineKernel'] : ['attentionBlockKernel']);
      expect(plan.dispatchesAt(pos).map((d) => d.kernel)).toEqual(pos + rows > 1024 ? ['attentionBlockKernel', 'flashCombineKernel'] : ['attentionBlockKernel']);
      expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
    });

  // A row's attention is the same bits in any block that holds it, whichever vectors share its tile:
  // rows a..b of a block run alone (from position pos + a) give rows a..b of the whole block (past
  // 1024 positions of context: the whole block through the chunks' merge, the short ones unsplit).
  it.each([[6, 2, 12, 1024], [8, 2, 64, 2000]])('attention of a prefill block: a row is the same bits in any block (%i heads, %i kv heads, head size %i, context %i)', async (nHeads, nKvHeads, hs, ctx) => {
    const kvDim = nKvHeads * hs, rows = 45, pos = ctx > 1024 ? 1000 : 50, w = nHeads * hs;
    const data = { q: rnd.normal(rows * w, 0.5), k: rnd.normal(ctx * kvDim), v: rnd.normal(ctx * kvDim) };
    const run = (from: number, to: number) => runBoth(
      (o) => o.attention(o.weight('q', [to - from, w]), o.weight('k', [ctx, kvDim]), o.weight('v', [ctx, kvDim]), o.input('pos', [1]), { nHeads, nKvHeads, headSize: hs, flash: true }),
      { ...data, q: data.q.slice(from * w, to * w) }, { pos: pos + from });
    const whole = (await run(0, rows)).out;
    for (const [a, b] of [[1, 3], [5, 22], [17, 45], [0, 2]] as const) {
      const part = (await run(a, b)).out;
      expect(Array.from(part), `rows ${a}..${b - 1}`).toEqual(Array.from(whole.subarray(a * w, b * w)));
    }
  });

  // heads whose quads do not divide the workgroup (12: 3 quads, 85 key groups) and the widest (256)
  it.each([[6, 2, 12, 0], [6, 2, 12, 800], [2, 1, 256, 1000], [8, 8, 64, 383]])('attention that holds every score: %i heads, %i kv heads, head size %i, pos %i', async (nHeads, nKvHeads, hs, pos) => {
    const ctx = 1024, kvDim = nKvHeads * hs;
    const { out, ref, plan } = await runBoth(
      (o) => o.attention(o.weight('q', [nHeads * hs]), o.weight('k', [ctx, kvDim]), o.weight('v', [ctx, kvDim]), o.input('pos', [1]), { nHeads, nKvHeads, headSize: hs, flash: true }),
      { q: rnd.normal(nHeads * hs, 0.3), k: rnd.normal(ctx * kvDim), v: rnd.normal(ctx * kvDim) }, { pos });
    expect(plan.dispatches.map((d) => d.kernel)).toEqual(['attentionShortKernel']);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  // The reductions sum within a subgroup first, then over subgroups; a device without subgroups runs
  // the same kernels with a subgroup of one. Both must match the reference.
  it.each([[true], [false]])('reductions (row sets, whole workgroups, maxima) with subgroups: %s', async (subgroups) => {
    const [rows, cols] = [40, 2048];
    for (const dtype of ['f16', 'q8_0'] as const) {
      const w = weightOf([rows, cols], dtype, rnd.normal(rows * cols, 1 / 32));
      const mv = await runBoth((o, g) => g.apply(OPSET.ops.get('matvec')!, [o.weight('w', [rows, cols], dtype), o.weight('x', [cols]), o.weight('nw', [cols]), o.weight('y', [rows])], { norm: true, eps: 1e-5, epilogues: [epilogueUse('add')] }),
        { w, x: rnd.normal(cols), nw: rnd.normal(cols), y: rnd.normal(rows) }, {}, { subgroups });
      expect(relErr(mv.out, mv.ref), `${seedNote} ${dtype}`).toBeLessThanOrEqual(TOL);
    }
    const n = await runBoth((o) => o.rmsnorm(o.weight('x', [1000]), o.weight('w', [1000]), 1e-5), { x: rnd.normal(1000, 3), w: rnd.normal(1000) }, {}, { subgroups });
    expect(relErr(n.out, n.ref), seedNote).toBeLessThanOrEqual(TOL);
    const [nHeads, nKvHeads, hs, ctx] = [4, 2, 16, 2000], kvDim = nKvHeads * hs;
    const fa = await runBoth((o) => o.attention(o.weight('q', [nHeads * hs]), o.weight('k', [ctx, kvDim]), o.weight('v', [ctx, kvDim]), o.input('pos', [1]), { nHeads, nKvHeads, headSize: hs, flash: true }),
      { q: rnd.normal(nHeads * hs, 0.5), k: rnd.normal(ctx * kvDim), v: rnd.normal(ctx * kvDim) }, { pos: 1300 }, { subgroups });
    expect(relErr(fa.out, fa.ref), seedNote).toBeLessThanOrEqual(TOL);
    expect(toWGSL(kernels.flashAttentionKernel!, { subgroups })).toContain(subgroups ? 'subgroupMax(' : 'workgroupBarrier');
    expect(toWGSL(kernels.flashAttentionKernel!, { subgroups: false })).not.toContain('subgroup');
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

  it.each([[40, 2048, 256], [3000, 512, 64], [1000, 64, 32]])('f16 matvec %i x %i, norm and residual: %i invocations a row', async (rows, cols, lanes) => {
    const w = weightOf([rows, cols], 'f16', rnd.normal(rows * cols));
    const { out, ref, plan } = await runBoth((o, g) => g.apply(OPSET.ops.get('matvec')!, [o.weight('w', [rows, cols], 'f16'), o.weight('x', [cols]), o.weight('nw', [cols]), o.weight('y', [rows])], { norm: true, eps: 1e-5, epilogues: [epilogueUse('add')] }),
      { w, x: rnd.normal(cols), nw: rnd.normal(cols), y: rnd.normal(rows) }, {});
    expect(plan.dispatches[0]!.uniforms.lanes).toBe(lanes);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  // rows % 4 != 0 (70) take the generic kernel: the 16-byte one computes rows four at a time
  it.each([[40, 2048, 'matvecQ8Kernel'], [3000, 512, 'matvecQ8Kernel'], [68, 96, 'matvecQ8Kernel'], [70, 96, 'matvecKernel']])('q8_0 matvec %i x %i, norm and residual: %s', async (rows, cols, kernel) => {
    const w = weightOf([rows, cols], 'q8_0', rnd.normal(rows * cols, 2));
    const { out, ref, plan } = await runBoth((o, g) => g.apply(OPSET.ops.get('matvec')!, [o.weight('w', [rows, cols], 'q8_0'), o.weight('x', [cols]), o.weight('nw', [cols]), o.weight('y', [rows])], { norm: true, eps: 1e-5, epilogues: [epilogueUse('add')] }),
      { w, x: rnd.normal(cols), nw: rnd.normal(cols), y: rnd.normal(rows) }, {});
    expect(plan.dispatches[0]!.kernel).toBe(`${kernel}+addEpilogue`);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each(['f16', 'q8_0'] as const)('%s QKV and gate/up in one 16-byte kernel each', async (dtype) => {
    const d = 256, kv = 64, h = 520;
    const data = { x: rnd.normal(d), nw: rnd.normal(d), ...Object.fromEntries([['wq', d], ['wk', kv], ['wv', kv], ['wg', h], ['wu', h]].map(([n, r]) => [n, weightOf([r as number, d], dtype, rnd.normal((r as number) * d))])) };
    const op = (name: string) => OPSET.ops.get(name)!;
    const qkv = await runBoth((o, g) => g.apply(op('qkv_matvec'), [o.weight('x', [d]), o.weight('nw', [d]), o.weight('wq', [d, d], dtype), o.weight('wk', [kv, d], dtype), o.weight('wv', [kv, d], dtype)], { eps: 1e-5 }), data, {});
    expect(qkv.plan.dispatches.map((k) => k.kernel)).toEqual([dtype === 'f16' ? 'qkvF16Kernel' : 'qkvQ8Kernel']);
    expect(relErr(qkv.out, qkv.ref), seedNote).toBeLessThanOrEqual(TOL);
    const ffn = await runBoth((o, g) => g.apply(op('ffn_gate_up'), [o.weight('x', [d]), o.weight('nw', [d]), o.weight('wg', [h, d], dtype), o.weight('wu', [h, d], dtype)], { eps: 1e-5 }), data, {});
    expect(ffn.plan.dispatches.map((k) => k.kernel)).toEqual([dtype === 'f16' ? 'ffnGateUpF16Kernel' : 'ffnGateUpQ8Kernel']);
    expect(relErr(ffn.out, ffn.ref), seedNote).toBeLessThanOrEqual(TOL);
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
    const { pipelineFor } = await import('../runtime/pipelines.js');
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

// Over T positions at once (a prefill), every op that carries a row per position: row t at position
// pos + t, against the same float64 references applied row by row.
describe('kernels over several positions match their references', () => {
  const op = (name: string) => OPSET.ops.get(name)!;
  const T = 11, pos = 5;
  it.each([[67, 131, false, T], [8, 300, true, T], [67, 131, true, 40]])('matmul %i x %i (norm: %s) over %i positions, with add and store epilogues', async (rows, cols, norm, T) => {
    // the fused kernel stores W·x on the side and returns W·x + y; the reference is the unfused graph
    const { out, ref, plan } = await runBoth((o, g) => {
      const srcs = [o.weight('w', [rows, cols]), o.weight('x', [T, cols]), ...(norm ? [o.weight('nw', [cols])] : []), o.weight('y', [T, rows])];
      const f = g.apply(op('matvec'), srcs, { ...(norm ? { norm: true, eps: 1e-5 } : {}), epilogues: [epilogueUse('store'), epilogueUse('add')] });
      return o.add(f, g.apply(op('stored'), [f], { n: 0, shape: [T, rows] })); // (Wx + y) + Wx
    }, { w: rnd.normal(rows * cols), x: rnd.normal(T * cols), nw: rnd.normal(cols), y: rnd.normal(T * rows) }, {}, {
      reference: (o) => {
        const x = o.weight('x', [T, cols]);
        const m = o.matvec(o.weight('w', [rows, cols]), norm ? o.rmsnorm(x, o.weight('nw', [cols]), 1e-5) : x);
        return o.add(o.add(m, o.weight('y', [T, rows])), m);
      },
    });
    expect(plan.dispatches[0]!.kernel).toBe(`${T <= 32 ? 'matmulSmallKernel' : 'matmulKernel'}+storeEpilogue+addEpilogue`); // a few positions: small tiles
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  // tiles of 64 rows by 64 positions, with partial tiles both ways and rows that are not whole steps of
  // 16 columns; a position's row is the same bits in any block (prefill blocks and patching rely on it)
  it.each(['f32', 'f16', 'q8_0'] as const)('matmul in tiles (%s weights, norm): partial tiles, the same bits in any block', async (dtype) => {
    const rows = 130, cols = dtype === 'q8_0' ? 96 : 100, n = 150;
    const w = weightOf([rows, cols], dtype, rnd.normal(rows * cols));
    const x = rnd.normal(n * cols), nw = rnd.normal(cols);
    const run = (m: number, from: number) => runBoth((o, g) => g.apply(op('matvec'), [o.weight('w', [rows, cols], dtype), o.weight('x', [m, cols]), o.weight('nw', [cols])], { norm: true, eps: 1e-5 }),
      { w, x: x.slice(from * cols, (from + m) * cols), nw }, {});
    const all = await run(n, 0);
    expect(all.plan.dispatches.map((d) => [d.kernel, d.groups])).toEqual([['matmulKernel', 3 * 3]]);
    expect(relErr(all.out, all.ref), seedNote).toBeLessThanOrEqual(TOL);
    // blocks of up to 32 positions take matmulSmallKernel: the same bits as matmulKernel's tiles
    for (const [m, from] of [[1, 0], [1, 149], [7, 64], [32, 100], [33, 17]] as const) {
      const part = await run(m, from);
      expect(Array.from(part.out), `rows ${from}..${from + m - 1}`).toEqual(Array.from(all.out.subarray(from * rows, (from + m) * rows)));
    }
  });

  // split along the columns (the 1B shape's prefill splits its 2048- and 8192-column products; here the
  // target splits every 64): partial sums of each range, added in order by splitSumKernel with the norm
  // and the epilogues; a position's row is still the same bits in any block, small tiles or large
  it.each(['f32', 'f16', 'q8_0'] as const)('matmul split along its columns (%s weights, norm, add and store epilogues): the reference, the same bits in any block', async (dtype) => {
    const rows = 70, cols = dtype === 'q8_0' ? 288 : 300, n = 90;
    const w = weightOf([rows, cols], dtype, rnd.normal(rows * cols));
    const x = rnd.normal(n * cols), nw = rnd.normal(cols), y = rnd.normal(n * rows);
    const run = (m: number, from: number) => runBoth((o, g) => {
      const f = g.apply(op('matvec'), [o.weight('w', [rows, cols], dtype), o.weight('x', [m, cols]), o.weight('nw', [cols]), o.weight('y', [m, rows])], { norm: true, eps: 1e-5, epilogues: [epilogueUse('store'), epilogueUse('add')] });
      return o.add(f, g.apply(op('stored'), [f], { n: 0, shape: [m, rows] }));
    }, { w, x: x.slice(from * cols, (from + m) * cols), nw, y: y.slice(from * rows, (from + m) * rows) }, {}, {
      splitCols: 64,
      reference: (o) => {
        const m0 = o.matvec(o.weight('w', [rows, cols], dtype), o.rmsnorm(o.weight('x', [m, cols]), o.weight('nw', [cols]), 1e-5));
        return o.add(o.add(m0, o.weight('y', [m, rows])), m0);
      },
    });
    const all = await run(n, 0);
    expect(all.plan.dispatches.map((d) => d.kernel)).toEqual(['matmulKernel', 'splitSumKernel+storeEpilogue+addEpilogue', 'addKernel']);
    expect(all.plan.dispatches[0]!.groups).toBe(2 * 2 * Math.ceil(cols / 64)); // 2 × 2 tiles, a split every 64 columns
    expect([...all.plan.kernels.keys()].sort()).toEqual([...new Set(all.plan.dispatches.map((d) => d.kernel))].sort()); // no kernel made and not used
    expect(relErr(all.out, all.ref), seedNote).toBeLessThanOrEqual(TOL);
    for (const [m, from] of [[1, 0], [1, 89], [7, 64], [32, 50], [33, 17]] as const) {
      const part = await run(m, from);
      expect(part.plan.dispatches[0]!.kernel).toBe(m <= 32 ? 'matmulSmallKernel' : 'matmulKernel');
      expect(relErr(part.out, part.ref), seedNote).toBeLessThanOrEqual(TOL);
      expect(Array.from(part.out), `rows ${from}..${from + m - 1}`).toEqual(Array.from(all.out.subarray(from * rows, (from + m) * rows)));
    }
  });

  it.each(['f16', 'q8_0', 'q4_0'] as const)('matmul with %s weights split across bindings', async (dtype) => {
    const rows = 200, cols = 64, n = 3; // activations fit the 3000-byte limit, the weight does not
    const w = weightOf([rows, cols], dtype, rnd.normal(rows * cols));
    const { out, ref, plan } = await runBoth((o) => o.matvec(o.weight('w', [rows, cols], dtype), o.weight('x', [n, cols])),
      { w, x: rnd.normal(n * cols) }, {}, { maxBindingBytes: 3000 });
    expect(plan.dispatches.length).toBeGreaterThan(1);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it('embedding of T tokens, rmsnorm and argmax of each row', async () => {
    const vocab = 77, dim = 70;
    const token = Int32Array.from({ length: T }, () => rnd.int(0, vocab));
    const e = await runBoth((o) => o.embedding(o.weight('t', [vocab, dim]), o.input('token', [T, 1])), { t: rnd.normal(vocab * dim) }, { token });
    expect(relErr(e.out, e.ref), seedNote).toBeLessThanOrEqual(TOL);
    const n = await runBoth((o) => o.rmsnorm(o.weight('x', [T, dim]), o.weight('w', [dim]), 1e-5), { x: rnd.normal(T * dim, 3), w: rnd.normal(dim) }, {});
    expect(relErr(n.out, n.ref), seedNote).toBeLessThanOrEqual(TOL);
    for (const width of [300, 301]) { // 4-lane loads, and not
      const a = await runBoth((o) => o.argmax(o.weight('x', [T, width])), { x: rnd.normal(T * width) }, {});
      expect(a.plan.dispatches[0]!.kernel).toBe(width % 4 ? 'argmaxKernel' : 'argmax4Kernel');
      expect(Array.from(new Int32Array(a.out.buffer, a.out.byteOffset, T))).toEqual(Array.from(a.ref));
    }
  });

  it('argmax of a wide row in two steps (slices, then their winners); ties go to the lowest index', async () => {
    const width = 3 * 4096 + 1036; // four slices, the last one partial
    const x = rnd.normal(T * width);
    // row 0: the same largest value in two slices and twice in one; row 1: its largest in the partial slice
    for (const i of [9000, 5000, 5001]) x[i] = 50;
    x[width + width - 3] = 60;
    const a = await runBoth((o) => o.argmax(o.weight('x', [T, width])), { x }, {});
    expect(a.plan.dispatches.map((d) => d.kernel)).toEqual(['argmaxPartsKernel', 'argmaxFinalKernel']);
    const got = Array.from(new Int32Array(a.out.buffer, a.out.byteOffset, T));
    expect(got).toEqual(Array.from(a.ref));
    expect(got.slice(0, 2)).toEqual([5000, width - 3]);
  });

  it('rope, kv_write and causal attention over the block (classic and flash), pattern, rope_kv', async () => {
    const [nHeads, nKvHeads, hs, ctx] = [6, 2, 12, 40], kvDim = nKvHeads * hs;
    const data = { q: rnd.normal(T * nHeads * hs), k: rnd.normal(T * kvDim), v: rnd.normal(T * kvDim), old: rnd.normal(ctx * kvDim), qkv: rnd.normal(T * (nHeads * hs + 2 * kvDim)) };
    const attn = (flash: boolean) => runBoth((o) => {
      const p = o.input('pos', [1]), table = o.ropeTable(ctx, 8, 10000);
      const kc = o.kvWrite(o.state('kc', [ctx, kvDim]), o.rope(o.weight('k', [T, kvDim]), p, table, hs), p);
      const vc = o.kvWrite(o.state('vc', [ctx, kvDim]), o.weight('v', [T, kvDim]), p);
      return o.attention(o.rope(o.weight('q', [T, nHeads * hs]), p, table, hs), kc, vc, p, { nHeads, nKvHeads, headSize: hs, flash });
    }, data, { pos });
    for (const flash of [false, true]) {
      const { out, ref } = await attn(flash);
      expect(relErr(out, ref), `${seedNote} flash=${flash}`).toBeLessThanOrEqual(TOL);
    }
    const pat = await runBoth((o) => {
      const p = o.input('pos', [1]);
      const kc = o.kvWrite(o.state('kc', [ctx, kvDim]), o.weight('k', [T, kvDim]), p);
      return o.patternSoftmax(o.attentionScores(o.weight('q', [T, nHeads * hs]), kc, p, { nHeads, nKvHeads, headSize: hs }), p, nHeads);
    }, data, { pos });
    expect(relErr(pat.out, pat.ref), seedNote).toBeLessThanOrEqual(TOL);
    const rk = await runBoth((o, g) => {
      const p = o.input('pos', [1]), kc = o.state('kc', [ctx, kvDim]), vc = o.state('vc', [ctx, kvDim]);
      const q = g.apply(op('rope_kv'), [o.weight('qkv', [T, nHeads * hs + 2 * kvDim]), p, o.ropeTable(ctx, 8, 10000), kc, vc], { headSize: hs, qDim: nHeads * hs, kvDim });
      return o.attention(q, kc, vc, p, { nHeads, nKvHeads, headSize: hs, flash: true });
    }, data, { pos });
    expect(relErr(rk.out, rk.ref), seedNote).toBeLessThanOrEqual(TOL);
    // with Qwen3's per-head q/k norms before the rotation
    const rn = await runBoth((o, g) => {
      const p = o.input('pos', [1]), kc = o.state('kc', [ctx, kvDim]), vc = o.state('vc', [ctx, kvDim]);
      const q = g.apply(op('rope_kv'), [o.weight('qkv', [T, nHeads * hs + 2 * kvDim]), p, o.ropeTable(ctx, 8, 10000), kc, vc, o.weight('qn', [hs]), o.weight('kn', [hs])], { headSize: hs, qDim: nHeads * hs, kvDim, normEps: 1e-6 });
      return o.attention(q, kc, vc, p, { nHeads, nKvHeads, headSize: hs, flash: true });
    }, { ...data, qn: rnd.normal(hs, 0.3), kn: rnd.normal(hs, 0.3) }, { pos });
    expect(rn.plan.dispatches[0]!.kernel).toBe('ropeKvNormKernel');
    expect(relErr(rn.out, rn.ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  // partial rotary (8 of 16 dimensions turn), position 5; attention reads q and both caches back.
  // Weights at a trained model's scale (1/√d): unit-scale ones give attention logits near 60, whose
  // softmax turns f32 rounding in the dot products into 1e-5 errors on unlucky seeds.
  it.each([['f16', 16], ['q8_0', 16], ['f16', 8], ['q8_0', 8]] as const)('qkv_rope_kv with %s weights in one kernel (%i storage buffers: else two)', async (dtype, buffers) => {
    const [nHeads, nKvHeads, hs, ctx, d] = [8, 2, 16, 12, 64], kvDim = nKvHeads * hs;
    const w = (r: number) => weightOf([r, d], dtype, rnd.normal(r * d, 1 / Math.sqrt(d)));
    const data = { x: rnd.normal(d), nw: rnd.normal(d), wq: w(nHeads * hs), wk: w(kvDim), wv: w(kvDim) };
    const { out, ref, plan } = await runBoth((o, g) => {
      const p = o.input('pos', [1]), kc = o.state('kc', [ctx, kvDim]), vc = o.state('vc', [ctx, kvDim]);
      const srcs = [o.weight('x', [d]), o.weight('nw', [d]), o.weight('wq', [nHeads * hs, d], dtype), o.weight('wk', [kvDim, d], dtype), o.weight('wv', [kvDim, d], dtype)];
      const q = g.apply(op('qkv_rope_kv'), [...srcs, p, o.ropeTable(ctx, 8, 10000), kc, vc], { headSize: hs, qDim: nHeads * hs, kvDim, eps: 1e-5 });
      return o.attention(q, kc, vc, p, { nHeads, nKvHeads, headSize: hs, flash: true });
    }, data, { pos: 5 }, { maxStorageBuffers: buffers });
    const one = dtype === 'f16' ? 'qkvRopeF16Kernel' : 'qkvRopeQ8Kernel';
    expect(plan.dispatches[0]!.kernel).toBe(buffers >= 10 ? one : dtype === 'f16' ? 'qkvF16Kernel' : 'qkvQ8Kernel');
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  // Qwen2's biases: one [q; k; v] vector added at the store, before the rotation (11 bindings, or two kernels)
  it.each([['f32', 16], ['f16', 16], ['q8_0', 16], ['f16', 8], ['q8_0', 8]] as const)('qkv_rope_kv with a [q; k; v] bias and %s weights (%i storage buffers)', async (dtype, buffers) => {
    const [nHeads, nKvHeads, hs, ctx, d] = [8, 2, 16, 12, 64], kvDim = nKvHeads * hs;
    const w = (r: number) => weightOf([r, d], dtype, rnd.normal(r * d, 1 / Math.sqrt(d)));
    const data = { x: rnd.normal(d), nw: rnd.normal(d), wq: w(nHeads * hs), wk: w(kvDim), wv: w(kvDim), b: rnd.normal(nHeads * hs + 2 * kvDim) };
    const { out, ref, plan } = await runBoth((o, g) => {
      const p = o.input('pos', [1]), kc = o.state('kc', [ctx, kvDim]), vc = o.state('vc', [ctx, kvDim]);
      const srcs = [o.weight('x', [d]), o.weight('nw', [d]), o.weight('wq', [nHeads * hs, d], dtype), o.weight('wk', [kvDim, d], dtype), o.weight('wv', [kvDim, d], dtype)];
      const q = g.apply(op('qkv_rope_kv'), [...srcs, p, o.ropeTable(ctx, 8, 10000), kc, vc, o.weight('b', [nHeads * hs + 2 * kvDim])], { headSize: hs, qDim: nHeads * hs, kvDim, eps: 1e-5, epilogues: [epilogueUse('bias', 0, 'bias')] });
      return o.attention(q, kc, vc, p, { nHeads, nKvHeads, headSize: hs, flash: true });
    }, data, { pos: 5 }, { maxStorageBuffers: buffers });
    expect(plan.dispatches[0]!.kernel).toMatch(dtype !== 'f32' && buffers >= 11 ? /^qkvRope(F16|Q8)Kernel\+bias:biasEpilogue$/ : /^qkv(F16|Q8)?Kernel\+bias:biasEpilogue$/);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each(['f32', 'q8_0'] as const)('head_result (per-head W_O·z) with %s W_O split across bindings', async (dtype) => {
    const [nHeads, hs, dim, n] = [4, 8, 200, 1];
    const wo = weightOf([dim, nHeads * hs], dtype, rnd.normal(dim * nHeads * hs));
    const { out, ref, plan } = await runBoth((o) => o.headResult(o.weight('z', [n, nHeads * hs]), o.weight('wo', [dim, nHeads * hs], dtype), { nHeads, headSize: hs }),
      { z: rnd.normal(n * nHeads * hs), wo }, {}, { maxBindingBytes: 6000 });
    expect(plan.dispatches.length).toBeGreaterThan(1);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it('two sequences at once: each row attends to its own sequence, each sequence has its own cache', async () => {
    const [nHeads, nKvHeads, hs, ctx, B] = [4, 2, 8, 30, 2], kvDim = nKvHeads * hs;
    const data = { q: rnd.normal(B * T * nHeads * hs), k: rnd.normal(B * T * kvDim), v: rnd.normal(B * T * kvDim) };
    for (const flash of [false, true]) {
      const { out, ref } = await runBoth((o) => {
        const p = o.input('pos', [1]), table = o.ropeTable(ctx, 8, 10000);
        const kc = o.kvWrite(o.state('kc', [B, ctx, kvDim]), o.rope(o.input('k', [B, T, kvDim], 'f32'), p, table, hs), p);
        const vc = o.kvWrite(o.state('vc', [B, ctx, kvDim]), o.input('v', [B, T, kvDim], 'f32'), p);
        return o.attention(o.rope(o.input('q', [B, T, nHeads * hs], 'f32'), p, table, hs), kc, vc, p, { nHeads, nKvHeads, headSize: hs, flash });
      }, {}, { pos: 3, ...data });
      expect(relErr(out, ref), `${seedNote} flash=${flash}`).toBeLessThanOrEqual(TOL);
    }
  });

  it('slice, intervene, qkv_matvec and ffn_gate_up by rows', async () => {
    const [d, h] = [40, 24];
    const data = { x: rnd.normal(T * d), nw: rnd.normal(d), wq: rnd.normal(d * d), wk: rnd.normal(8 * d), wv: rnd.normal(8 * d), wg: rnd.normal(h * d), wu: rnd.normal(h * d), a: rnd.normal(30 * d), b: rnd.normal(30 * d) };
    const qkv = await runBoth((o, g) => g.apply(op('slice'), [g.apply(op('qkv_matvec'), [o.weight('x', [T, d]), o.weight('nw', [d]), o.weight('wq', [d, d]), o.weight('wk', [8, d]), o.weight('wv', [8, d])], { eps: 1e-5 })], { offset: 37, length: 9 }), data, {});
    expect(relErr(qkv.out, qkv.ref), seedNote).toBeLessThanOrEqual(TOL);
    const ffn = await runBoth((o, g) => g.apply(op('ffn_gate_up'), [o.weight('x', [T, d]), o.weight('nw', [d]), o.weight('wg', [h, d]), o.weight('wu', [h, d])], { eps: 1e-5 }), data, {});
    expect(relErr(ffn.out, ffn.ref), seedNote).toBeLessThanOrEqual(TOL);
    const iv = await runBoth((o, g) => g.apply(op('intervene'), [o.weight('x', [T, d]), o.input('pos', [1]), o.weight('a', [30, d]), o.weight('b', [30, d])], {}), data, { pos: 24 }); // rows past 30 left alone
    expect(relErr(iv.out, iv.ref), seedNote).toBeLessThanOrEqual(TOL);
    // one row of tables for every position (steering while generating), wherever the block starts
    const every = await runBoth((o, g) => g.apply(op('intervene'), [o.weight('x', [T, d]), o.input('pos', [1]), o.weight('a', [1, d]), o.weight('b', [1, d])], { every: true }), { x: data.x, a: data.a.slice(0, d), b: data.b.slice(0, d) }, { pos: 57 });
    expect(relErr(every.out, every.ref), seedNote).toBeLessThanOrEqual(TOL);
    expect(relErr(every.out, Float64Array.from({ length: T * d }, (_, i) => data.x[i]! * data.a[i % d]! + data.b[i % d]!)), seedNote).toBeLessThanOrEqual(TOL);
  });
});

describe('a pass of many dispatches', () => {
  it('goes to the queue in pieces (runtime/executor.ts submitSteps) and computes what one submit would', async () => {
    const n = 37, chain = 300, x = rnd.normal(n);
    const { out, ref, plan } = await runBoth((o) => {
      let y = o.weight('x', [n]);
      for (let i = 0; i < chain; i++) y = o.add(y, o.weight('x', [n])); // each add waits for the one before
      return y;
    }, { x }, {});
    expect(plan.dispatches.length).toBeGreaterThan(256); // pieces of 32, 64, 128 and the rest
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });
});

describe('the interpretability kernels match their references', () => {
  it.each([[3, 5, 1000, 7, 417], [2, 3, 513, 1, undefined], [4, 1, 64, 64, 0]])('lens_stats: %i layers x %i positions over %i tokens, top %i, target %s', async (layers, positions, V, top, target) => {
    const R = layers * positions, W = 3 + 2 * top;
    const { out, ref } = await runBoth((o) => o.lensStats(o.weight('z', [R, V]), o.input('target', [1]), { layers, top }), { z: rnd.normal(R * V, 4) }, { target: Int32Array.of(target ?? V) });
    for (let r = 0; r < R; r++) {
      const at = `${seedNote} row ${r}`, g = out.subarray(r * W, (r + 1) * W), f = ref.subarray(r * W, (r + 1) * W);
      expect(Array.from(g.subarray(3, 3 + top)), at).toEqual(Array.from(f.subarray(3, 3 + top))); // the same tokens, in order
      expect(relErr(g.subarray(3 + top), f.subarray(3 + top)), at).toBeLessThanOrEqual(TOL);
      expect(Math.abs(g[0]! - f[0]!), `${at} KL`).toBeLessThanOrEqual(TOL * Math.max(1, f[0]!));
      if (target !== undefined) {
        expect(g[1], `${at} rank`).toBe(f[1]);
        expect(Math.abs(g[2]! - f[2]!), `${at} target probability`).toBeLessThanOrEqual(TOL * Math.max(f[2]!, 1e-3));
      }
    }
    // the final layer's rows have no divergence from themselves
    for (let p = 0; p < positions; p++) expect(out[((layers - 1) * positions + p) * W]).toBe(0);
  });

  it.each([9, 8])('lens_stats breaks ties as a stable sort does: the lower token first, and in the rank (top %i)', async (top) => {
    // (top 8 or fewer: each invocation's sorted eight; more: a pass a round)
    const V = 300, z = new Float32Array(V).map((_, i) => (i % 7 === 0 ? 2.5 : i % 5)); // many equal logits
    const { out, ref } = await runBoth((o) => o.lensStats(o.weight('z', [1, V]), o.input('target', [1]), { layers: 1, top }), { z }, { target: Int32Array.of(140) });
    expect([out[1], ...out.subarray(3, 3 + top)]).toEqual([ref[1], ...ref.subarray(3, 3 + top)]); // rank, then the top ones
  });

  it('lens_stats with fewer finite logits than it reports: the −∞ ones follow, lower token first', async () => {
    const V = 40, z = new Float32Array(V).fill(-Infinity);
    z[33] = 1; z[7] = 2; z[20] = 1;
    const { out } = await runBoth((o) => o.lensStats(o.weight('z', [1, V]), o.input('target', [1]), { layers: 1, top: 5 }), { z }, { target: Int32Array.of(V) });
    expect(Array.from(out.subarray(3, 8))).toEqual([7, 20, 33, 0, 1]);
  });

  it('last_row and pick: each sequence\'s last position, a few columns of each row', async () => {
    const [B, T, n] = [3, 5, 67];
    const last = await runBoth((o) => o.lastRow(o.input('x', [B, T, n], 'f32')), {}, { x: rnd.normal(B * T * n) });
    expect(Array.from(last.out)).toEqual(Array.from(last.ref).map(Math.fround));
    const picked = await runBoth((o) => o.pick(o.input('x', [B, 1, n], 'f32'), o.input('ids', [3])), {}, { x: rnd.normal(B * n), ids: Int32Array.of(66, 0, 31) });
    expect(Array.from(picked.out)).toEqual(Array.from(picked.ref).map(Math.fround));
  });

  it('intervene over a batch: each sequence its own tables', async () => {
    const [B, T, d, rows] = [3, 6, 37, 20];
    const op = (name: string) => OPSET.ops.get(name)!;
    const { out, ref } = await runBoth((o, g) => g.apply(op('intervene'), [o.input('x', [B, T, d], 'f32'), o.input('pos', [1]), o.input('a', [B, rows, d], 'f32'), o.input('b', [B, rows, d], 'f32')], {}),
      {}, { x: rnd.normal(B * T * d), a: rnd.normal(B * rows * d), b: rnd.normal(B * rows * d), pos: 17 }); // rows past 20 left alone
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });
});
