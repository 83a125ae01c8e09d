// A streaming read of a large buffer: the memory-bandwidth roofline a benchmark measures on the device
// it runs on (not an op of any model). Every invocation reads a strided share, four loads in flight,
// and stores only if the sum hits a value it never does, so the loads cannot be optimised away.
import { type Invocation, type In, type Out, type u32 } from '../compiler/kernel/dsl.js';

/** @kernel @workgroupSize 256 */
export function streamReadKernel(id: Invocation, x: In<u32>, out: Out<u32>, n: u32, stride: u32) {
  let acc: u32 = 0;
  let i: u32 = id.global;
  while (i + 3 * stride < n) {
    acc = acc ^ x[i] ^ x[i + stride] ^ x[i + 2 * stride] ^ x[i + 3 * stride];
    i += 4 * stride;
  }
  while (i < n) {
    acc = acc ^ x[i];
    i += stride;
  }
  if (acc === 0x9e3779b9) {
    out[id.global & 1023] = acc;
  }
}
