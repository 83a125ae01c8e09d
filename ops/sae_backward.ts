// Gradients of a sparse autoencoder's training loss over a batch of B rows:
//   L = (1/B) Σ_b ‖x̂_b − x_b‖²  (+ for ReLU: λ (1/B) Σ_b Σ_j acts_bj ‖W_dec_j‖, the L1 penalty weighted by
//   the decoder rows' norms, so shrinking a decoder row cannot buy sparsity).
// With g = ∂L/∂x̂ = 2 (x̂ − x) / B and u = x − b_dec (the encoder's input):
//   ∂L/∂pre_bj = [acts_bj > 0] (Σ_i g_bi W_dec_ji + λ ‖W_dec_j‖ / B)   (TopK: only the chosen, positive ones)
//   ∂L/∂W_dec_ji = Σ_b acts_bj g_bi + λ/B Σ_b acts_bj W_dec_ji / ‖W_dec_j‖
//   ∂L/∂W_enc_ij = Σ_b u_bi ∂L/∂pre_bj,   ∂L/∂b_enc_j = Σ_b ∂L/∂pre_bj
//   ∂L/∂b_dec_i = Σ_b g_bi − Σ_j W_enc_ij ∂L/∂b_enc_j
// TopK adds aux-K (Gao et al.): the error e = x − x̂ (held constant) reconstructed by the kAux largest dead
// latents, ê = actsAux·W_dec (no bias), α (1/B) Σ_b ‖ê_b − e_b‖²: with gAux = 2α (ê − e) / B, the dead
// latents' pre-activations and decoder rows get Σ_i gAux_bi W_dec_ji and Σ_b actsAux_bj gAux_bi.
// Every sum runs in a fixed order (no atomics), so a training run is bit-reproducible.
import { type Invocation, type In, type Out, type u32, f32, idiv } from '../compiler/kernel/dsl.js';
import type { SaeShape } from './sae_encode.js';

export interface SaeParams { wEnc: ArrayLike<number>; bEnc: ArrayLike<number>; wDec: ArrayLike<number>; bDec: ArrayLike<number> }

/** float64 reference: the loss and every parameter's gradient, given the forward pass's acts and x̂. */
export function saeBackwardReference(x: ArrayLike<number>, acts: ArrayLike<number>, xHat: ArrayLike<number>, p: SaeParams, s: SaeShape, l1 = 0,
  aux?: { acts: ArrayLike<number>; alpha: number; /** the error held constant (default x − x̂) */ e?: ArrayLike<number> }) {
  const { rows: B, dIn, dSae } = s;
  const actsAux = aux?.acts ?? new Float64Array(B * dSae), alpha = aux?.alpha ?? 0;
  const norm = Float64Array.from({ length: dSae }, (_, j) => Math.hypot(...Array.from({ length: dIn }, (_, i) => p.wDec[j * dIn + i]!)));
  let loss = 0;
  const g = new Float64Array(B * dIn);
  for (let n = 0; n < B * dIn; n++) { const e = xHat[n]! - x[n]!; loss += e * e / B; g[n] = 2 * e / B; }
  for (let n = 0; n < B * dSae; n++) loss += l1 * acts[n]! * norm[n % dSae]! / B;
  const gAux = new Float64Array(B * dIn);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < dIn; i++) {
      let e = 0;
      for (let j = 0; j < dSae; j++) e += actsAux[b * dSae + j]! * p.wDec[j * dIn + i]!;
      const d = e - (aux?.e ? aux.e[b * dIn + i]! : x[b * dIn + i]! - xHat[b * dIn + i]!);
      loss += alpha * d * d / B;
      gAux[b * dIn + i] = 2 * alpha * d / B;
    }
  const gPre = new Float64Array(B * dSae);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < dSae; j++) {
      let v = 0;
      if (acts[b * dSae + j]! > 0) {
        v += l1 * norm[j]! / B;
        for (let i = 0; i < dIn; i++) v += g[b * dIn + i]! * p.wDec[j * dIn + i]!;
      }
      if (actsAux[b * dSae + j]! > 0) for (let i = 0; i < dIn; i++) v += gAux[b * dIn + i]! * p.wDec[j * dIn + i]!;
      gPre[b * dSae + j] = v;
    }
  const wDec = new Float64Array(dSae * dIn), wEnc = new Float64Array(dIn * dSae), bEnc = new Float64Array(dSae), bDec = new Float64Array(dIn);
  for (let j = 0; j < dSae; j++)
    for (let i = 0; i < dIn; i++)
      for (let b = 0; b < B; b++) wDec[j * dIn + i] += acts[b * dSae + j]! * (g[b * dIn + i]! + (l1 * p.wDec[j * dIn + i]!) / (B * norm[j]!)) + actsAux[b * dSae + j]! * gAux[b * dIn + i]!;
  for (let i = 0; i < dIn; i++)
    for (let j = 0; j < dSae; j++)
      for (let b = 0; b < B; b++) wEnc[i * dSae + j] += (x[b * dIn + i]! - p.bDec[i]!) * gPre[b * dSae + j]!;
  for (let j = 0; j < dSae; j++) for (let b = 0; b < B; b++) bEnc[j] += gPre[b * dSae + j]!;
  for (let i = 0; i < dIn; i++) {
    let v = 0;
    for (let b = 0; b < B; b++) v += g[b * dIn + i]!;
    for (let j = 0; j < dSae; j++) v -= p.wEnc[i * dSae + j]! * bEnc[j]!;
    bDec[i] = v;
  }
  return { loss, grads: { wEnc, bEnc, wDec, bDec } };
}

