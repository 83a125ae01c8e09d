// The attention pattern (TransformerLens's hook_pattern): the softmax of the scores
// (ops/attention_scores.ts) over the keys each query row sees, 0 past them. Row r of a block sits at
// position pos + r % T. Where a gradient is asked at a layer's pattern or scores, that layer's attention
// output is made from this pattern (ops/pattern_apply.ts; models/llama.ts explicitAttention) so both
// lie on the metric's path. Sources: [scores, pos].
import { type Invocation, type In, type Out, type f32, type u32, idiv, sharedF32, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { type Op, expectShape } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { workgroupMax, workgroupSum } from './reduce.js';
import { softmax } from './attention.js';

export type PatternSoftmaxAttr = { nHeads: number };

/** The rows of a pattern [(B, T,) nHeads, context] (every sequence's), the positions per sequence and
 *  the keys, checked. Row r sits at position pos + r % seqLen. */
export function patternRows(shape: readonly number[], nHeads: number): { rows: number; seqLen: number; context: number } {
  if (shape.length < 2 || shape.length > 4 || shape[shape.length - 2] !== nHeads) throw new ShapeError(`a pattern is [nHeads, context], [T, nHeads, context] or [B, T, nHeads, context] with ${nHeads} heads, got [${shape}]`);
  const lead = shape.slice(0, -2);
  return { rows: lead.reduce((a, b) => a * b, 1), seqLen: lead.at(-1) ?? 1, context: shape[shape.length - 1]! };
}

/** Call f(o, p, r, h) for each (row, head): its offset o into a pattern and the last key p it sees. */
export function eachPatternRow(shape: readonly number[], nHeads: number, pos: number, f: (o: number, p: number, r: number, h: number) => void) {
  const { rows, seqLen, context } = patternRows(shape, nHeads);
  for (let r = 0; r < rows; r++) for (let h = 0; h < nHeads; h++) f((r * nHeads + h) * context, Math.min(pos + (r % seqLen), context - 1), r, h);
}

export const patternSoftmax: Op<PatternSoftmaxAttr> = {
  name: 'pattern_softmax',
  infer([s, pos], a) {
    patternRows(s!.shape, a.nHeads);
    expectShape(pos!, [1], 'position');
    return { shape: s!.shape, dtype: 'f32' };
  },
  reference([s, pos], a, sh) {
    const out = new Float64Array(s!.length);
    eachPatternRow(sh.srcs[0]!, a.nHeads, pos![0]!, (o, p) => out.set(softmax(s!.subarray(o, o + p + 1)), o));
    return out;
  },
  // dS = P ⊙ (dP − Σ P·dP) per row, from the pattern itself
  vjp: (n, dy, b) => [b.apply(patternSoftmaxGrad, [n, dy, n.srcs[1]!], n.attr), undefined],
  lower(n, ctx) {
    const [s, pos] = n.srcs, a = n.attr as PatternSoftmaxAttr, { rows, seqLen, context } = patternRows(n.shape, a.nHeads);
    ctx.dispatch('patternSoftmaxKernel', { s: ctx.buf(s!), pos: ctx.buf(pos!), out: ctx.buf(n) }, { nHeads: a.nHeads, context, seqLen }, rows * a.nHeads);
  },
};

/** The softmax's backward: sources [pattern, d pattern, pos]; 0 past each row's keys. */
export const patternSoftmaxGrad: Op<PatternSoftmaxAttr> = {
  name: 'pattern_softmax_grad',
  infer([P, dP, pos], a) {
    patternRows(P!.shape, a.nHeads);
    expectShape(dP!, P!.shape, 'pattern gradient');
    expectShape(pos!, [1], 'position');
    return { shape: P!.shape, dtype: 'f32' };
  },
  reference([P, dP, pos], a, sh) {
    const out = new Float64Array(P!.length);
    eachPatternRow(sh.srcs[0]!, a.nHeads, pos![0]!, (o, p) => {
      let mean = 0;
      for (let t = 0; t <= p; t++) mean += P![o + t]! * dP![o + t]!;
      for (let t = 0; t <= p; t++) out[o + t] = P![o + t]! * (dP![o + t]! - mean);
    });
    return out;
  },
  lower(n, ctx) {
    const [P, dP, pos] = n.srcs, a = n.attr as PatternSoftmaxAttr, { rows, seqLen, context } = patternRows(n.shape, a.nHeads);
    ctx.dispatch('patternSoftmaxGradKernel', { P: ctx.buf(P!), dP: ctx.buf(dP!), pos: ctx.buf(pos!), out: ctx.buf(n) }, { nHeads: a.nHeads, context, seqLen }, rows * a.nHeads);
  },
};

/** A workgroup per (row, head): max, Σ exp, then the row (0 past its keys). */
/** @kernel @workgroupSize 64 */
export function patternSoftmaxKernel(id: Invocation, s: In<f32>, pos: In<u32>, out: Out<f32>, nHeads: u32, context: u32, seqLen: u32) {
  const red = sharedF32(64);
  const p: u32 = Math.min(pos[0] + idiv(id.group, nHeads) % seqLen, context - 1);
  const o: u32 = id.group * context;
  let best: f32 = -3.4e38;
  for (let t: u32 = id.local; t <= p; t += id.size) {
    best = Math.max(best, s[o + t]);
  }
  red[id.local] = best;
  workgroupMax(red, id);
  const top: f32 = red[0];
  workgroupBarrier(); // everyone has read the max before red is reused
  let sum: f32 = 0;
  for (let t: u32 = id.local; t <= p; t += id.size) {
    sum += Math.exp(s[o + t] - top);
  }
  red[id.local] = sum;
  workgroupSum(red, id);
  const total: f32 = red[0];
  for (let t: u32 = id.local; t < context; t += id.size) {
    out[o + t] = t <= p ? Math.exp(s[o + t] - top) / total : 0;
  }
}

/** A workgroup per (row, head): Σ P·dP, then P·(dP − Σ) (0 past the row's keys). */
/** @kernel @workgroupSize 64 */
export function patternSoftmaxGradKernel(id: Invocation, P: In<f32>, dP: In<f32>, pos: In<u32>, out: Out<f32>, nHeads: u32, context: u32, seqLen: u32) {
  const red = sharedF32(64);
  const p: u32 = Math.min(pos[0] + idiv(id.group, nHeads) % seqLen, context - 1);
  const o: u32 = id.group * context;
  let acc: f32 = 0;
  for (let t: u32 = id.local; t <= p; t += id.size) {
    acc += P[o + t] * dP[o + t];
  }
  red[id.local] = acc;
  workgroupSum(red, id);
  const mean: f32 = red[0];
  for (let t: u32 = id.local; t < context; t += id.size) {
    out[o + t] = t <= p ? P[o + t] * (dP[o + t] - mean) : 0;
  }
}
