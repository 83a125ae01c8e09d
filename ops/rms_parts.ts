// The parts of an RMSNorm TransformerLens shows as hooks: the scale sqrt(mean(x²) + eps) [1]
// (hook_scale) and x / scale [n] (hook_normalized, before the weight). Only for reading: the model's
// norms are fused into the matvecs after them, so this runs only when such a hook is tapped.
import { type Invocation, type In, type Out, type u32, f32, sharedF32 } from '../compiler/kernel/dsl.js';
import { type Op, overRows, rowsOf } from './op.js';
import { sumOfSquares } from './reduce.js';
import { ShapeError } from '../compiler/errors.js';

export const rmsParts: Op<{ eps: number; part: 'scale' | 'normalized' }> = overRows<{ eps: number; part: 'scale' | 'normalized' }>({
  name: 'rms_parts',
  infer([x], a) {
    if (x!.shape.length !== 1) throw new ShapeError('rms_parts takes a vector');
    return { shape: a.part === 'scale' ? [1] : x!.shape, dtype: 'f32' };
  },
  reference([x], { eps, part }) {
    let ss = 0;
    for (const v of x!) ss += v * v;
    const scale = Math.sqrt(ss / x!.length + eps);
    return part === 'scale' ? Float64Array.of(scale) : x!.map((v) => v / scale);
  },
  lower(n, ctx) {
    const x = n.srcs[0]!;
    ctx.dispatch('rmsPartsKernel', { x: ctx.buf(x), out: ctx.buf(n) }, { n: x.shape[x.shape.length - 1]!, eps: n.attr.eps as number, normalized: n.attr.part === 'normalized' ? 1 : 0 }, rowsOf(x.shape));
  },
}, { rows: () => [0] });

/** @kernel @workgroupSize 64 */
export function rmsPartsKernel(id: Invocation, x: In<f32>, out: Out<f32>, n: u32, eps: f32, normalized: u32) {
  const partial = sharedF32(64);
  const at: u32 = id.group * n;
  sumOfSquares(x, at, n, partial, id);
  const scale: f32 = Math.sqrt(partial[0] / f32(n) + eps);
  if (normalized === 1) {
    for (let i: u32 = id.local; i < n; i += id.size) {
      out[at + i] = x[at + i] / scale;
    }
  } else if (id.local === 0) {
    out[id.group] = scale;
  }
}
