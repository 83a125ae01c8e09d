// A streaming read of a large buffer: the memory-bandwidth roofline a benchmark measures on the device
// it runs on (not an op of any model). Each workgroup reads its own contiguous share, as a matvec
// workgroup reads its rows, in 16-byte loads, four in flight; it stores only if the result hits a value
// it never does, so the loads cannot be dropped.
import { type Invocation, type In, type Out, type u32, type u32x4 } from '../compiler/kernel/dsl.js';

/** `n` and `per` (a workgroup's share, a multiple of 1024) count 16-byte units. */
/** @kernel @workgroupSize 256 */
export function streamReadKernel(id: Invocation, x: In<u32x4>, out: Out<u32>, n: u32, per: u32) {
  const base: u32 = id.group * per;
  let acc: u32 = 0;
  for (let j: u32 = id.local; j < per; j += 1024) {
    const i: u32 = base + j;
    if (i + 768 < n) {
      const a: u32x4 = x[i];
      const b: u32x4 = x[i + 256];
      const c: u32x4 = x[i + 512];
      const d: u32x4 = x[i + 768];
      acc = acc ^ a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    }
  }
  if (acc === 0x9e3779b9) {
    out[id.global & 1023] = acc;
  }
}
