// Sparse autoencoder decoder over a batch of rows: x̂ = acts·W_dec + b_dec, W_dec [d_sae, d_in] as SAELens
// stores it. TopK rows read only their k chosen latents; ReLU rows skip the zeros.
import { type Invocation, type In, type Out, type Spec, type f32, type u32 } from '../compiler/kernel/dsl.js';
import type { SaeShape } from './sae_encode.js';
import { matvec } from './matvec.js';
import { type Op, expectDtype, expectShape, overRows, rowsOf } from './op.js';

/** float64 reference */
export function saeDecodeReference(acts: ArrayLike<number>, wDec: ArrayLike<number>, bDec: ArrayLike<number>, s: SaeShape): Float64Array {
  const { rows, dIn, dSae } = s;
  const out = new Float64Array(rows * dIn);
  for (let b = 0; b < rows; b++)
    for (let i = 0; i < dIn; i++) {
      let v = bDec[i]!;
      for (let j = 0; j < dSae; j++) v += acts[b * dSae + j]! * wDec[j * dIn + i]!;
      out[b * dIn + i] = v;
    }
  return out;
}

/** The decoder as a graph op, one row a position. It reads the activations only (every latent a TopK
 *  encoder left out is 0, so skipping zeros decodes TopK and ReLU alike). Sources: [acts, W_dec, b_dec]. */
export const saeDecode: Op = overRows({
  name: 'sae_decode',
  infer([acts, wDec, bDec]) {
    const dSae = acts!.shape[0]!, dIn = wDec!.shape[1] ?? 0;
    expectShape(acts!, [dSae], 'the SAE activations');
    expectShape(wDec!, [dSae, dIn], 'W_dec');
    expectShape(bDec!, [dIn], 'b_dec');
    for (const [t, what] of [[wDec, 'W_dec'], [bDec, 'b_dec']] as const) expectDtype(t!, ['f32'], what);
    return { shape: [dIn], dtype: 'f32' };
  },
  reference([acts, wDec, bDec], _, s) {
    const [dSae, dIn] = s.srcs[1] as [number, number];
    return saeDecodeReference(acts!, wDec!, bDec!, { rows: 1, dIn, dSae, arch: 'relu', k: 0 });
  },
  // x̂ = acts·W_dec + b_dec: d acts = W_dec·dy (W_dec [d_sae, d_in] as a matrix product's weight)
  vjp: (n, dy, g) => [g.apply(matvec, [n.srcs[1]!, dy], {}), undefined, undefined],
  lower(n, ctx) {
    const [acts, wDec, bDec] = n.srcs;
    const rows = rowsOf(acts!.shape), [dSae, dIn] = wDec!.shape as [number, number];
    ctx.dispatch('saeDecodeKernel', { acts: ctx.buf(acts!), chosen: ctx.scratch(n, 'chosen', 1), wDec: ctx.buf(wDec!), bDec: ctx.buf(bDec!), out: ctx.buf(n) },
      { dIn, dSae, k: 0, topk: 0 }, rows);
  },
}, { rows: () => [0] });

/** A workgroup per row, an invocation per output dimension (strided). */
/** @kernel @workgroupSize 64 */
export function saeDecodeKernel(id: Invocation, acts: In<f32>, chosen: In<u32>, wDec: In<f32>, bDec: In<f32>, out: Out<f32>,
  dIn: u32, dSae: u32, k: u32, topk: Spec<u32>) {
  const row: u32 = id.group;
  for (let i: u32 = id.local; i < dIn; i += id.size) {
    let v: f32 = bDec[i];
    if (topk === 1) {
      for (let t: u32 = 0; t < k; t++) {
        const j: u32 = chosen[row * k + t];
        if (j < dSae) { // (aux-K marks a round with no latent left as dSae)
          v += acts[row * dSae + j] * wDec[j * dIn + i];
        }
      }
    } else {
      for (let j: u32 = 0; j < dSae; j++) {
        const a: f32 = acts[row * dSae + j];
        if (a !== 0) {
          v += a * wDec[j * dIn + i];
        }
      }
    }
    out[row * dIn + i] = v;
  }
}
