// Elementwise sum: the residual connection; a vector as wide as a's last dimension is added to each
// of a's rows (a bias over a block of positions).
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor } from './op.js';

export const add: Op = {
  name: 'add',
  infer([a, b]) {
    if (!(b!.shape.length === 1 && a!.shape.length > 1 && b!.shape[0] === a!.shape[a!.shape.length - 1])) expectShape(b!, a!.shape, 'right operand');
    return a!;
  },
  reference: ([a, b]) => a!.map((v, i) => v + b![i % b!.length]!),
  // (a vector added to every row would need its gradient summed over the rows: none is given)
  vjp: (n, dy) => [dy, n.srcs[1]!.size === n.size ? dy : undefined],
  lower(n, ctx) {
    const b = n.srcs[1]!;
    ctx.dispatch('addKernel', { a: ctx.buf(n.srcs[0]!), b: ctx.buf(b), out: ctx.buf(n) }, { n: n.size, m: b.size }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function addKernel(id: Invocation, a: In<f32>, b: In<f32>, out: Out<f32>, n: u32, m: u32) {
  const i: u32 = id.global;
  if (i < n) {
    out[i] = a[i] + b[i % m];
  }
}

/** As an epilogue of a fused kernel: a residual or bias vector added at the store. */
/** @epilogue */
export function addEpilogue(v: f32, i: u32, y: In<f32>): f32 {
  return v + y[i];
}
