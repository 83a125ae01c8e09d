// RMSNorm's gradient with respect to its input. With s = 1/√(mean(x²) + eps) over a chunk of m (the
// weight's length) and y = w·x·s: dx_j = s·w_j·dy_j − (s³/m)·x_j·Σ_i dy_i·w_i·x_i.
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
};
