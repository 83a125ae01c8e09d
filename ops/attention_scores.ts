// The attention scores of the current query position, [nHeads, context]: q·k/√d (or the model's own
// factor) over the keys so far, −∞ beyond — TransformerLens's hook_attn_scores; the pattern is their
// softmax (ops/pattern_softmax.ts). Flash attention never materialises either, so they are their own
// ops, reachable only when a hook (or a gradient at one: models/llama.ts explicitAttention) asks for
// them: they cost nothing otherwise. Sources: [q, kCache, pos].
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor, overRows, seqLenOf } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { headScores, scoreScale } from './attention.js';
import { eachPatternRow, patternRows } from './pattern_softmax.js';
import { patternUniforms } from './pattern_apply.js';

export type ScoresAttr = { nHeads: number; nKvHeads: number; headSize: number; scale?: number };

export const attentionScores: Op<ScoresAttr> = overRows<ScoresAttr>({
  name: 'attention_scores',
  infer([q, kc, pos], { nHeads, nKvHeads, headSize }) {
    expectShape(q!, [nHeads * headSize], 'query');
    if (kc!.shape.length !== 2 || kc!.shape[1] !== nKvHeads * headSize) throw new ShapeError('key cache must be [context, kvDim]');
    expectShape(pos!, [1], 'position');
    return { shape: [nHeads, kc!.shape[0]!], dtype: 'f32' };
  },
  reference([q, kc, pos], a, s) {
    const ctx = s.srcs[1]![0]!, p = pos![0]!;
    const out = new Float64Array(a.nHeads * ctx).fill(-Infinity);
    for (let h = 0; h < a.nHeads; h++) out.set(headScores(q!, kc!, p, h, a), h * ctx);
    return out;
  },
  // dq and the key cache's gradient
  vjp(n, ds, b) {
    const [q, kc, pos] = n.srcs;
    const grad = (of: 'q' | 'k') => b.apply(attentionScoresGrad, [ds, q!, kc!, pos!], { ...(n.attr as ScoresAttr), of });
    return [grad('q'), grad('k'), undefined];
  },
  lower(n, ctx) {
    const [q, kc, pos] = n.srcs;
    const a = n.attr as ScoresAttr;
    ctx.dispatch('attentionScoresKernel', { q: ctx.buf(q!), kc: ctx.buf(kc!), pos: ctx.buf(pos!), out: ctx.buf(n) },
      { headSize: a.headSize, kvDim: a.nKvHeads * a.headSize, group: a.nHeads / a.nKvHeads, context: kc!.shape[kc!.shape.length - 2]!, scale: scoreScale(a),
        nHeads: a.nHeads, seqLen: seqLenOf(q!.shape), n: n.size, masked: -Infinity }, groupsFor(n.size, 64));
  },
}, { rows: () => [0], pos: 2, states: [1] });

/** The scores' backward (sources [d scores, q, key cache, pos], one sequence): dq[r, h] = scale·Σ_t dS[r, h, t]·k[t]
 *  over the keys row r sees, or dk[t] = scale·Σ over rows that see key t and heads reading its KV head
 *  of dS[r, h, t]·q[r, h] ([context, kvDim]). */
export const attentionScoresGrad: Op<ScoresAttr & { of: 'q' | 'k' }> = {
  name: 'attention_scores_grad',
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
    const [ds, q, kc, pos] = n.srcs, a = n.attr as ScoresAttr & { of: 'q' | 'k' }, { rows, context } = patternRows(ds!.shape, a.nHeads);
    // the same contractions as pattern_apply's forward and value gradient, scaled
    const u = patternUniforms(a, rows, context, scoreScale(a));
    if (a.of === 'q') ctx.dispatch('patternRowsKernel', { P: ctx.buf(ds!), m: ctx.buf(kc!), pos: ctx.buf(pos!), out: ctx.buf(n) }, u, groupsFor(n.size, 64));
    else ctx.dispatch('patternColumnsKernel', { P: ctx.buf(ds!), v: ctx.buf(q!), pos: ctx.buf(pos!), out: ctx.buf(n) }, u, groupsFor(n.size, 64));
  },
};

/** An invocation per (query row, head, key): the scaled dot product where the row sees the key, −∞
 *  (a uniform: WGSL has no −∞ literal) past it. Row r is position pos + r % seqLen of sequence r / seqLen. */
/** @kernel @workgroupSize 64 */
export function attentionScoresKernel(id: Invocation, q: In<f32>, kc: In<f32>, pos: In<u32>, out: Out<f32>,
  headSize: u32, nHeads: u32, kvDim: u32, group: u32, context: u32, scale: f32, seqLen: u32, n: u32, masked: f32) {
  const i: u32 = id.global;
  if (i < n) {
    const t: u32 = i % context;
    const rh: u32 = idiv(i, context);
    const r: u32 = idiv(rh, nHeads);
    if (t <= pos[0] + r % seqLen) {
      const qo: u32 = rh * headSize;
      const ko: u32 = (idiv(r, seqLen) * context + t) * kvDim + idiv(rh % nHeads, group) * headSize;
      let s: f32 = 0;
      for (let d: u32 = 0; d < headSize; d++) {
        s += q[qo + d] * kc[ko + d];
      }
      out[i] = s * scale;
    } else {
      out[i] = masked;
    }
  }
}
