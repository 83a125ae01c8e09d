// RMSNorm's gradient with respect to its input. With s = 1/√(mean(x²) + eps) over a chunk of m (the
// weight's length) and y = w·x·s: dx_j = s·w_j·dy_j − (s³/m)·x_j·Σ_i dy_i·w_i·x_i. Fused (ops/rules.ts,
// add_into_grad): `acc`, a fourth source added to each element — the residual stream's other gradient.
import { type Invocation, type In, type Out, f32, type u32, sharedF32 } from '../compiler/kernel/dsl.js';
import { sumOfSquares, workgroupSum } from './reduce.js';
import { type Op, expectShape } from './op.js';

export const rmsnormGrad: Op<{ eps: number; acc?: boolean }> = {
  name: 'rmsnorm_grad',
  infer([x, w, dy, acc], a) {
    expectShape(dy!, x!.shape, 'rmsnorm gradient');
    if (a.acc) expectShape(acc!, x!.shape, 'the gradient added');
    if (w!.shape.length !== 1 || x!.shape[x!.shape.length - 1]! % w!.shape[0]! !== 0) expectShape(w!, x!.shape.slice(-1), 'rmsnorm weight');
    return { shape: x!.shape, dtype: 'f32' };
  },
  reference([x, w, dy, acc], { eps }) {
    const m = w!.length, out = acc ? Float64Array.from(acc) : new Float64Array(x!.length);
    for (let at = 0; at < x!.length; at += m) {
      let ss = 0, dot = 0;
      for (let i = 0; i < m; i++) { ss += x![at + i]! ** 2; dot += dy![at + i]! * w![i]! * x![at + i]!; }
      const s = 1 / Math.sqrt(ss / m + eps);
      for (let j = 0; j < m; j++) out[at + j]! += s * w![j]! * dy![at + j]! - ((s ** 3) / m) * x![at + j]! * dot;
    }
    return out;
  },
  lower(n, ctx) {
    const [x, w, dy, acc] = n.srcs, m = w!.shape[0]!;
    ctx.dispatch('rmsnormGradKernel', { x: ctx.buf(x!), w: ctx.buf(w!), dy: ctx.buf(dy!), acc: ctx.buf(acc ?? dy!), out: ctx.buf(n) }, { n: m, eps: Number(n.attr.eps), hasAcc: acc ? 1 : 0 }, n.size / m);
  },
};

/** A workgroup per chunk: the sum of squares and Σ dy·w·x reduced, then every element. */
/** @kernel @workgroupSize 64 */
export function rmsnormGradKernel(id: Invocation, x: In<f32>, w: In<f32>, dy: In<f32>, acc: In<f32>, out: Out<f32>, n: u32, eps: f32, hasAcc: u32) {
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
    const before: f32 = hasAcc === 1 ? acc[at + i] : 0;
    out[at + i] = before + (s * w[i] * dy[at + i] - k * x[at + i]);
  }
}
