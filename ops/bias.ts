// A bias: x plus `width` entries of b from `offset` on (each row of a block gets the same ones).
// Qwen2's q, k and v biases are one vector [q; k; v] read at three offsets, so the fused QKV kernel
// adds them at its store with one binding (the `bias` epilogue at hole 'bias', offset 0).
import { type Invocation, type In, type Out, type f32, type u32, u32 as toU32 } from '../compiler/kernel/dsl.js';
import { type Op, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const bias: Op<{ offset: number }> = {
  name: 'bias',
  infer([x, b], { offset }) {
    const width = x!.shape[x!.shape.length - 1]!;
    if (b!.shape.length !== 1 || offset < 0 || offset + width > b!.shape[0]!) throw new ShapeError(`bias [${offset}, ${offset + width}) of [${b!.shape}]`);
    return x!;
  },
  vjp: (_, dy) => [dy, undefined], // (the bias is a weight)
  reference([x, b], { offset }, s) {
    const width = s.out[s.out.length - 1]!;
    return x!.map((v, i) => v + b![offset + (i % width)]!);
  },
  lower(n, ctx) {
    const width = n.shape[n.shape.length - 1]!;
    ctx.dispatch('biasKernel', { x: ctx.buf(n.srcs[0]!), b: ctx.buf(n.srcs[1]!), out: ctx.buf(n) }, { n: n.size, width, offset: n.attr.offset as number }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function biasKernel(id: Invocation, x: In<f32>, b: In<f32>, out: Out<f32>, n: u32, width: u32, offset: u32) {
  const i: u32 = id.global;
  if (i < n) {
    out[i] = x[i] + b[offset + i % width];
  }
}

/** As an epilogue: b[offset + i] added to the value stored at output index i. */
/** @epilogue */
export function biasEpilogue(v: f32, i: u32, y: In<f32>, offset: f32): f32 {
  return v + y[toU32(offset) + i];
}
