// A metric for gradients: the log-probability of a token (ids [token], an input) at one row of the
// logits (the last unless `row` names one): z[t] − log Σ_i exp(z_i). Its gradient at that row is
// dy · (onehot(t) − softmax(z)), the softmax made from the metric itself (lse = z[t] − metric), so the
// backward reduces nothing again.
import { type Invocation, type In, type Out, type f32, type u32, sharedF32 } from '../compiler/kernel/dsl.js';
import { type Op, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { logSumExp } from './lens_stats.js';
import { rowStart } from './logit_diff.js';

const V_OF = (shape: readonly number[]) => shape[shape.length - 1]!;

export const logProb: Op = {
  name: 'log_prob',
  infer([logits, ids], a) {
    if (ids!.shape.length !== 1 || ids!.shape[0] !== 1) throw new ShapeError(`log_prob takes one token id [token], got [${ids!.shape}]`);
    rowStart(logits!.shape.reduce((x, y) => x * y, 1), V_OF(logits!.shape), a.row);
    return { shape: [1], dtype: 'f32' };
  },
  reference([z, ids], a, s) {
    const V = V_OF(s.srcs[0]!), at = rowStart(z!.length, V, a.row);
    let m = -Infinity, sum = 0;
    for (let i = 0; i < V; i++) m = Math.max(m, z![at + i]!);
    for (let i = 0; i < V; i++) sum += Math.exp(z![at + i]! - m);
    return Float64Array.of(z![at + ids![0]!]! - (m + Math.log(sum)));
  },
  vjp: (n, dy, b) => [b.apply(logProbGrad, [dy, n.srcs[1]!, n.srcs[0]!, n], n.attr), undefined],
  lower(n, ctx) {
    const [z, ids] = n.srcs;
    ctx.dispatch('logProbKernel', { z: ctx.buf(z!), ids: ctx.buf(ids!), out: ctx.buf(n) }, { at: rowStart(z!.size, V_OF(z!.shape), n.attr.row), n: V_OF(z!.shape) }, 1);
  },
};

/** dy · (onehot(t) − softmax(z)) at the metric's row, 0 at the other rows (srcs: dy, ids, logits, metric). */
export const logProbGrad: Op = {
  name: 'log_prob_grad',
  infer: ([, , logits]) => ({ shape: logits!.shape, dtype: 'f32' }),
  reference([dy, ids, z, metric], a, s) {
    const V = V_OF(s.out), out = new Float64Array(z!.length), at = rowStart(out.length, V, a.row), t = ids![0]!;
    const lse = z![at + t]! - metric![0]!;
    for (let i = 0; i < V; i++) out[at + i] = dy![0]! * ((i === t ? 1 : 0) - Math.exp(z![at + i]! - lse));
    return out;
  },
  lower(n, ctx) {
    const [dy, ids, z, metric] = n.srcs;
    ctx.dispatch('logProbGradKernel', { dy: ctx.buf(dy!), ids: ctx.buf(ids!), z: ctx.buf(z!), metric: ctx.buf(metric!), out: ctx.buf(n) },
      { total: n.size, at: rowStart(n.size, V_OF(n.shape), n.attr.row), n: V_OF(n.shape) }, groupsFor(n.size, 64));
  },
};

/** One workgroup: the row's log-sum-exp (max taken out first), then z[t] minus it. */
/** @kernel @workgroupSize 256 */
export function logProbKernel(id: Invocation, z: In<f32>, ids: In<u32>, out: Out<f32>, at: u32, n: u32) {
  const a = sharedF32(256);
  logSumExp(z, at, n, a, id);
  if (id.local === 0) {
    out[0] = z[at + ids[0]] - a[0];
  }
}

/** @kernel @workgroupSize 64 */
export function logProbGradKernel(id: Invocation, dy: In<f32>, ids: In<u32>, z: In<f32>, metric: In<f32>, out: Out<f32>, total: u32, at: u32, n: u32) {
  const i: u32 = id.global;
  if (i < total) {
    const inRow: boolean = i >= at && i < at + n;
    const lse: f32 = z[at + ids[0]] - metric[0];
    const hot: f32 = i === at + ids[0] ? 1 : 0;
    out[i] = inRow ? dy[0] * (hot - Math.exp(z[i] - lse)) : 0;
  }
}
