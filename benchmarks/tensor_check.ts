// The tensor-core matrix product (ops/matmul_tensor.ts) against its op's float64 reference, on the GPU
// machine (lavapipe offers no subgroup matrices, so CI cannot run it). Fresh random inputs of awkward
// sizes (130 or 8262 weight rows, 100 or 96 columns: not multiples of the tiles nor of their 32-column
// steps), every non-f32 weight dtype, with the norm; prints JSON, exit 1 if a check fails.
//
// Tolerance, derived: the kernel rounds each activation (times the norm weight) and each weight to f16
// (relative error ≤ 2^-11 each; f16 and bf16 weights are exact in f16, q8_0/q4_0 products d·q round once),
// so a product is off by at most ~2^-10 of its size, and the f32 sums add ≤ K·2^-24. Per output:
// |out − ref| ≤ (2^-10 + K·2^-24) · Σ_c |w_c · x'_c| · scale, with x' = x · nw and scale the norm's 1/rms;
// Σ|w·x'| is the same reference run on |w|, |x|, |nw|. (NaN never passes.) Also: a position's row is the
// same bits in any block (1, 7, 16, 17, 33, 64 positions, anywhere in the prompt), with and without
// splitting the product along its columns; f32 weights keep the f32 kernels at 1e-5. And the same for
// the transposed product of the gradients (below).
//   node --no-concurrent-recompilation dist/benchmarks/tensor_check.js
import { GraphBuilder } from '../compiler/ir/graph.js';
import { lowerGraph } from '../compiler/plan.js';
import type { DType } from '../compiler/ir/dtype.js';
import { fragments, kernels } from '../ops/kernels.gen.js';
import { OPSET, ops } from '../ops/index.js';
import { TENSOR_WIDE_ROWS } from '../ops/matvec.js';
import { Executor } from '../runtime/executor.js';
import { getGpu, releaseGpu, targetOf } from '../runtime/gpu.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { type WeightMap, type WeightTensor, f32Weight, weightOf } from '../runtime/weights.js';

const gpu = await getGpu();
const seed = Number(process.env.TAPIR_TEST_SEED) || (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0;
let s = seed || 1;
const uniform = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
const normal = (n: number) => Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(uniform() || 1e-12)) * Math.cos(2 * Math.PI * uniform()));
const out: Record<string, unknown> = { device: gpu.adapterInfo, matrices: gpu.matrices, seed };
let ok = true;

/** W·rmsnorm(x) over m positions through the planner and executor, and the kernel it took. */
async function product(w: WeightTensor, rows: number, cols: number, x: Float32Array, m: number, nw: Float32Array, dtype: DType, splitCols?: number) {
  const g = new GraphBuilder(), o = ops(g);
  const graph = g.finish({ out: g.apply(OPSET.ops.get('matvec')!, [o.weight('w', [rows, cols], dtype), o.weight('x', [m, cols]), o.weight('nw', [cols])], { norm: true, eps: 1e-5 }) });
  const weights: WeightMap = new Map([['w', w], ['x', f32Weight([m, cols], x)], ['nw', f32Weight([cols], nw)]]);
  const plan = lowerGraph(graph, { ...targetOf(gpu), ...(splitCols ? { splitCols } : {}) }, { kernels, fragments });
  const ex = new Executor(gpu, plan, weights);
  try {
    ex.reset();
    return { out: (await ex.run({}, 'out')).slice(0, m * rows), kernels: plan.dispatches.map((d) => d.kernel), graph, weights };
  } finally { ex.destroy(); }
}
/** The float64 reference of a graph on the given weights. */
const reference = (graph: ReturnType<GraphBuilder['finish']>, weights: WeightMap) => new ReferenceRunner(graph, weights).output({}, 'out');

// (TAPIR_TENSOR_CHECK=transposed: the transposed product's checks alone, =forward the forward's alone,
// when device time is short)
const forward = process.env.TAPIR_TENSOR_CHECK !== 'transposed', transposed = process.env.TAPIR_TENSOR_CHECK !== 'forward';
for (const dtype of forward ? (['f16', 'bf16', 'q8_0', 'q4_0', 'f32'] as const) : []) {
  // 130 rows: tiles of 64 rows; past TENSOR_WIDE_ROWS, 150 positions take the 128 × 128 tiles (and
  // blocks of 17..64 the 64 × 64, of ≤ 16 the small ones: a row's bits compared across all three)
  for (const [rows, splitCols] of [[130, undefined], [130, 64], [TENSOR_WIDE_ROWS + 70, undefined], [TENSOR_WIDE_ROWS + 70, 64]] as const) {
    // (split every 64 columns: 200 or 192 of them, four splits)
    const cols = (dtype.startsWith('q') ? 96 : 100) * (splitCols ? 2 : 1), n = 150;
    const wv = normal(rows * cols), x = normal(n * cols), nw = normal(cols);
    const w = weightOf([rows, cols], dtype, wv);
    const all = await product(w, rows, cols, x, n, nw, dtype, splitCols);
    const ref = reference(all.graph, all.weights);
    // Σ|w·x'|·scale: the reference on |dequantized w|, |x|, |nw| (the scale is |x|'s rms, the same as x's)
    const wAbs = f32Weight([rows, cols], Float32Array.from(reference(graphOfWeight(rows, cols, dtype), new Map([['w', w]])), Math.abs));
    const mag = reference(all.graph, new Map([['w', wAbs], ['x', f32Weight([n, cols], x.map(Math.abs))], ['nw', f32Weight([cols], nw.map(Math.abs))]]));
    const tensor = all.kernels[0] === 'matmulTensorKernel';
    const k = splitCols ?? cols, bound = dtype === 'f32' || !tensor ? 0 : 2 ** -10 + k * 2 ** -24;
    let worst = 0, bad = 0, num = 0, den = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs(all.out[i]! - ref[i]!);
      num += d * d; den += ref[i]! ** 2;
      const ratio = d / (mag[i]! * (bound || 1e-5) + 1e-30);
      if (!(ratio <= 1) && bound) bad++;
      worst = Math.max(worst, Number.isNaN(ratio) ? Infinity : ratio);
    }
    const rel = Math.sqrt(num / den);
    // a position's row is the same bits in any block
    let blocksDiffer = 0;
    for (const [m, from] of [[1, 0], [1, 149], [7, 64], [16, 100], [17, 3], [33, 117], [64, 40]] as const) {
      const part = await product(w, rows, cols, x.slice(from * cols, (from + m) * cols), m, nw, dtype, splitCols);
      const whole = all.out.subarray(from * rows, (from + m) * rows);
      if (part.out.some((v, i) => !Object.is(v, whole[i]))) blocksDiffer++;
    }
    const pass = (bound ? bad === 0 : rel <= 1e-5) && blocksDiffer === 0 && Number.isFinite(rel) && (dtype === 'f32' || tensor === gpu.matrices.ok);
    out[`${dtype}_${rows}${splitCols ? `_split${splitCols}` : ''}`] = { kernels: all.kernels, relErr: rel, worstErrorOverBound: worst, overBound: bad, blocksWithOtherBits: blocksDiffer, pass };
    ok &&= pass;
  }
}

