// The gradient through a sparse activation: dy where the activation it follows is nonzero, 0 where it is
// 0 (a latent ReLU cut, TopK left out, or JumpReLU kept under its threshold: d acts / d pre is 1 on the
// kept latents and 0 elsewhere). Sources: [dy, acts], of one shape.
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor } from './op.js';

export const whereNonzero: Op = {
  name: 'where_nonzero',
  infer([dy, acts]) {
    expectShape(acts!, dy!.shape, 'the activations');
    return { shape: dy!.shape, dtype: 'f32' };
  },
  reference: ([dy, acts]) => dy!.map((v, i) => (acts![i] !== 0 ? v : 0)),
  lower(n, ctx) {
    ctx.dispatch('whereNonzeroKernel', { dy: ctx.buf(n.srcs[0]!), acts: ctx.buf(n.srcs[1]!), out: ctx.buf(n) }, { n: n.size }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function whereNonzeroKernel(id: Invocation, dy: In<f32>, acts: In<f32>, out: Out<f32>, n: u32) {
  const i: u32 = id.global;
  if (i < n) {
    out[i] = acts[i] !== 0 ? dy[i] : 0;
  }
}
