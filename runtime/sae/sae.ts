// A sparse autoencoder's parameters, initialisation, its float64 reference (composed from the kernels'
// references in ops/), and the metrics by their textbook definitions.
import { type SaeArch, saeEncodeReference } from '../../ops/sae_encode.js';
import { saeDecodeReference } from '../../ops/sae_decode.js';
import { Rng } from '../sampler.js';
import type { SaeDims, SaeTensors } from './gpu_sae.js';

export interface SaeModel {
  dims: SaeDims;
  params: SaeTensors;
  /** inputs are multiplied by this before encoding (E‖x‖ = √d_in on the training data); 1 once folded */
  inputScale: number;
  hook?: string;
  model?: string;
}

/** SAELens's initialisation (W_dec by PyTorch's default Kaiming-uniform: ±√(6 / d_in); rows scaled to unit
 *  norm for TopK; W_enc = W_decᵀ; b_enc = 0) with b_dec = the data's mean when given. Seeded. */
export function initSae(dims: SaeDims, seed: number, mean?: Float32Array): SaeTensors {
  const { dIn, dSae } = dims;
  const rng = new Rng(seed);
  const bound = Math.sqrt(6 / dIn);
  const W_dec = new Float32Array(dSae * dIn);
  for (let n = 0; n < W_dec.length; n++) W_dec[n] = (2 * rng.f32() - 1) * bound;
  if (dims.arch === 'topk') unitRows(W_dec, dSae, dIn);
  const W_enc = new Float32Array(dIn * dSae);
  for (let j = 0; j < dSae; j++) for (let i = 0; i < dIn; i++) W_enc[i * dSae + j] = W_dec[j * dIn + i]!;
  return { W_enc, b_enc: new Float32Array(dSae), W_dec, b_dec: mean ? Float32Array.from(mean) : new Float32Array(dIn) };
}

export function unitRows(w: Float32Array, rows: number, cols: number) {
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += w[r * cols + c]! ** 2;
    const s = ss > 0 ? 1 / Math.sqrt(ss) : 1;
    for (let c = 0; c < cols; c++) w[r * cols + c]! *= s;
  }
}

/** float64 forward pass of the SAE on `rows` rows of x (already scaled). */
export function saeReference(p: SaeTensors, dims: SaeDims, x: ArrayLike<number>, rows: number) {
  const shape = { rows, dIn: dims.dIn, dSae: dims.dSae, arch: dims.arch as SaeArch, k: dims.k };
  const enc = saeEncodeReference(x, p.W_enc, p.b_enc, p.b_dec, shape);
  return { ...enc, xHat: saeDecodeReference(enc.acts, p.W_dec, p.b_dec, shape) };
}

/** Accumulates L0, FVU and firing counts over rows of (x, acts, x̂). FVU = E‖x − x̂‖² / E‖x − E[x]‖² with
 *  E[x] the per-dimension mean over the same rows (not the mean of all entries). */
export class SaeMetrics {
  private n = 0;
  private active = 0;
  private sqErr = 0;
  private sum: Float64Array;
  private sumSq = 0;
  readonly fired: Float64Array;
  constructor(readonly dIn: number, readonly dSae: number) {
    this.sum = new Float64Array(dIn);
    this.fired = new Float64Array(dSae);
  }
  add(x: ArrayLike<number>, acts: ArrayLike<number>, xHat: ArrayLike<number>, rows: number) {
    for (let b = 0; b < rows; b++) {
      for (let i = 0; i < this.dIn; i++) {
        const v = x[b * this.dIn + i]!, e = v - xHat[b * this.dIn + i]!;
        this.sqErr += e * e;
        this.sum[i]! += v;
        this.sumSq += v * v;
      }
      for (let j = 0; j < this.dSae; j++) if (acts[b * this.dSae + j]! > 0) { this.active++; this.fired[j]!++; }
    }
    this.n += rows;
  }
  get tokens() { return this.n; }
  /** mean active latents a token */
  get l0() { return this.active / this.n; }
  get fvu() {
    // Σ_b ‖x_b − μ‖² = Σ x² − n ‖μ‖²
    let mu2 = 0;
    for (const s of this.sum) mu2 += (s / this.n) ** 2;
    return this.sqErr / (this.sumSq - this.n * mu2);
  }
  /** latents that fired on no token */
  get deadFraction() { return this.fired.filter((c) => c === 0).length / this.dSae; }
  /** log10 of each latent's firing frequency (−Infinity for dead ones) */
  get logDensity() { return Array.from(this.fired, (c) => Math.log10(c / this.n)); }
}
