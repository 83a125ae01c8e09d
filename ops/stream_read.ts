// A streaming read of a large buffer: the memory-bandwidth roofline a benchmark measures on the device
// it runs on (not an op of any model). Every invocation reads a strided share in 16-byte loads, four in
// flight, and stores only if the result hits a value it never does, so the loads cannot be dropped.
import { type Invocation, type In, type Out, type u32, type u32x4 } from '../compiler/kernel/dsl.js';

/** `n` is in 16-byte units. */
/** @kernel @workgroupSize 256 */
export function streamReadKernel(id: Invocation, x: In<u32x4>, out: Out<u32>, n: u32, stride: u32) {
  let acc: u32 = 0;
  let i: u32 = id.global;
  while (i + 3 * stride < n) {
    const a: u32x4 = x[i];
    const b: u32x4 = x[i + stride];
    const c: u32x4 = x[i + 2 * stride];
    const d: u32x4 = x[i + 3 * stride];
    acc = acc ^ a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    i += 4 * stride;
  }
  while (i < n) {
    const a: u32x4 = x[i];
    acc = acc ^ a.x ^ a.y ^ a.z ^ a.w;
    i += stride;
  }
  if (acc === 0x9e3779b9) {
    out[id.global & 1023] = acc;
  }
}
