// SwiGLU's gate: silu(gate) * up, where silu(x) = x / (1 + e^-x).
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor } from './op.js';
import { siluMulGrad } from './silu_mul_grad.js';

export const siluMul: Op = {
  name: 'silu_mul',
  infer([gate, up]) {
    expectShape(up!, gate!.shape, 'up projection');
    return gate!;
  },
  reference: ([g, u]) => g!.map((v, i) => (v / (1 + Math.exp(-v))) * u![i]!),
  vjp: (n, dy, b) => (['gate', 'up'] as const).map((of) => b.apply(siluMulGrad, [n.srcs[0]!, n.srcs[1]!, dy], { of })),
  lower(n, ctx) {
    ctx.dispatch('siluMulKernel', { gate: ctx.buf(n.srcs[0]!), up: ctx.buf(n.srcs[1]!), out: ctx.buf(n) }, { n: n.size }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function siluMulKernel(id: Invocation, gate: In<f32>, up: In<f32>, out: Out<f32>, n: u32) {
  const i: u32 = id.global;
  if (i < n) {
    const g: f32 = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}
