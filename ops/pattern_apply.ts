// The attention output from an explicit pattern: z[r, h] = Σ_t P[r, h, t]·v[t] over the keys row r sees
// (query head h reads KV head h / (nHeads / nKvHeads)). The explicit attention path's last step
// (ops/pattern_softmax.ts says when it is taken); flash attention computes the same z without P.
// Sources: [pattern (T,) nHeads, context], value cache [context, kvDim], pos. One sequence.
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { eachPatternRow, patternRows } from './pattern_softmax.js';

export type PatternApplyAttr = { nHeads: number; nKvHeads: number; headSize: number };
/** `of`: the pattern's gradient [(T,) nHeads, context] or the value cache's [context, kvDim] */
export type PatternApplyGradAttr = PatternApplyAttr & { of: 'pattern' | 'v' };

const checkCache = (vc: { shape: readonly number[] }, a: PatternApplyAttr, context: number) => {
  if (vc.shape.length !== 2) throw new ShapeError(`the explicit attention path takes one sequence's value cache [context, kvDim], got [${vc.shape}]`);
  expectShape(vc as never, [context, a.nKvHeads * a.headSize], 'value cache');
};
/** the uniforms of patternRowsKernel and patternColumnsKernel (ops/attention_scores.ts's backward uses them too) */
export const patternUniforms = (a: PatternApplyAttr, rows: number, context: number, scale = 1) =>
  ({ nHeads: a.nHeads, headSize: a.headSize, kvDim: a.nKvHeads * a.headSize, group: a.nHeads / a.nKvHeads, context, rows, scale });

export const patternApply: Op<PatternApplyAttr> = {
  name: 'pattern_apply',
  infer([P, vc, pos], a) {
    const { rows, context } = patternRows(P!.shape, a.nHeads);
    checkCache(vc!, a, context);
    expectShape(pos!, [1], 'position');
    const qDim = a.nHeads * a.headSize;
    return { shape: P!.shape.length === 3 ? [rows, qDim] : [qDim], dtype: 'f32' };
  },
  reference([P, vc, pos], a, s) {
    const hs = a.headSize, kvDim = a.nKvHeads * hs, group = a.nHeads / a.nKvHeads;
    const out = new Float64Array(s.out.reduce((x, y) => x * y, 1));
    eachPatternRow(s.srcs[0]!, a.nHeads, pos![0]!, (o, p, r, h) => {
      const zo = (r * a.nHeads + h) * hs, vo = Math.floor(h / group) * hs;
      for (let t = 0; t <= p; t++) for (let d = 0; d < hs; d++) out[zo + d]! += P![o + t]! * vc![t * kvDim + vo + d]!;
    });
    return out;
  },
  vjp(n, dz, b) {
    const [P, vc, pos] = n.srcs;
    return [b.apply(patternApplyGrad, [P!, vc!, pos!, dz], { ...(n.attr as PatternApplyAttr), of: 'pattern' }),
      b.apply(patternApplyGrad, [P!, vc!, pos!, dz], { ...(n.attr as PatternApplyAttr), of: 'v' }), undefined];
  },
  lower(n, ctx) {
    const [P, vc, pos] = n.srcs, a = n.attr as PatternApplyAttr, { rows, context } = patternRows(P!.shape, a.nHeads);
    ctx.dispatch('patternRowsKernel', { P: ctx.buf(P!), m: ctx.buf(vc!), pos: ctx.buf(pos!), out: ctx.buf(n) }, patternUniforms(a, rows, context), groupsFor(n.size, 64));
  },
};

/** Sources [pattern, value cache, pos, dz]: dP[r, h, t] = dz[r, h]·v[t] (0 past the row's keys), or
 *  dv[t] = Σ over rows that see key t and heads reading its KV head of P[r, h, t]·dz[r, h]. */
