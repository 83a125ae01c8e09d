// The backward ops' GPU kernels against their float64 references on fresh random inputs (f32: relative
// error of the whole vector <= 1e-5; NaN never passes): SwiGLU's two gradients, the
// norm's, the transposed product for every weight dtype (weights read in place, split into row pieces
// too), the last row spread back and a block's rows of a cache's gradient, the metrics (a logit
// difference, a log-probability over a vocabulary wider than the workgroup) and their gradients, and the
// logit difference read off two rows of the unembedding (every dtype, the rows in one piece or two).
import { describe, expect, it } from 'vitest';
import { randomSource, relErr } from './helpers/numeric.js';
import { runBoth } from './helpers/gpu.js';
import { weightOf } from '../runtime/weights.js';
import { siluMulGrad } from '../ops/silu_mul_grad.js';
import { rmsnormGrad } from '../ops/rmsnorm_grad.js';
import { matvecT } from '../ops/matvec_t.js';
import { lastRowGrad } from '../ops/last_row_grad.js';
import { kvRows } from '../ops/kv_rows.js';
import type { DType } from '../compiler/ir/dtype.js';
import { attentionGrad, attentionStats } from '../ops/attention.js';
import type { Ops } from '../ops/index.js';
import type { GraphBuilder } from '../compiler/ir/graph.js';
import { logProb, logProbGrad } from '../ops/log_prob.js';
import { logitDiff, logitDiffGrad } from '../ops/logit_diff.js';
import { logitDiffUnembed, logitDiffUnembedGrad } from '../ops/logit_diff_unembed.js';
import { patternSoftmaxGrad } from '../ops/pattern_softmax.js';
import { patternApplyGrad } from '../ops/pattern_apply.js';
import { attentionScoresGrad } from '../ops/attention_scores.js';

const rnd = randomSource();
const seedNote = `random seed ${rnd.seed}`;
const TOL = 1e-5;

