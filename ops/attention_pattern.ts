// The attention pattern of the current query position, [nHeads, context]: softmax(q·k/√d) over the
// keys so far, 0 beyond (or, with `scores`, the scaled scores, −∞ beyond: TransformerLens's
// hook_attn_scores). Flash attention never materialises it, so it is its own op, reachable only when
// a hook asks for it: it costs nothing otherwise. Sources: [q, kCache, pos].
import { type Invocation, type In, type Out, type f32, type u32, idiv, sharedF32, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor, overRows, rowsOf, seqLenOf } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { workgroupMax, workgroupSum } from './reduce.js';
import { attentionScores, scoreScale, softmax } from './attention.js';
import { eachPatternRow, patternRows, patternSoftmaxGrad } from './pattern_softmax.js';
import { patternUniforms } from './pattern_apply.js';

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
  // through the scores (for the pattern, first back through its softmax): dq and the key cache's gradient
  vjp(n, dy, b) {
    const [q, kc, pos] = n.srcs, a = n.attr as PatternAttr;
    const ds = a.scores ? dy : b.apply(patternSoftmaxGrad, [n, dy, pos!], { nHeads: a.nHeads });
    const grad = (of: 'q' | 'k') => b.apply(attentionPatternGrad, [ds, q!, kc!, pos!], { ...a, of });
    return [grad('q'), grad('k'), undefined];
  },
  lower(n, ctx) {
    const [q, kc, pos] = n.srcs;
    const a = n.attr as PatternAttr;
    ctx.dispatch('attentionPatternKernel', { q: ctx.buf(q!), kc: ctx.buf(kc!), pos: ctx.buf(pos!), out: ctx.buf(n) },
      { headSize: a.headSize, kvDim: a.nKvHeads * a.headSize, group: a.nHeads / a.nKvHeads, context: kc!.shape[kc!.shape.length - 2]!, scale: scoreScale(a),
        nHeads: a.nHeads, seqLen: seqLenOf(q!.shape), scores: a.scores ? 1 : 0, masked: a.scores ? -Infinity : 0 }, a.nHeads * rowsOf(q!.shape));
  },
}, { rows: () => [0], pos: 2, states: [1] });

/** The scores' backward (sources [d scores, q, key cache, pos], one sequence): dq[r, h] = scale·Σ_t dS[r, h, t]·k[t]
 *  over the keys row r sees, or dk[t] = scale·Σ over rows that see key t and heads reading its KV head
 *  of dS[r, h, t]·q[r, h] ([context, kvDim]). */
export const attentionPatternGrad: Op<PatternAttr & { of: 'q' | 'k' }> = {
  name: 'attention_pattern_grad',
  infer([ds, q, kc, pos], a) {
    const { rows, context } = patternRows(ds!.shape, a.nHeads);
    if (kc!.shape.length !== 2) throw new ShapeError(`the scores' backward takes one sequence's key cache [context, kvDim], got [${kc!.shape}]`);
    expectShape(kc!, [context, a.nKvHeads * a.headSize], 'key cache');
    expectShape(q!, ds!.shape.length === 3 ? [rows, a.nHeads * a.headSize] : [a.nHeads * a.headSize], 'query');
    expectShape(pos!, [1], 'position');
    return { shape: a.of === 'q' ? q!.shape : kc!.shape, dtype: 'f32' };
  },
  reference([ds, q, kc, pos], a, s) {
    const hs = a.headSize, kvDim = a.nKvHeads * hs, group = a.nHeads / a.nKvHeads, scale = scoreScale(a);
    const out = new Float64Array(s.out.reduce((x, y) => x * y, 1));
    eachPatternRow(s.srcs[0]!, a.nHeads, pos![0]!, (o, p, r, h) => {
      const qo = (r * a.nHeads + h) * hs, ko = Math.floor(h / group) * hs;
      for (let t = 0; t <= p; t++)
        for (let d = 0; d < hs; d++) {
          if (a.of === 'q') out[qo + d]! += scale * ds![o + t]! * kc![t * kvDim + ko + d]!;
          else out[t * kvDim + ko + d]! += scale * ds![o + t]! * q![qo + d]!;
        }
    });
    return out;
  },
  lower(n, ctx) {
    const [ds, q, kc, pos] = n.srcs, a = n.attr as PatternAttr & { of: 'q' | 'k' }, { rows, context } = patternRows(ds!.shape, a.nHeads);
    // the same contractions as pattern_apply's forward and value gradient, scaled
    const u = patternUniforms(a, rows, context, scoreScale(a));
    if (a.of === 'q') ctx.dispatch('patternRowsKernel', { P: ctx.buf(ds!), m: ctx.buf(kc!), pos: ctx.buf(pos!), out: ctx.buf(n) }, u, groupsFor(n.size, 64));
    else ctx.dispatch('patternColumnsKernel', { P: ctx.buf(ds!), v: ctx.buf(q!), pos: ctx.buf(pos!), out: ctx.buf(n) }, u, groupsFor(n.size, 64));
  },
};

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
