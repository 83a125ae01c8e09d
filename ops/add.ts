// Elementwise sum: the residual connection.
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor } from './op.js';

export const add: Op = {
  name: 'add',
  infer([a, b]) {
    expectShape(b!, a!.shape, 'right operand');
    return a!;
  },
  reference: ([a, b]) => a!.map((v, i) => v + b![i]!),
  lower(n, ctx) {
    ctx.dispatch('addKernel', { a: ctx.buf(n.srcs[0]!), b: ctx.buf(n.srcs[1]!), out: ctx.buf(n) }, { n: n.size }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function addKernel(id: Invocation, a: In<f32>, b: In<f32>, out: Out<f32>, n: u32) {
  const i: u32 = id.global;
  if (i < n) {
    out[i] = a[i] + b[i];
  }
}

/** As an epilogue of a fused kernel: a residual or bias vector added at the store. */
/** @epilogue */
export function addEpilogue(v: f32, i: u32, y: In<f32>): f32 {
  return v + y[i];
}
