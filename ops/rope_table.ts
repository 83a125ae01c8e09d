// RoPE's cos/sin table, [context, rotDim/2, 2]: computed once at load, in float64, because WGSL's
// sin/cos lose accuracy at large angles (pos * freq reaches thousands of radians).
// Pair i of a head turns by pos * theta^(-2i/rotDim).
import type { Op } from './op.js';

export const ropeTable: Op<{ context: number; rotDim: number; theta: number }> = {
  name: 'rope_table',
  leaf: 'const',
  infer: (_, a) => ({ shape: [a.context, a.rotDim / 2, 2], dtype: 'f32' }),
  reference(_, { context, rotDim, theta }) {
    const half = rotDim / 2;
    const out = new Float64Array(context * half * 2);
    for (let p = 0; p < context; p++)
      for (let i = 0; i < half; i++) {
        const angle = p * Math.pow(theta, (-2 * i) / rotDim);
        out[(p * half + i) * 2] = Math.cos(angle);
        out[(p * half + i) * 2 + 1] = Math.sin(angle);
      }
    return out;
  },
};
