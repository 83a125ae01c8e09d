// An SAE over rows of activations on the GPU, batch by batch (no files: the browser runs it too).
import type { GpuContext } from '../gpu.js';
import { GpuSae } from './gpu_sae.js';
import type { SaeModel } from './sae.js';

const BATCH = 256;

/** Run the SAE over rows of x (unscaled; the SAE's inputScale applies): acts and x̂ (unscaled) per row. */
export async function applySae(gpu: GpuContext, sae: SaeModel, x: Float32Array, onBatch?: (acts: Float32Array, xHat: Float32Array, rows: number, at: number, pre: () => Promise<Float32Array>) => void | Promise<void>) {
  const { dIn, dSae } = sae.dims, rows = x.length / dIn;
  const g = new GpuSae(gpu, sae.dims, BATCH, { lr: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, l1: 0 }, sae.params);
  const xHat = new Float32Array(x.length);
  try {
    for (let at = 0; at < rows; at += BATCH) {
      const n = Math.min(BATCH, rows - at);
      g.forward(x.subarray(at * dIn, (at + n) * dIn).map((v) => v * sae.inputScale));
      const [acts, out] = [await g.read('acts'), await g.read('xHat')];
      for (let i = 0; i < n * dIn; i++) xHat[at * dIn + i] = out[i]! / sae.inputScale;
      await onBatch?.(acts.subarray(0, n * dSae), xHat.subarray(at * dIn, (at + n) * dIn), n, at, async () => (await g.read('pre')).subarray(0, n * dSae));
    }
  } finally {
    g.destroy();
  }
  return xHat;
}

