// Sparse autoencoder decoder over a batch of rows: x̂ = acts·W_dec + b_dec, W_dec [d_sae, d_in] as SAELens
// stores it. TopK rows read only their k chosen latents; ReLU rows skip the zeros.
import { type Invocation, type In, type Out, type Spec, type f32, type u32 } from '../compiler/kernel/dsl.js';
import type { SaeShape } from './sae_encode.js';

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
