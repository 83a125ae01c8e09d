// SwiGLU's gradients: out = silu(g)·u, so d/du = dy·silu(g) and d/dg = dy·u·silu'(g), with
// silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
import { type Op, expectShape } from './op.js';

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
};
