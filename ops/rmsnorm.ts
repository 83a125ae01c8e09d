// RMSNorm: out = w * x / sqrt(mean(x^2) + eps), over one vector [n] (or each row of [T, n]). A weight
// shorter than x (dividing it) normalizes each of its chunks on its own: Qwen3's per-head q/k norm.
import { type Invocation, type In, type Out, f32, type u32, sharedF32 } from '../compiler/kernel/dsl.js';
import { sumOfSquares } from './reduce.js';
import { type Op, expectShape, overRows, rowsOf } from './op.js';
import { rmsnormGrad } from './rmsnorm_grad.js';

export const rmsnorm: Op<{ eps: number }> = overRows<{ eps: number }>({
  name: 'rmsnorm',
  infer([x, w]) {
    if (x!.shape.length !== 1) throw new Error('rmsnorm takes a vector');
    if (w!.shape.length !== 1 || x!.shape[0]! % w!.shape[0]! !== 0) expectShape(w!, x!.shape, 'rmsnorm weight');
    return { shape: x!.shape, dtype: 'f32' };
  },
  reference([x, w], { eps }) {
    const m = w!.length, out = new Float64Array(x!.length);
    for (let at = 0; at < x!.length; at += m) {
      let ss = 0;
      for (let i = 0; i < m; i++) ss += x![at + i]! ** 2;
      const scale = 1 / Math.sqrt(ss / m + eps);
      for (let i = 0; i < m; i++) out[at + i] = w![i]! * x![at + i]! * scale;
    }
    return out;
  },
  vjp: (n, dy, b) => [b.apply(rmsnormGrad, [n.srcs[0]!, n.srcs[1]!, dy], { eps: Number(n.attr.eps) }), undefined], // (the weight's: none)
  lower(n, ctx) {
    const m = n.srcs[1]!.shape[0]!; // a workgroup per chunk of the weight's length
    ctx.dispatch('rmsnormKernel', { x: ctx.buf(n.srcs[0]!), w: ctx.buf(n.srcs[1]!), out: ctx.buf(n) }, { n: m, eps: Number(n.attr.eps) }, (rowsOf(n.shape) * n.shape[n.shape.length - 1]!) / m);
  },
}, { rows: () => [0] });

/** A workgroup per row: a tree reduction of the squares, then the scaling. */
/** @kernel @workgroupSize 64 */
export function rmsnormKernel(id: Invocation, x: In<f32>, w: In<f32>, out: Out<f32>, n: u32, eps: f32) {
  const partial = sharedF32(64);
  const at: u32 = id.group * n;
  sumOfSquares(x, at, n, partial, id);
  const scale: f32 = 1 / Math.sqrt(partial[0] / f32(n) + eps);
  for (let i: u32 = id.local; i < n; i += id.size) {
    out[at + i] = w[i] * (x[at + i] * scale);
  }
}
