// A contiguous piece of a vector: x[offset .. offset+length). Fusion makes these (q, k and v are
// slices of the fused QKV output); when nothing fuses them away they are copies.
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, groupsFor, overRows } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const slice: Op<{ offset: number; length: number }> = overRows<{ offset: number; length: number }>({
  name: 'slice',
  infer([x], { offset, length }) {
    if (x!.shape.length !== 1 || offset < 0 || length < 1 || offset + length > x!.shape[0]!) throw new ShapeError(`slice [${offset}, ${offset + length}) of [${x!.shape}]`);
    return { shape: [length], dtype: x!.dtype };
  },
  reference: ([x], { offset, length }) => x!.slice(offset, offset + length),
  lower(n, ctx) {
    const length = n.attr.length as number, x = n.srcs[0]!;
    ctx.dispatch('sliceKernel', { x: ctx.buf(x), out: ctx.buf(n) }, { offset: n.attr.offset as number, length, width: x.shape[x.shape.length - 1]!, n: n.size }, groupsFor(n.size, 64));
  },
}, { rows: () => [0] });

/** @kernel @workgroupSize 64 */
export function sliceKernel(id: Invocation, x: In<f32>, out: Out<f32>, offset: u32, length: u32, width: u32, n: u32) {
  const i: u32 = id.global;
  if (i < n) {
    out[i] = x[idiv(i, length) * width + offset + i % length]; // row by row
  }
}