// The transposed product (a gradient through a matrix product, ops/matmul_t_tensor.ts): out = Wᵀ·dy per
// position, dy's rows scaled by powers of two apart (10^-9 .. 10^3: gradients are small, and f16 alone
// would lose them), 5 and 16 positions (the 16-position tiles) and 17 and 100 (the 64-position tiles), a
// tall matrix split along its rows and one in row pieces (a binding limit under its bytes). Tolerance, as
// the header of ops/matmul_t_tensor.ts derives it: |out − ref| ≤ (2^-10 + R·2^-24)·Σ_r|W[r][c]·dy[t][r]|.
for (const dtype of transposed ? (['f16', 'bf16', 'q8_0', 'q4_0', 'f32'] as const) : []) {
  for (const [rows, T, maxBindingBytes] of [[130, 5, undefined], [1100, 16, undefined], [130, 17, undefined], [1100, 100, undefined], [300, 33, 40000]] as const) {
    const cols = dtype.startsWith('q') ? 160 : 150;
    const wv = normal(rows * cols), dy = normal(T * rows);
    for (let t = 0; t < T; t++) { const k = 10 ** (uniform() * 12 - 9); for (let r = 0; r < rows; r++) dy[t * rows + r]! *= k; }
    const w = weightOf([rows, cols], dtype, wv);
    const g = new GraphBuilder(), o = ops(g);
    const graph = g.finish({ out: g.apply(OPSET.ops.get('matvec_t')!, [o.weight('w', [rows, cols], dtype), o.weight('dy', [T, rows])], {}) });
    const weights: WeightMap = new Map([['w', w], ['dy', f32Weight([T, rows], dy)]]);
    const plan = lowerGraph(graph, targetOf(gpu, maxBindingBytes), { kernels, fragments });
    const ex = new Executor(gpu, plan, weights);
    let got: Float32Array;
    try { ex.reset(); got = (await ex.run({}, 'out')).slice(0, T * cols); } finally { ex.destroy(); }
    const ref = reference(graph, weights);
    const wAbs = f32Weight([rows, cols], Float32Array.from(reference(graphOfWeight(rows, cols, dtype), new Map([['w', w]])), Math.abs));
    const mag = reference(graph, new Map([['w', wAbs], ['dy', f32Weight([T, rows], dy.map(Math.abs))]]));
    const used = plan.dispatches.map((d) => d.kernel), tensor = used.includes('matmulTTensorKernel');
    const bound = tensor ? 2 ** -10 + rows * 2 ** -24 : 0;
    let worst = 0, bad = 0, num = 0, den = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs(got[i]! - ref[i]!);
      num += d * d; den += ref[i]! ** 2;
      const ratio = d / (mag[i]! * (bound || 1e-5) + 1e-38);
      if (!(ratio <= 1) && bound) bad++;
      worst = Math.max(worst, Number.isNaN(ratio) ? Infinity : ratio);
    }
    const rel = Math.sqrt(num / den);
    const pass = (bound ? bad === 0 : rel <= 1e-5) && Number.isFinite(rel) && (dtype === 'f32' ? !tensor : tensor === gpu.matrices.ok);
    out[`transposed_${dtype}_${rows}x${T}${maxBindingBytes ? '_pieces' : ''}`] = { kernels: [...new Set(used)], relErr: rel, worstErrorOverBound: worst, overBound: bad, pass };
    ok &&= pass;
  }
}

/** The dequantized weight as a graph output (its reference is its float64 values). */
function graphOfWeight(rows: number, cols: number, dtype: DType) {
  const g = new GraphBuilder(), o = ops(g);
  return g.finish({ out: o.weight('w', [rows, cols], dtype) });
}

console.log(JSON.stringify(out, null, 1));
await releaseGpu();
process.exit(ok ? 0 : 1);
