// What the hand-written hardware probes share (they are not part of tapir): f16 bits by tapir's own
// rounding (compiler/kernel/intrinsics.ts, as unpacked with the app into /tmp/tapir), a seeded
// generator, the probes' inputs (f16 weights [N, K], f32 activations [n, K]) and a buffer upload.
import { floatToHalf, halfToFloat } from '/tmp/tapir/dist/compiler/kernel/intrinsics.js';

export const toHalf = floatToHalf;
export const fromHalf = halfToFloat;

let seed = 1;
/** uniform in [-0.5, 0.5), the same sequence every run */
export const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5);

/** Weights as f16 bits (a 2^20-element pattern repeated, so large shapes cost no time) and activations. */
export function probeInputs(n, N, K) {
  const wh = new Uint16Array(N * K), T = Math.min(wh.length, 1 << 20);
  for (let i = 0; i < T; i++) wh[i] = toHalf(rnd() * 0.1);
  for (let i = T; i < wh.length; i += T) wh.copyWithin(i, 0, Math.min(T, wh.length - i));
  const xf = new Float32Array(n * K);
  for (let i = 0; i < xf.length; i++) xf[i] = rnd() + (i % 7 === 0 ? 0.3 : 0);
  return { wh, xf };
}

/** A buffer holding `data` (at least 16 bytes). */
export function upload(device, data, usage) {
  const b = device.createBuffer({ size: Math.max(16, data.byteLength), usage: usage | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(b, 0, data);
  return b;
}
