// A metric for gradients: the last row's logit of one token minus another's (ids [target, distractor],
// an input, so one plan serves every pair): logits [.., V] -> [1]. Its gradient puts +dy and −dy at
// the two logits of the last row (logit_diff_grad).
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor } from './op.js';

export const logitDiff: Op = {
  name: 'logit_diff',
  infer([logits, ids]) {
    expectShape(ids!, [2], 'token ids [target, distractor]');
    return { shape: [1], dtype: 'f32' };
  },
  reference([x, ids], _, s) {
    const V = s.srcs[0]![s.srcs[0]!.length - 1]!, last = x!.length - V;
    return Float64Array.of(x![last + ids![0]!]! - x![last + ids![1]!]!);
  },
  vjp: (n, dy, b) => [b.apply(logitDiffGrad, [dy, n.srcs[1]!, n.srcs[0]!], {}), undefined],
  lower(n, ctx) {
    const [x, ids] = n.srcs, V = x!.shape[x!.shape.length - 1]!;
    ctx.dispatch('logitDiffKernel', { x: ctx.buf(x!), ids: ctx.buf(ids!), out: ctx.buf(n) }, { last: x!.size - V }, 1);
  },
};

/** dy at the target's logit of the last row, −dy at the distractor's, 0 elsewhere (logits for the shape). */
export const logitDiffGrad: Op = {
  name: 'logit_diff_grad',
  infer: ([, , logits]) => ({ shape: logits!.shape, dtype: 'f32' }),
  reference([dy, ids], _, s) {
    const V = s.out[s.out.length - 1]!, out = new Float64Array(s.out.reduce((a, c) => a * c, 1)), last = out.length - V;
    out[last + ids![0]!]! += dy![0]!;
    out[last + ids![1]!]! -= dy![0]!;
    return out;
  },
  lower(n, ctx) {
    const [dy, ids] = n.srcs, V = n.shape[n.shape.length - 1]!;
    ctx.dispatch('logitDiffGradKernel', { dy: ctx.buf(dy!), ids: ctx.buf(ids!), out: ctx.buf(n) }, { n: n.size, last: n.size - V }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function logitDiffKernel(id: Invocation, x: In<f32>, ids: In<u32>, out: Out<f32>, last: u32) {
  if (id.global === 0) {
    out[0] = x[last + ids[0]] - x[last + ids[1]];
  }
}

/** @kernel @workgroupSize 64 */
export function logitDiffGradKernel(id: Invocation, dy: In<f32>, ids: In<u32>, out: Out<f32>, n: u32, last: u32) {
  const i: u32 = id.global;
  if (i < n) {
    const plus: f32 = i === last + ids[0] ? dy[0] : 0;
    const minus: f32 = i === last + ids[1] ? dy[0] : 0;
    out[i] = plus - minus;
  }
}
