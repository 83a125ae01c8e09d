// SwiGLU's gradients: out = silu(g)·u, so d/du = dy·silu(g) and d/dg = dy·u·silu'(g), with
// silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor } from './op.js';

export const siluMulGrad: Op<{ of: 'gate' | 'up' }> = {
  name: 'silu_mul_grad',
  infer([g, u, dy]) {
    expectShape(u!, g!.shape, 'up projection');
    expectShape(dy!, g!.shape, 'SwiGLU gradient');
    return { shape: g!.shape, dtype: 'f32' };
  },
  reference([g, u, dy], { of }) {
    return g!.map((x, i) => {
      const sig = 1 / (1 + Math.exp(-x));
      return of === 'up' ? dy![i]! * x * sig : dy![i]! * u![i]! * sig * (1 + x * (1 - sig));
    });
  },
  lower(n, ctx) {
    const [g, u, dy] = n.srcs;
    ctx.dispatch('siluMulGradKernel', { gate: ctx.buf(g!), up: ctx.buf(u!), dy: ctx.buf(dy!), out: ctx.buf(n) }, { n: n.size, ofUp: n.attr.of === 'up' ? 1 : 0 }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function siluMulGradKernel(id: Invocation, gate: In<f32>, up: In<f32>, dy: In<f32>, out: Out<f32>, n: u32, ofUp: u32) {
  const i: u32 = id.global;
  if (i < n) {
    const g: f32 = gate[i];
    const sig: f32 = 1 / (1 + Math.exp(-g));
    out[i] = ofUp === 1 ? dy[i] * g * sig : dy[i] * up[i] * sig * (1 + g * (1 - sig));
  }
}