/** g = 2 (x̂ − x) / B, and each row's squared error (for the loss and FVU). An invocation per row. */
/** @kernel @workgroupSize 64 */
export function saeErrorKernel(id: Invocation, x: In<f32>, xHat: In<f32>, g: Out<f32>, sq: Out<f32>, rows: u32, dIn: u32) {
  const b: u32 = id.global;
  if (b >= rows) {
    return;
  }
  let s: f32 = 0;
  for (let i: u32 = 0; i < dIn; i++) {
    const e: f32 = xHat[b * dIn + i] - x[b * dIn + i];
    s += e * e;
    g[b * dIn + i] = 2 * e / f32(rows);
  }
  sq[b] = s;
}

/** ∂L/∂pre: an invocation per (row, latent); inactive latents get 0. */
/** @kernel @workgroupSize 64 */
export function saeGradPreKernel(id: Invocation, g: In<f32>, acts: In<f32>, gAux: In<f32>, actsAux: In<f32>, wDec: In<f32>, gPre: Out<f32>, rows: u32, dIn: u32, dSae: u32, l1: f32) {
  const n: u32 = id.global;
  if (n >= rows * dSae) {
    return;
  }
  const b: u32 = idiv(n, dSae);
  const j: u32 = n % dSae;
  let v: f32 = 0;
  if (acts[n] > 0) {
    let ss: f32 = 0;
    for (let i: u32 = 0; i < dIn; i++) {
      const w: f32 = wDec[j * dIn + i];
      v += g[b * dIn + i] * w;
      ss += w * w;
    }
    if (l1 > 0) { // (TopK trains without the L1 penalty)
      v += l1 * Math.sqrt(ss) / f32(rows);
    }
  }
  if (actsAux[n] > 0) {
    for (let i: u32 = 0; i < dIn; i++) {
      v += gAux[b * dIn + i] * wDec[j * dIn + i];
    }
  }
  gPre[n] = v;
}

