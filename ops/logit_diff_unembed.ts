// A logit difference read straight off the unembedding: x·W[target] − x·W[distractor] for one row x
// of the final normed residual (x·W[target] alone for ids [target]). It is logit_diff(matvec(W, x))
// without the other V − 2 logits: a gradient run's metric needs two rows of W, not the whole matrix
// (525 MB at the 1B shape, read once forward and once more by the backward's transposed product).
// Its gradient is dy·(W[target] − W[distractor]), TransformerLens' logit-difference direction.
// Sources: [W [V, dim] (any weight dtype, split in row pieces like every weight), x [.., dim] of one
// row, ids i32[1 | 2]] -> [1]; the gradient: [W, dy [1], ids] -> x's shape (attr `shape`).
import { type Invocation, type In, type Out, type Spec, type f32, type u32, sharedF32 } from '../compiler/kernel/dsl.js';
import { type Op, expectDtype, groupsFor } from './op.js';
import { WTYPE, weightAt } from './dequant.js';
import { workgroupSum } from './reduce.js';
import { ShapeError } from '../compiler/errors.js';
import { WEIGHT_DTYPES } from '../compiler/ir/dtype.js';

/** W[ids[0]] − W[ids[1]] (W[ids[0]] alone for one id), a float64 row of `cols` */
function direction(w: Float64Array, ids: Float64Array, cols: number): Float64Array {
  const t = ids[0]! * cols, d = ids.length > 1 ? ids[1]! * cols : -1;
  return Float64Array.from({ length: cols }, (_, c) => w[t + c]! - (d < 0 ? 0 : w[d + c]!));
}

export const logitDiffUnembed: Op = {
  name: 'logit_diff_unembed',
  infer([w, x, ids]) {
    if (w!.shape.length !== 2) throw new ShapeError(`logit_diff_unembed takes the unembedding [vocab, dim], got [${w!.shape}]`);
    expectDtype(w!, WEIGHT_DTYPES, 'unembedding');
    const dim = w!.shape[1]!;
    if (x!.shape[x!.shape.length - 1] !== dim || x!.shape.reduce((a, b) => a * b, 1) !== dim) throw new ShapeError(`logit_diff_unembed takes one row of ${dim}, got [${x!.shape}]`);
    if (ids!.shape.length !== 1 || (ids!.shape[0] !== 1 && ids!.shape[0] !== 2)) throw new ShapeError(`logit_diff_unembed takes token ids [target] or [target, distractor], got [${ids!.shape}]`);
    expectDtype(ids!, ['i32'], 'token ids');
    return { shape: [1], dtype: 'f32' };
  },
  reference([w, x, ids], _, s) {
    const dir = direction(w!, ids!, s.srcs[0]![1]!);
    return Float64Array.of(dir.reduce((acc, v, c) => acc + v * x![c]!, 0));
  },
  vjp: (n, dy, b) => [undefined, b.apply(logitDiffUnembedGrad, [n.srcs[0]!, dy, n.srcs[2]!], { shape: n.srcs[1]!.shape }), undefined],
  lower(n, ctx) {
    const [w, x, ids] = n.srcs, cols = w!.shape[1]!;
    // each piece of W adds what its rows give (an id lies in one piece; the first piece starts the sum)
    ctx.chunks(w!).forEach((c, k) => ctx.dispatch('logitDiffUnembedKernel', { w: c.buf, x: ctx.buf(x!), ids: ctx.buf(ids!), out: ctx.buf(n) },
      { cols, rowStart: c.rowStart, rows: c.rows, pair: ids!.size - 1, first: k === 0 ? 1 : 0, wtype: WTYPE[w!.dtype]! }, 1));
  },
};

/** dy·(W[ids[0]] − W[ids[1]]), shaped as the row it is the gradient of. */
export const logitDiffUnembedGrad: Op<{ shape: readonly number[] }> = {
  name: 'logit_diff_unembed_grad',
  infer: (_, a) => ({ shape: [...a.shape], dtype: 'f32' }),
  reference([w, dy, ids], _, s) {
    return direction(w!, ids!, s.srcs[0]![1]!).map((v) => dy![0]! * v);
  },
  lower(n, ctx) {
    const [w, dy, ids] = n.srcs, cols = w!.shape[1]!;
    ctx.chunks(w!).forEach((c, k) => ctx.dispatch('logitDiffUnembedGradKernel', { w: c.buf, dy: ctx.buf(dy!), ids: ctx.buf(ids!), out: ctx.buf(n) },
      { cols, rowStart: c.rowStart, rows: c.rows, pair: ids!.size - 1, first: k === 0 ? 1 : 0, wtype: WTYPE[w!.dtype]! }, groupsFor(cols, 64)));
  },
};

/** Element c of W[ids[0]] − W[ids[1]] as far as this piece of W (rows from rowStart) holds them: a row
 *  outside the piece is read clamped and counts 0 (ids[pair] is ids[0] when there is no distractor:
 *  never read past the ids, never subtracted). */
/** @inline */
function directionAt(w: In<u32>, ids: In<u32>, cols: u32, rowStart: u32, rows: u32, pair: u32, wtype: Spec<u32>, c: u32): f32 {
  return weightAt(w, wtype, rows, cols, Math.min(ids[0] - rowStart, rows - 1), c) * (ids[0] >= rowStart && ids[0] < rowStart + rows ? 1 : 0)
    - weightAt(w, wtype, rows, cols, Math.min(ids[pair] - rowStart, rows - 1), c) * (pair === 1 && ids[pair] >= rowStart && ids[pair] < rowStart + rows ? 1 : 0);
}

/** @kernel @workgroupSize 256 */
export function logitDiffUnembedKernel(id: Invocation, w: In<u32>, x: In<f32>, ids: In<u32>, out: Out<f32>, cols: u32, rowStart: u32, rows: u32, pair: u32, first: u32, wtype: Spec<u32>) {
  const partial = sharedF32(256);
  let s: f32 = 0;
  for (let c: u32 = id.local; c < cols; c += id.size) {
    s += x[c] * directionAt(w, ids, cols, rowStart, rows, pair, wtype, c);
  }
  partial[id.local] = s;
  workgroupSum(partial, id);
  if (id.local === 0) {
    const before: f32 = first === 1 ? 0 : out[0];
    out[0] = before + partial[0];
  }
}

/** @kernel @workgroupSize 64 */
export function logitDiffUnembedGradKernel(id: Invocation, w: In<u32>, dy: In<f32>, ids: In<u32>, out: Out<f32>, cols: u32, rowStart: u32, rows: u32, pair: u32, first: u32, wtype: Spec<u32>) {
  const c: u32 = id.global;
  if (c < cols) {
    const before: f32 = first === 1 ? 0 : out[c];
    out[c] = before + dy[0] * directionAt(w, ids, cols, rowStart, rows, pair, wtype, c);
  }
}