export const patternApplyGrad: Op<PatternApplyGradAttr> = {
  name: 'pattern_apply_grad',
  infer([P, vc, pos, dz], a) {
    const { rows, context } = patternRows(P!.shape, a.nHeads);
    checkCache(vc!, a, context);
    expectShape(pos!, [1], 'position');
    expectShape(dz!, P!.shape.length === 3 ? [rows, a.nHeads * a.headSize] : [a.nHeads * a.headSize], 'attention output gradient');
    return { shape: a.of === 'pattern' ? P!.shape : vc!.shape, dtype: 'f32' };
  },
  reference([P, vc, pos, dz], a, s) {
    const hs = a.headSize, kvDim = a.nKvHeads * hs, group = a.nHeads / a.nKvHeads;
    const out = new Float64Array(s.out.reduce((x, y) => x * y, 1));
    eachPatternRow(s.srcs[0]!, a.nHeads, pos![0]!, (o, p, r, h) => {
      const zo = (r * a.nHeads + h) * hs, vo = Math.floor(h / group) * hs;
      for (let t = 0; t <= p; t++)
        for (let d = 0; d < hs; d++) {
          if (a.of === 'pattern') out[o + t]! += dz![zo + d]! * vc![t * kvDim + vo + d]!;
          else out[t * kvDim + vo + d]! += P![o + t]! * dz![zo + d]!;
        }
    });
    return out;
  },
  lower(n, ctx) {
    const [P, vc, pos, dz] = n.srcs, a = n.attr as PatternApplyGradAttr, { rows, context } = patternRows(P!.shape, a.nHeads);
    // dP: each head row of dz against each value row it sees, 0 past them — the scores' own contraction
    // (ops/attention_scores.ts) with dz for q, the values for the keys, no scale
    if (a.of === 'pattern') ctx.dispatch('attentionScoresKernel', { q: ctx.buf(dz!), kc: ctx.buf(vc!), pos: ctx.buf(pos!), out: ctx.buf(n) },
      { headSize: a.headSize, nHeads: a.nHeads, kvDim: a.nKvHeads * a.headSize, group: a.nHeads / a.nKvHeads, context, scale: 1, seqLen: rows, n: n.size, masked: 0 }, groupsFor(n.size, 64));
    else ctx.dispatch('patternColumnsKernel', { P: ctx.buf(P!), v: ctx.buf(dz!), pos: ctx.buf(pos!), out: ctx.buf(n) }, patternUniforms(a, rows, context), groupsFor(n.size, 64));
  },
};

/** out[r, h, lane] = scale · Σ_t P[r, h, t] · m[t, h's KV head, lane] over the keys row r sees: the
 *  attention output from its pattern (m the value cache), or the scores' gradient to q (P the scores'
 *  gradient, m the key cache; ops/attention_scores.ts). An invocation per output. */
/** @kernel @workgroupSize 64 */
export function patternRowsKernel(id: Invocation, P: In<f32>, m: In<f32>, pos: In<u32>, out: Out<f32>,
  nHeads: u32, headSize: u32, kvDim: u32, group: u32, context: u32, rows: u32, scale: f32) {
  const i: u32 = id.global;
  if (i < rows * nHeads * headSize) {
    const rh: u32 = idiv(i, headSize);
    const h: u32 = rh % nHeads;
    const p: u32 = Math.min(pos[0] + idiv(rh, nHeads), context - 1);
    const mo: u32 = idiv(h, group) * headSize + i % headSize;
    let acc: f32 = 0;
    for (let t: u32 = 0; t <= p; t++) {
      acc += P[rh * context + t] * m[t * kvDim + mo];
    }
    out[i] = scale * acc;
  }
}

/** out[t, KV head, lane] = scale · Σ P[r, h, t] · v[r, h, lane] over the rows r that see key t and the
 *  query heads h of that KV head: the value cache's gradient (P the pattern, v dz), or the key cache's
 *  from the scores' gradient (P that gradient, v the queries; ops/attention_scores.ts). An invocation
 *  per cache element; keys no row sees get 0. */
/** @kernel @workgroupSize 64 */
export function patternColumnsKernel(id: Invocation, P: In<f32>, v: In<f32>, pos: In<u32>, out: Out<f32>,
  nHeads: u32, headSize: u32, kvDim: u32, group: u32, context: u32, rows: u32, scale: f32) {
  const i: u32 = id.global;
  if (i < context * kvDim) {
    const t: u32 = idiv(i, kvDim);
    const c: u32 = i % kvDim;
    const h0: u32 = idiv(c, headSize) * group;
    const d: u32 = c % headSize;
    let acc: f32 = 0;
    for (let r: u32 = 0; r < rows; r++) {
      if (pos[0] + r >= t) {
        for (let g: u32 = 0; g < group; g++) {
          const rh: u32 = r * nHeads + h0 + g;
          acc += P[rh * context + t] * v[rh * headSize + d];
        }
      }
    }
    out[i] = scale * acc;
  }
}