/** ∂L/∂W_dec: an invocation per (latent, dimension), summing over the rows where the latent fired. */
/** @kernel @workgroupSize 64 */
export function saeGradDecKernel(id: Invocation, g: In<f32>, acts: In<f32>, gAux: In<f32>, actsAux: In<f32>, wDec: In<f32>, grad: Out<f32>, rows: u32, dIn: u32, dSae: u32, l1: f32) {
  const n: u32 = id.global;
  if (n >= dSae * dIn) {
    return;
  }
  const j: u32 = idiv(n, dIn);
  const i: u32 = n % dIn;
  let shrink: f32 = 0;
  if (l1 > 0) {
    let ss: f32 = 0;
    for (let d: u32 = 0; d < dIn; d++) {
      ss += wDec[j * dIn + d] * wDec[j * dIn + d];
    }
    shrink = l1 * wDec[n] / (f32(rows) * Math.sqrt(ss));
  }
  let v: f32 = 0;
  for (let b: u32 = 0; b < rows; b++) {
    const a: f32 = acts[b * dSae + j];
    if (a !== 0) {
      v += a * (g[b * dIn + i] + shrink);
    }
    const aa: f32 = actsAux[b * dSae + j];
    if (aa !== 0) {
      v += aa * gAux[b * dIn + i];
    }
  }
  grad[n] = v;
}

/** ∂L/∂W_enc: an invocation per (dimension, latent). */
/** @kernel @workgroupSize 64 */
export function saeGradEncKernel(id: Invocation, x: In<f32>, bDec: In<f32>, gPre: In<f32>, grad: Out<f32>, rows: u32, dIn: u32, dSae: u32) {
  const n: u32 = id.global;
  if (n >= dIn * dSae) {
    return;
  }
  const i: u32 = idiv(n, dSae);
  const j: u32 = n % dSae;
  let v: f32 = 0;
  for (let b: u32 = 0; b < rows; b++) {
    const gp: f32 = gPre[b * dSae + j];
    if (gp !== 0) {
      v += (x[b * dIn + i] - bDec[i]) * gp;
    }
  }
  grad[n] = v;
}

/** ∂L/∂b_enc: an invocation per latent. */
/** @kernel @workgroupSize 64 */
export function saeGradBencKernel(id: Invocation, gPre: In<f32>, grad: Out<f32>, rows: u32, dSae: u32) {
  const j: u32 = id.global;
  if (j >= dSae) {
    return;
  }
  let v: f32 = 0;
  for (let b: u32 = 0; b < rows; b++) {
    v += gPre[b * dSae + j];
  }
  grad[j] = v;
}

/** ∂L/∂b_dec (after ∂L/∂b_enc): an invocation per dimension. */
/** @kernel @workgroupSize 64 */
export function saeGradBdecKernel(id: Invocation, g: In<f32>, wEnc: In<f32>, gBenc: In<f32>, grad: Out<f32>, rows: u32, dIn: u32, dSae: u32) {
  const i: u32 = id.global;
  if (i >= dIn) {
    return;
  }
  let v: f32 = 0;
  for (let b: u32 = 0; b < rows; b++) {
    v += g[b * dIn + i];
  }
  for (let j: u32 = 0; j < dSae; j++) {
    v -= wEnc[i * dSae + j] * gBenc[j];
  }
  grad[i] = v;
}

/** aux-K's gradient at ê: gAux = 2α (ê − (x − x̂)) / B, and each row's squared aux error. */
/** @kernel @workgroupSize 64 */
export function saeAuxErrorKernel(id: Invocation, x: In<f32>, xHat: In<f32>, eAux: In<f32>, gAux: Out<f32>, sqAux: Out<f32>, rows: u32, dIn: u32, alpha: f32) {
  const b: u32 = id.global;
  if (b >= rows) {
    return;
  }
  let s: f32 = 0;
  for (let i: u32 = 0; i < dIn; i++) {
    const d: f32 = eAux[b * dIn + i] - (x[b * dIn + i] - xHat[b * dIn + i]);
    s += d * d;
    gAux[b * dIn + i] = 2 * alpha * d / f32(rows);
  }
  sqAux[b] = s;
}
