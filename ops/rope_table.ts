// RoPE's cos/sin table, [context, rotDim/2, 2]: computed once at load, in float64, because WGSL's
// sin/cos lose accuracy at large angles (pos * freq reaches thousands of radians).
// Pair i of a head turns by pos * theta^(-2i/rotDim) / factors[i]; the divisors implement Llama 3's
// frequency scaling (llama.cpp stores them as the `rope_freqs.weight` tensor; 1 means unscaled).
import type { Op } from './op.js';
import { ShapeError } from '../compiler/errors.js';

/** `inverse`: the opposite angles (sin negated): RoPE through it turns a vector back, which is RoPE's
 *  gradient (ops/rope.ts's vjp). */
export const ropeTable: Op<{ context: number; rotDim: number; theta: number; factors?: readonly number[]; inverse?: boolean }> = {
  name: 'rope_table',
  leaf: 'const',
  infer(_, a) {
    if (a.factors && a.factors.length !== a.rotDim / 2) throw new ShapeError(`RoPE needs ${a.rotDim / 2} frequency factors, got ${a.factors.length}`);
    return { shape: [a.context, a.rotDim / 2, 2], dtype: 'f32' };
  },
  reference(_, { context, rotDim, theta, factors, inverse }) {
    const half = rotDim / 2;
    const out = new Float64Array(context * half * 2);
    for (let p = 0; p < context; p++)
      for (let i = 0; i < half; i++) {
        const angle = (p * Math.pow(theta, (-2 * i) / rotDim)) / (factors ? factors[i]! : 1);
        out[(p * half + i) * 2] = Math.cos(angle);
        out[(p * half + i) * 2 + 1] = inverse ? -Math.sin(angle) : Math.sin(angle);
      }
    return out;
  },
};

/** Llama 3's RoPE scaling as divisors per frequency (HF `rope_scaling` with rope_type "llama3"):
 *  long wavelengths are slowed by `factor`, short ones kept, and the band between blended. */
export interface Llama3RopeScaling { factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number }

export function llama3RopeFactors(s: Llama3RopeScaling, rotDim: number, theta: number): number[] {
  const lowWavelen = s.originalContext / s.lowFreqFactor;
  const highWavelen = s.originalContext / s.highFreqFactor;
  return Array.from({ length: rotDim / 2 }, (_, i) => {
    const wavelen = (2 * Math.PI) / Math.pow(theta, (-2 * i) / rotDim);
    if (wavelen < highWavelen) return 1;
    if (wavelen > lowWavelen) return s.factor;
    const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
}
