// RMSNorm's gradient with respect to its input. With s = 1/√(mean(x²) + eps) over a chunk of m (the
// weight's length) and y = w·x·s: dx_j = s·w_j·dy_j − (s³/m)·x_j·Σ_i dy_i·w_i·x_i.
import { type Invocation, type In, type Out, f32, type u32, sharedF32 } from '../compiler/kernel/dsl.js';
import { sumOfSquares, workgroupSum } from './reduce.js';
import { type Op, expectShape } from './op.js';

export const rmsnormGrad: Op<{ eps: number }> = {
  name: 'rmsnorm_grad',
  infer([x, w, dy]) {
    expectShape(dy!, x!.shape, 'rmsnorm gradient');
    if (w!.shape.length !== 1 || x!.shape[x!.shape.length - 1]! % w!.shape[0]! !== 0) expectShape(w!, x!.shape.slice(-1), 'rmsnorm weight');
    return { shape: x!.shape, dtype: 'f32' };
  },
  reference([x, w, dy], { eps }) {
    const m = w!.length, out = new Float64Array(x!.length);
    for (let at = 0; at < x!.length; at += m) {
      let ss = 0, dot = 0;
      for (let i = 0; i < m; i++) { ss += x![at + i]! ** 2; dot += dy![at + i]! * w![i]! * x![at + i]!; }
      const s = 1 / Math.sqrt(ss / m + eps);
      for (let j = 0; j < m; j++) out[at + j] = s * w![j]! * dy![at + j]! - ((s ** 3) / m) * x![at + j]! * dot;
    }
    return out;
  },
  lower(n, ctx) {
    const [x, w, dy] = n.srcs, m = w!.shape[0]!;
    ctx.dispatch('rmsnormGradKernel', { x: ctx.buf(x!), w: ctx.buf(w!), dy: ctx.buf(dy!), out: ctx.buf(n) }, { n: m, eps: Number(n.attr.eps) }, n.size / m);
  },
};

/** A workgroup per chunk: the sum of squares and Σ dy·w·x reduced, then every element. */
/** @kernel @workgroupSize 64 */
export function rmsnormGradKernel(id: Invocation, x: In<f32>, w: In<f32>, dy: In<f32>, out: Out<f32>, n: u32, eps: f32) {
  const partial = sharedF32(64);
  const dots = sharedF32(64);
  const at: u32 = id.group * n;
  let d: f32 = 0;
  for (let i: u32 = id.local; i < n; i += id.size) {
    d += dy[at + i] * w[i] * x[at + i];
  }
  dots[id.local] = d;
  workgroupSum(dots, id);
  sumOfSquares(x, at, n, partial, id);
  const s: f32 = 1 / Math.sqrt(partial[0] / f32(n) + eps);
  const k: f32 = (s * s * s / f32(n)) * dots[0];
  for (let i: u32 = id.local; i < n; i += id.size) {
    out[at + i] = s * w[i] * dy[at + i] - k * x[at + i];
  }
}