describe('backward kernels match their float64 references', () => {
  it.each(['gate', 'up'] as const)('silu_mul_grad of %s', async (of) => {
    const { out, ref } = await runBoth((o, g) => g.apply(siluMulGrad, [o.weight('g', [3, 77]), o.weight('u', [3, 77]), o.weight('dy', [3, 77])], { of }), { g: rnd.normal(231, 3), u: rnd.normal(231), dy: rnd.normal(231) }, {});
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each([[[4, 200], 200], [[3, 96], 24]] as const)('rmsnorm_grad of [%s] with a weight of %i', async (shape, m) => {
    const size = shape[0] * shape[1];
    const { out, ref } = await runBoth((o, g) => g.apply(rmsnormGrad, [o.weight('x', [...shape]), o.weight('w', [m]), o.weight('dy', [...shape])], { eps: 1e-5 }), { x: rnd.normal(size), w: rnd.normal(m), dy: rnd.normal(size) }, {});
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it.each([['f32', 37, 40], ['f16', 37, 66], ['bf16', 21, 30], ['q8_0', 19, 96], ['q4_0', 67, 64]] as const)('matvec_t through %s weights [%i, %i], whole and in row pieces', async (dtype, rows, cols) => {
    const data = { w: weightOf([rows, cols], dtype as DType, rnd.normal(rows * cols)), dy: rnd.normal(3 * rows) };
    // in row pieces: a binding limit below the weight's bytes, above the vectors'
    for (const maxBindingBytes of [undefined, Math.max(3 * cols, 3 * rows) * 4 + 64]) {
      const { out, ref, plan } = await runBoth((o, g) => g.apply(matvecT, [o.weight('w', [rows, cols], dtype as DType), o.weight('dy', [3, rows])], {}), data, {}, { maxBindingBytes });
      if (maxBindingBytes) expect(plan.dispatches.filter((d) => d.kernel === 'matmulTKernel').length).toBeGreaterThan(1);
      expect(relErr(out, ref), `${seedNote}, ${maxBindingBytes ?? 'whole'}`).toBeLessThanOrEqual(TOL);
    }
  });

  it.each([['f16', 1500, 70, 3], ['q8_0', 1100, 64, 1], ['f32', 45, 300, 40], ['bf16', 77, 130, 33]] as const)('matvec_t in tiles and row splits: %s [%i, %i] over %i positions', async (dtype, rows, cols, T) => {
    const data = { w: weightOf([rows, cols], dtype as DType, rnd.normal(rows * cols)), dy: rnd.normal(T * rows) };
    const { out, ref, plan } = await runBoth((o, g) => g.apply(matvecT, [o.weight('w', [rows, cols], dtype as DType), o.weight('dy', [T, rows])], {}), data, {});
    // a tall matrix over few positions is split along its rows (partial sums added in order)
    expect(plan.dispatches.some((d) => d.kernel === 'matvecTSumKernel')).toBe(rows >= 1024);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
    // split as far as a target may ask (splits of 64 rows: up to 2048 workgroups), the same sums
    const far = await runBoth((o, g) => g.apply(matvecT, [o.weight('w', [rows, cols], dtype as DType), o.weight('dy', [T, rows])], {}), data, {}, { transposedSplit: { groups: 2112, minRows: 64 } });
    expect(far.plan.dispatches.some((d) => d.kernel === 'matvecTSumKernel')).toBe(rows >= 128);
    expect(relErr(far.out, far.ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  // fused with the add of another gradient (ops/rules.ts, add_into_grad): unsplit, split and in row pieces
  it.each([['f16', 37, 66, 3, undefined], ['q8_0', 1100, 64, 2, undefined], ['bf16', 45, 30, 5, 500]] as const)('matvec_t of %s [%i, %i] over %i positions with a gradient added (binding limit %s)', async (dtype, rows, cols, T, limit) => {
    const data = { w: weightOf([rows, cols], dtype as DType, rnd.normal(rows * cols)), dy: rnd.normal(T * rows), acc: rnd.normal(T * cols) };
    const maxBindingBytes = limit && Math.max(limit, T * Math.max(rows, cols) * 4 + 64);
    const { out, ref, plan } = await runBoth((o, g) => g.apply(matvecT, [o.weight('w', [rows, cols], dtype as DType), o.weight('dy', [T, rows]), o.weight('acc', [T, cols])], { acc: true }), data, {}, { maxBindingBytes });
    expect(plan.dispatches.some((d) => d.kernel === 'matvecTSumKernel')).toBe(true);
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it('rmsnorm_grad with a gradient added', async () => {
    const { out, ref } = await runBoth((o, g) => g.apply(rmsnormGrad, [o.weight('x', [3, 96]), o.weight('w', [96]), o.weight('dy', [3, 96]), o.weight('acc', [3, 96])], { eps: 1e-5, acc: true }),
      { x: rnd.normal(288), w: rnd.normal(96), dy: rnd.normal(288), acc: rnd.normal(288, 3) }, {});
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  // [T, nHeads, nKvHeads, headSize, context, pos]: grouped heads over a short block; heads of 96 lanes over
  // 70 rows (more than a chunk of 64 keys for dq and of 256 (row, head) pairs for dk/dv)
  const ATTENTION_CASES = [[5, 4, 2, 8, 12, 3], [70, 8, 2, 96, 80, 5]] as const;
  it.each(ATTENTION_CASES.flatMap((c) => (['q', 'k', 'v'] as const).map((of) => [of, ...c] as const)))(
    'attention_grad of %s: %i rows, %i heads (%i KV heads) of %i lanes, context %i, from position %i (keys past the block get 0)', async (of, T, nHeads, nKvHeads, headSize, ctxLen, pos) => {
      const qDim = nHeads * headSize, kvDim = nKvHeads * headSize;
      const { out, ref } = await runBoth((o, g) => {
        const srcs = [o.weight('q', [T, qDim]), o.weight('kc', [ctxLen, kvDim]), o.weight('vc', [ctxLen, kvDim]), o.input('pos', [1]), o.weight('dz', [T, qDim])];
        return g.apply(attentionGrad, [...srcs, g.apply(attentionStats, srcs, { nHeads, nKvHeads, headSize })], { nHeads, nKvHeads, headSize, of });
      },
        { q: rnd.normal(T * qDim), kc: rnd.normal(ctxLen * kvDim), vc: rnd.normal(ctxLen * kvDim), dz: rnd.normal(T * qDim) }, { pos });
      expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
      if (of !== 'q') expect(Array.from(out.subarray((pos + T) * kvDim))).toEqual(new Array((ctxLen - pos - T) * kvDim).fill(0));
    });

  it.each(['k', 'v'] as const)('attention_grad of %s, the block\'s rows only (attention_grad_rows): 6 rows from position 4', async (of) => {
    const [T, nHeads, nKvHeads, headSize, ctxLen] = [6, 4, 2, 16, 20], qDim = nHeads * headSize, kvDim = nKvHeads * headSize;
    const data = { q: rnd.normal(T * qDim), kc: rnd.normal(ctxLen * kvDim), vc: rnd.normal(ctxLen * kvDim), dz: rnd.normal(T * qDim) };
    const build = (rows: boolean) => (o: Ops, g: GraphBuilder) => {
      const srcs = [o.weight('q', [T, qDim]), o.weight('kc', [ctxLen, kvDim]), o.weight('vc', [ctxLen, kvDim]), o.input('pos', [1]), o.weight('dz', [T, qDim])];
      return g.apply(attentionGrad, [...srcs, g.apply(attentionStats, srcs, { nHeads, nKvHeads, headSize })], { nHeads, nKvHeads, headSize, of, ...(rows ? { rows } : {}) });
    };
    const block = await runBoth(build(true), data, { pos: 4 });
    expect(block.out.length).toBe(T * kvDim);
    expect(relErr(block.out, block.ref), seedNote).toBeLessThanOrEqual(TOL);
    const whole = await runBoth(build(false), data, { pos: 4 });
    expect(Array.from(block.out)).toEqual(Array.from(whole.out.subarray(4 * kvDim, (4 + T) * kvDim)));
  });

  // the explicit attention path: [T, nHeads, context] scores and patterns, grouped heads, a block from position 3
  // the explicit attention path: [T, nHeads, context] scores and patterns (inputs: weights are 1-D or 2-D),
  // grouped heads, a block from position 3
  describe('the explicit attention path (gradients at hook_pattern, hook_attn_scores)', () => {
    const [T, nHeads, nKvHeads, headSize, ctxLen, pos] = [5, 6, 2, 12, 70, 3], qDim = nHeads * headSize, kvDim = nKvHeads * headSize;
    const a = { nHeads, nKvHeads, headSize };
    // scores as attention_scores leaves them: a large value past each row's keys (those must not be read)
    const scores = () => { const s = rnd.normal(T * nHeads * ctxLen, 2); for (let r = 0; r < T; r++) for (let h = 0; h < nHeads; h++) s.fill(1e30, (r * nHeads + h) * ctxLen + pos + r + 1, (r * nHeads + h + 1) * ctxLen); return s; };
    const pattern = () => { const p = Float32Array.from({ length: T * nHeads * ctxLen }, rnd.uniform); for (let r = 0; r < T; r++) for (let h = 0; h < nHeads; h++) p.fill(0, (r * nHeads + h) * ctxLen + pos + r + 1, (r * nHeads + h + 1) * ctxLen); return p; };
    const cases: [string, (o: Ops, g: GraphBuilder) => ReturnType<GraphBuilder['apply']>, () => Record<string, Float32Array>][] = [
      ['pattern_softmax', (o) => o.patternSoftmax(o.input('s', [T, nHeads, ctxLen], 'f32'), o.input('pos', [1]), nHeads), () => ({ s: scores() })],
      ['pattern_softmax_grad', (o, g) => g.apply(patternSoftmaxGrad, [o.input('p', [T, nHeads, ctxLen], 'f32'), o.input('dp', [T, nHeads, ctxLen], 'f32'), o.input('pos', [1])], { nHeads }), () => ({ p: pattern(), dp: rnd.normal(T * nHeads * ctxLen) })],
      ['pattern_apply', (o) => o.patternApply(o.input('p', [T, nHeads, ctxLen], 'f32'), o.input('vc', [ctxLen, kvDim], 'f32'), o.input('pos', [1]), a), () => ({ p: pattern(), vc: rnd.normal(ctxLen * kvDim) })],
      ...(['pattern', 'v'] as const).map((of) => [`pattern_apply_grad of ${of}`, (o: Ops, g: GraphBuilder) => g.apply(patternApplyGrad, [o.input('p', [T, nHeads, ctxLen], 'f32'), o.input('vc', [ctxLen, kvDim], 'f32'), o.input('pos', [1]), o.input('dz', [T, qDim], 'f32')], { ...a, of }),
        () => ({ p: pattern(), vc: rnd.normal(ctxLen * kvDim), dz: rnd.normal(T * qDim) })] as [string, (o: Ops, g: GraphBuilder) => ReturnType<GraphBuilder["apply"]>, () => Record<string, Float32Array>]),
      ...(['q', 'k'] as const).map((of) => [`attention_scores_grad of ${of}`, (o: Ops, g: GraphBuilder) => g.apply(attentionScoresGrad, [o.input('ds', [T, nHeads, ctxLen], 'f32'), o.input('q', [T, qDim], 'f32'), o.input('kc', [ctxLen, kvDim], 'f32'), o.input('pos', [1])], { ...a, of }),
        () => ({ ds: pattern(), q: rnd.normal(T * qDim), kc: rnd.normal(ctxLen * kvDim) })] as [string, (o: Ops, g: GraphBuilder) => ReturnType<GraphBuilder["apply"]>, () => Record<string, Float32Array>]),
    ];
    it.each(cases)('%s', async (_, build, data) => {
      const { out, ref } = await runBoth(build, {}, { pos, ...data() });
      expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
    });
  });

  // [T, nHeads, nKvHeads, headSize, context, pos, query scale]: fewer keys than a workgroup's 64
  // invocations; up to 205 keys (several an invocation, each one's sums rescaled as its max grows) with
  // scores spread wide (queries × 4)
  it.each([[4, 4, 2, 8, 10, 2, 1], [6, 4, 1, 16, 220, 199, 4]] as const)('attention_stats: each query row and head\'s max score, sum of exponentials and Σ P·dP (%i rows, %i heads, %i KV heads of %i lanes, context %i from %i, queries × %i)', async (T, nHeads, nKvHeads, headSize, ctxLen, pos, k) => {
    const qDim = nHeads * headSize, kvDim = nKvHeads * headSize;
    const { out, ref } = await runBoth((o, g) => g.apply(attentionStats, [o.weight('q', [T, qDim]), o.weight('kc', [ctxLen, kvDim]), o.weight('vc', [ctxLen, kvDim]), o.input('pos', [1]), o.weight('dz', [T, qDim])], { nHeads, nKvHeads, headSize }),
      { q: rnd.normal(T * qDim).map((v) => v * k), kc: rnd.normal(ctxLen * kvDim), vc: rnd.normal(ctxLen * kvDim), dz: rnd.normal(T * qDim) }, { pos });
    expect(relErr(out, ref), seedNote).toBeLessThanOrEqual(TOL);
  });

  it('last_row_grad and kv_rows', async () => {
    const a = await runBoth((o, g) => g.apply(lastRowGrad, [o.weight('dy', [1, 9]), o.weight('x', [5, 9])], {}), { dy: rnd.normal(9), x: rnd.normal(45) }, {});
    expect(relErr(a.out, a.ref), seedNote).toBeLessThanOrEqual(TOL);
    const b = await runBoth((o, g) => g.apply(kvRows, [o.weight('dc', [12, 8]), o.input('pos', [1]), o.weight('k', [4, 8])], {}), { dc: rnd.normal(96), k: rnd.normal(32) }, { pos: 5 });
    expect(Array.from(b.out)).toEqual(Array.from(b.ref));
  });

  it('last_row_grad at an earlier row of a batch', async () => {
    const a = await runBoth((o, g) => g.apply(lastRowGrad, [o.input('dy', [2, 1, 9], 'f32'), o.input('x', [2, 5, 9], 'f32')], { row: 2 }), {}, { dy: rnd.normal(18), x: rnd.normal(90) });
    expect(relErr(a.out, a.ref), seedNote).toBeLessThanOrEqual(TOL);
    expect(Array.from(a.out.subarray(0, 18))).toEqual(new Array(18).fill(0));
  });

  // 3 rows of a vocabulary of 1000 (not a multiple of the 256 invocations); ids as an input
  const V = 1000, z = () => rnd.normal(3 * V, 4);
  it.each([[[17, 512], undefined], [[17], 1], [[999, 0], 0]] as const)('logit_diff of ids %j at row %s, and its gradient', async (ids, row) => {
    const attr: Record<string, number> = row === undefined ? {} : { row };
    const data = { z: z(), dy: rnd.normal(1) };
    const f = await runBoth((o, g) => g.apply(logitDiff, [o.weight('z', [3, V]), o.input('ids', [ids.length])], attr), data, { ids: Int32Array.from(ids) });
    expect(relErr(f.out, f.ref), seedNote).toBeLessThanOrEqual(TOL);
    const b = await runBoth((o, g) => g.apply(logitDiffGrad, [o.weight('dy', [1]), o.input('ids', [ids.length]), o.weight('z', [3, V])], attr), data, { ids: Int32Array.from(ids) });
    expect(Array.from(b.out)).toEqual(Array.from(b.ref).map(Math.fround));
  });

  // two rows of an unembedding of 300 × 320 (cols past the 256 invocations); the two ids in one row
  // piece or in different ones (a binding limit under the weight's bytes splits it)
  it.each([['f32', [17, 290]], ['f16', [299, 0]], ['bf16', [5]], ['q8_0', [120, 121]], ['q4_0', [0, 250]]] as const)('logit_diff_unembed through %s rows %j, and its gradient, whole and in row pieces', async (dtype, ids) => {
    const [rows, cols] = [300, 320];
    const data = { w: weightOf([rows, cols], dtype as DType, rnd.normal(rows * cols)), x: rnd.normal(cols), dy: rnd.normal(1) };
    for (const maxBindingBytes of [undefined, 40 * cols * 4]) {
      const note = `${seedNote}, ${maxBindingBytes ?? 'whole'}`;
      const f = await runBoth((o, g) => g.apply(logitDiffUnembed, [o.weight('w', [rows, cols], dtype as DType), o.weight('x', [1, cols]), o.input('ids', [ids.length])], {}), data, { ids: Int32Array.from(ids) }, { maxBindingBytes });
      if (maxBindingBytes) expect(f.plan.dispatches.filter((d) => d.kernel === 'logitDiffUnembedKernel').length, note).toBeGreaterThan(1);
      expect(relErr(f.out, f.ref), note).toBeLessThanOrEqual(TOL);
      const b = await runBoth((o, g) => g.apply(logitDiffUnembedGrad, [o.weight('w', [rows, cols], dtype as DType), o.weight('dy', [1]), o.input('ids', [ids.length])], { shape: [1, cols] }), data, { ids: Int32Array.from(ids) }, { maxBindingBytes });
      expect(b.out.length).toBe(cols);
      expect(relErr(b.out, b.ref), note).toBeLessThanOrEqual(TOL);
    }
  });

  it.each([undefined, 0] as const)('log_prob at row %s, and its gradient (softmax from the metric)', async (row) => {
    const attr: Record<string, number> = row === undefined ? {} : { row };
    const data = { z: z(), dy: rnd.normal(1), m: new Float32Array(1) };
    const f = await runBoth((o, g) => g.apply(logProb, [o.weight('z', [3, V]), o.input('ids', [1])], attr), data, { ids: Int32Array.of(321) });
    expect(relErr(f.out, f.ref), seedNote).toBeLessThanOrEqual(TOL);
    data.m[0] = f.ref[0]!; // the metric's value, as the forward gives it to the backward
    const b = await runBoth((o, g) => g.apply(logProbGrad, [o.weight('dy', [1]), o.input('ids', [1]), o.weight('z', [3, V]), o.weight('m', [1])], attr), data, { ids: Int32Array.of(321) });
    expect(relErr(b.out, b.ref), seedNote).toBeLessThanOrEqual(TOL);
  });
});

describe("the tensor-core transposed product's gradient scales (gradScale, as the kernel inlines it; the product itself runs only where the device has subgroup matrices: benchmarks/tensor_check.ts)", () => {
  it('a power of two that puts the largest |value| in [2^13, 2^14): tiny, huge, zero and subnormal', async () => {
    const { gradScale } = await import('../ops/matmul_t_tensor.js');
    for (const top of [1, 1e-9, 3e5, 7.5e-3, 2 ** 13, 2 ** 14 - 1, 65504, 1e-30, 2 ** -113, ...rnd.normal(20).map((v) => Math.abs(v) * 10 ** (rnd.normal(1)[0]! * 8))]) {
      const s = gradScale(Math.fround(top));
      expect(Number.isInteger(Math.log2(s)), `${top}: ${s} is a power of two`).toBe(true);
      expect(Math.fround(top) * s, `${top}`).toBeGreaterThanOrEqual(2 ** 13);
      expect(Math.fround(top) * s, `${top}`).toBeLessThan(2 ** 14);
    }
    // zero (or under f32's normal range, which a GPU may flush) gets the largest scale; infinity a finite one
    for (const top of [0, 2 ** -130]) expect(gradScale(top)).toBe(2 ** 126);
    expect(gradScale(Infinity)).toBe(2 ** -114);
  });
});
