// A metric for gradients: one row's logit of a token, minus another's when two are given (ids [target]
// or [target, distractor], an input, so one plan serves every pair): logits [.., V] -> [1]. The row is
// the last unless `row` names one (a metric at an earlier position). Its gradient puts +dy and −dy at
// the two logits of that row (logit_diff_grad).
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';

/** The offset of the metric's row in logits of `size` elements, rows of V (the last unless `row`). */
export function rowStart(size: number, V: number, row: unknown): number {
  const rows = size / V;
  if (row === undefined) return size - V;
  const r = Number(row);
  if (!Number.isInteger(r) || r < 0 || r >= rows) throw new ShapeError(`the metric's row ${String(row)} is outside the logits' ${rows} rows`);
  return r * V;
}

export const logitDiff: Op = {
  name: 'logit_diff',
  infer([logits, ids], a) {
    if (ids!.shape.length !== 1 || (ids!.shape[0] !== 1 && ids!.shape[0] !== 2)) throw new ShapeError(`logit_diff takes token ids [target] or [target, distractor], got [${ids!.shape}]`);
    const V = logits!.shape[logits!.shape.length - 1]!;
    rowStart(logits!.shape.reduce((x, y) => x * y, 1), V, a.row);
    return { shape: [1], dtype: 'f32' };
  },
  reference([x, ids], a, s) {
    const V = s.srcs[0]![s.srcs[0]!.length - 1]!, at = rowStart(x!.length, V, a.row);
    return Float64Array.of(x![at + ids![0]!]! - (ids!.length > 1 ? x![at + ids![1]!]! : 0));
  },
  vjp: (n, dy, b) => [b.apply(logitDiffGrad, [dy, n.srcs[1]!, n.srcs[0]!], n.attr), undefined],
  lower(n, ctx) {
    const [x, ids] = n.srcs, V = x!.shape[x!.shape.length - 1]!;
    ctx.dispatch('logitDiffKernel', { x: ctx.buf(x!), ids: ctx.buf(ids!), out: ctx.buf(n) }, { at: rowStart(x!.size, V, n.attr.row), pair: ids!.size - 1 }, 1);
  },
};

/** dy at the target's logit of the metric's row, −dy at the distractor's, 0 elsewhere (logits for the shape). */
export const logitDiffGrad: Op = {
  name: 'logit_diff_grad',
  infer: ([, , logits]) => ({ shape: logits!.shape, dtype: 'f32' }),
  reference([dy, ids], a, s) {
    const V = s.out[s.out.length - 1]!, out = new Float64Array(s.out.reduce((x, y) => x * y, 1)), at = rowStart(out.length, V, a.row);
    out[at + ids![0]!]! += dy![0]!;
    if (ids!.length > 1) out[at + ids![1]!]! -= dy![0]!;
    return out;
  },
  lower(n, ctx) {
    const [dy, ids] = n.srcs, V = n.shape[n.shape.length - 1]!;
    ctx.dispatch('logitDiffGradKernel', { dy: ctx.buf(dy!), ids: ctx.buf(ids!), out: ctx.buf(n) }, { n: n.size, at: rowStart(n.size, V, n.attr.row), pair: ids!.size - 1 }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function logitDiffKernel(id: Invocation, x: In<f32>, ids: In<u32>, out: Out<f32>, at: u32, pair: u32) {
  if (id.global === 0) {
    const minus: f32 = pair === 1 ? x[at + ids[1]] : 0;
    out[0] = x[at + ids[0]] - minus;
  }
}

/** @kernel @workgroupSize 64 */
export function logitDiffGradKernel(id: Invocation, dy: In<f32>, ids: In<u32>, out: Out<f32>, n: u32, at: u32, pair: u32) {
  const i: u32 = id.global;
  if (i < n) {
    const plus: f32 = i === at + ids[0] ? dy[0] : 0;
    const minus: f32 = pair === 1 && i === at + ids[1] ? dy[0] : 0;
    out[i] = plus - minus;
  }
}
