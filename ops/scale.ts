// Multiply by a constant (e.g. a logit or residual multiplier).
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, groupsFor } from './op.js';

export const scale: Op<{ factor: number }> = {
  name: 'scale',
  infer: ([x]) => x!,
  reference: ([x], { factor }) => x!.map((v) => v * factor),
  vjp: (n, dy, b) => [b.apply(scale, [dy], { factor: Number(n.attr.factor) })],
  lower(n, ctx) {
    ctx.dispatch('scaleKernel', { x: ctx.buf(n.srcs[0]!), out: ctx.buf(n) }, { n: n.size, factor: Number(n.attr.factor) }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function scaleKernel(id: Invocation, x: In<f32>, out: Out<f32>, n: u32, factor: f32) {
  const i: u32 = id.global;
  if (i < n) {
    out[i] = x[i] * factor;
  }
}

/** As an epilogue of a fused kernel. */
/** @epilogue */
export function scaleEpilogue(v: f32, i: u32, factor: f32): f32 {
  return v * factor;
}
