// The attention pattern of the current query position, [nHeads, context]: softmax(q·k/√d) over the
// keys so far, 0 beyond (or, with `scores`, the scaled scores, −∞ beyond: TransformerLens's
// hook_attn_scores). Flash attention never materialises it, so it is its own op, reachable only when
// a hook asks for it: it costs nothing otherwise. Sources: [q, kCache, pos].
import { type Invocation, type In, type Out, type f32, type u32, idiv, sharedF32, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, overRows, rowsOf, seqLenOf } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { workgroupMax, workgroupSum } from './reduce.js';
import { attentionScores, scoreScale, softmax } from './attention.js';

export type PatternAttr = { nHeads: number; nKvHeads: number; headSize: number; scores: boolean; scale?: number };

export const attentionPattern: Op<PatternAttr> = overRows<PatternAttr>({
  name: 'attention_pattern',
  infer([q, kc, pos], { nHeads, nKvHeads, headSize }) {
    expectShape(q!, [nHeads * headSize], 'query');
    if (kc!.shape.length !== 2 || kc!.shape[1] !== nKvHeads * headSize) throw new ShapeError('key cache must be [context, kvDim]');
    expectShape(pos!, [1], 'position');
    return { shape: [nHeads, kc!.shape[0]!], dtype: 'f32' };
  },
  reference([q, kc, pos], a, s) {
    const ctx = s.srcs[1]![0]!, p = pos![0]!;
    const out = new Float64Array(a.nHeads * ctx).fill(a.scores ? -Infinity : 0);
    for (let h = 0; h < a.nHeads; h++) {
      const row = attentionScores(q!, kc!, p, h, a);
      out.set(a.scores ? row : softmax(row), h * ctx);
    }
    return out;
  },
  lower(n, ctx) {
    const [q, kc, pos] = n.srcs;
    const a = n.attr as PatternAttr;
    ctx.dispatch('attentionPatternKernel', { q: ctx.buf(q!), kc: ctx.buf(kc!), pos: ctx.buf(pos!), out: ctx.buf(n) },
      { headSize: a.headSize, kvDim: a.nKvHeads * a.headSize, group: a.nHeads / a.nKvHeads, context: kc!.shape[kc!.shape.length - 2]!, scale: scoreScale(a),
        nHeads: a.nHeads, seqLen: seqLenOf(q!.shape), scores: a.scores ? 1 : 0, masked: a.scores ? -Infinity : 0 }, a.nHeads * rowsOf(q!.shape));
  },
}, { rows: () => [0], pos: 2, states: [1] });

/** A workgroup per (query row, head). */
/** @kernel @workgroupSize 64 */
export function attentionPatternKernel(id: Invocation, q: In<f32>, kc: In<f32>, pos: In<u32>, out: Out<f32>,
  headSize: u32, nHeads: u32, kvDim: u32, group: u32, context: u32, scale: f32, seqLen: u32, scores: u32, masked: f32) {
  const red = sharedF32(64);
  const h: u32 = id.group % nHeads;
  const r: u32 = idiv(id.group, nHeads);
  const p: u32 = pos[0] + r % seqLen;
  const qo: u32 = id.group * headSize;
  const ko: u32 = idiv(r, seqLen) * context * kvDim + idiv(h, group) * headSize;
  const oo: u32 = id.group * context;
  let best: f32 = -3.4e38;
  for (let t: u32 = id.local; t < context; t += id.size) {
    if (t <= p) {
      let s: f32 = 0;
      for (let d: u32 = 0; d < headSize; d++) {
        s += q[qo + d] * kc[t * kvDim + ko + d];
      }
      s = s * scale;
      out[oo + t] = s;
      best = Math.max(best, s);
    } else {
      out[oo + t] = masked; // −∞ for scores, 0 for the pattern (a uniform: WGSL has no −∞ literal)
    }
  }
  red[id.local] = best;
  workgroupMax(red, id);
  const top: f32 = red[0];
  workgroupBarrier(); // everyone has read the max before red is reused
  let sum: f32 = 0;
  for (let t: u32 = id.local; t <= p; t += id.size) {
    sum += Math.exp(out[oo + t] - top);
  }
  red[id.local] = sum;
  workgroupSum(red, id);
  const total: f32 = red[0];
  if (scores === 0) {
    for (let t: u32 = id.local; t <= p; t += id.size) {
      out[oo + t] = Math.exp(out[oo + t] - top) / total;
    }
  }
}
