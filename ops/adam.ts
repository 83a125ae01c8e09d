// Adam (Kingma & Ba), elementwise: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², p ← p − lr m̂ / (√v̂ + ε),
// with m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t). The step's bias corrections come in `step` (written by the
// host each step: [1/(1−β1^t), 1/(1−β2^t)]), so the pipeline and its uniforms stay fixed.
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';

export interface AdamHyper { lr: number; beta1: number; beta2: number; eps: number }

/** float64 reference: one step t (1-based) in place */
export function adamReference(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, t: number, h: AdamHyper) {
  for (let n = 0; n < p.length; n++) {
    m[n] = h.beta1 * m[n]! + (1 - h.beta1) * g[n]!;
    v[n] = h.beta2 * v[n]! + (1 - h.beta2) * g[n]! * g[n]!;
    p[n] = p[n]! - h.lr * (m[n]! / (1 - h.beta1 ** t)) / (Math.sqrt(v[n]! / (1 - h.beta2 ** t)) + h.eps);
  }
}

/** @kernel @workgroupSize 64 */
export function adamKernel(id: Invocation, p: Out<f32>, g: In<f32>, m: Out<f32>, v: Out<f32>, step: In<f32>, n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32) {
  const k: u32 = id.global;
  if (k >= n) {
    return;
  }
  const gk: f32 = g[k];
  const mk: f32 = beta1 * m[k] + (1 - beta1) * gk;
  const vk: f32 = beta2 * v[k] + (1 - beta2) * gk * gk;
  m[k] = mk;
  v[k] = vk;
  p[k] = p[k] - lr * (mk * step[0]) / (Math.sqrt(vk * step[1]) + eps);
}

/** Decoder rows to unit norm (TopK training keeps ‖W_dec_j‖ = 1): an invocation per row. */
/** @kernel @workgroupSize 64 */
export function unitRowsKernel(id: Invocation, w: Out<f32>, rows: u32, cols: u32) {
  const r: u32 = id.global;
  if (r >= rows) {
    return;
  }
  let ss: f32 = 0;
  for (let c: u32 = 0; c < cols; c++) {
    ss += w[r * cols + c] * w[r * cols + c];
  }
  const s: f32 = ss > 0 ? 1 / Math.sqrt(ss) : 1;
  for (let c: u32 = 0; c < cols; c++) {
    w[r * cols + c] = w[r * cols + c] * s;
  }
}
