// Causal self-attention for one new position, with grouped-query attention: query head h reads
// KV head floor(h / (nHeads / nKvHeads)). Scores over positions 0..pos, softmax, weighted sum of V.
import { type Invocation, type f32x4, type Spec, type In, type Out, type f32, type u32, idiv, sharedF32, storageBarrier, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, isBlock, overRows, rowsOf, seqLenOf } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { workgroupMax, workgroupSum } from './reduce.js';
import { leafKind, type Node as GraphNode } from '../compiler/ir/op.js';
import { BLOCK_MAX_HEAD, BLOCK_QUERIES } from './attention_block.js';

/** `flash`: one pass with an online softmax over tiles (set by the flash_attention rule); without
 *  it the kernel also leaves each head's attention pattern in a scratch buffer. */
/** The factor on q·k: 1/√d, unless the model sets its own (Granite's attention multiplier). */
export const scoreScale = (a: { headSize: number; scale?: number }) => a.scale ?? 1 / Math.sqrt(a.headSize);

/** Head h's scaled scores q·k/√d against keys 0..p (float64; the references share it). */
export function headScores(q: Float64Array, kc: Float64Array, p: number, h: number, a: Pick<AttentionAttr, 'nHeads' | 'nKvHeads' | 'headSize' | 'scale'>): Float64Array {
  const { headSize } = a, kvDim = a.nKvHeads * headSize, ko = Math.floor(h / (a.nHeads / a.nKvHeads)) * headSize;
  return Float64Array.from({ length: p + 1 }, (_, t) => {
    let s = 0;
    for (let d = 0; d < headSize; d++) s += q[h * headSize + d]! * kc[t * kvDim + ko + d]!;
    return s * scoreScale(a);
  });
}

export function softmax(x: Float64Array): Float64Array {
  const max = Math.max(...x);
  const e = x.map((v) => Math.exp(v - max));
  const sum = e.reduce((s, v) => s + v, 0);
  return e.map((v) => v / sum);
}

/** `scale`: the factor on q·k where it is not 1/√headSize */
export type AttentionAttr = { nHeads: number; nKvHeads: number; headSize: number; flash?: boolean; scale?: number };
const FLASH_MAX_HEAD = 256;
/** Keys a workgroup holds every score of (attentionShortKernel). Positions below it run attention as
 *  one kernel; from it on, the keys are split into chunks and merged by a second kernel (flash
 *  decoding). A plan whose context reaches past it carries both, each guarded by the position. */
export const SHORT_KEYS = 1024;
/** most chunks the keys are split into (a chunk is a multiple of 64 positions) */
const MAX_SPLITS = 64;

export const attention: Op<AttentionAttr> = overRows<AttentionAttr>({
  name: 'attention',
  describe: (n) => [n.attr.flash ? 'attention (flash)' : 'attention'],
  infer([q, kc, vc, pos], { nHeads, nKvHeads, headSize }) {
    if (nHeads % nKvHeads !== 0) throw new ShapeError(`${nHeads} query heads do not divide into ${nKvHeads} KV heads`);
    expectShape(q!, [nHeads * headSize], 'query');
    if (kc!.shape.length !== 2) throw new ShapeError('key cache must be [context, width]');
    expectShape(kc!, [kc!.shape[0]!, nKvHeads * headSize], 'key cache');
    expectShape(vc!, kc!.shape, 'value cache');
    expectShape(pos!, [1], 'position');
    return q!;
  },
  reference([q, kc, vc, pos], a) {
    const { nHeads, nKvHeads, headSize } = a;
    const p = pos![0]!, kvDim = nKvHeads * headSize, group = nHeads / nKvHeads;
    const out = new Float64Array(nHeads * headSize);
    for (let h = 0; h < nHeads; h++) {
      const ko = Math.floor(h / group) * headSize;
      const pattern = softmax(headScores(q!, kc!, p, h, a));
      for (let t = 0; t <= p; t++)
        for (let d = 0; d < headSize; d++) out[h * headSize + d]! += pattern[t]! * vc![t * kvDim + ko + d]!;
    }
    return out;
  },
  vjp(n, dz, b) {
    // (the flash flag picks a forward kernel; the gradient's reference is the same either way)
    const a: AttentionAttr = { ...(n.attr as AttentionAttr) };
    delete a.flash;
    // the softmax statistics once, for all three gradients
    const stats = b.apply(attentionStats, [...n.srcs, dz], a);
    return [...(['q', 'k', 'v'] as const).map((of) => b.apply(attentionGrad, [...n.srcs, dz, stats], { ...a, of })), undefined];
  },
  lower(n, ctx) {
    const [q, kc, vc, pos] = n.srcs;
    const { nHeads, nKvHeads, headSize, flash } = n.attr as AttentionAttr;
    const context = kc!.shape[kc!.shape.length - 2]!;
    // query rows: row r is position pos + r % seqLen of sequence r / seqLen, and sees that sequence's keys up to it
    const T = rowsOf(n.shape), seqLen = seqLenOf(n.shape);
    if (flash && headSize <= FLASH_MAX_HEAD && headSize % 4 === 0) { // (q, keys and values are read in 4-lane loads)
      const u = { headSize, nHeads, kvDim: nKvHeads * headSize, group: nHeads / nKvHeads, seqLen, context, scale: scoreScale(n.attr as AttentionAttr) };
      const bind = { q: ctx.buf(q!), kc: ctx.buf(kc!), vc: ctx.buf(vc!), pos: ctx.buf(pos!) };
      // the block's last row sees keys 0..pos + seqLen - 1: all of them fit one workgroup while pos < shortBelow
      const shortBelow = SHORT_KEYS - seqLen + 1;
      // the guard reads the plan's `pos` input: where the position comes from elsewhere, split always
      const guarded = leafKind(pos!) === 'input' && pos!.attr.name === 'pos';
      if (isBlock(q!.shape) && headSize <= BLOCK_MAX_HEAD) {
        // a prefill block (even of one row: a row is the same bits in any block): tiles of query vectors
        // that share a KV head read its keys once (ops/attention_block.ts), in chunks of SHORT_KEYS merged
        // by flashCombineKernel where the context is longer. A decode step keeps the kernels below.
        const chunk = Math.min(context, SHORT_KEYS), splits = Math.ceil(context / chunk), nSeq = T / seqLen;
        const b = { ...u, tiles: Math.ceil((seqLen * u.group) / BLOCK_QUERIES), nKv: nKvHeads, chunk, splits };
        const groups = nSeq * nKvHeads * b.tiles * splits;
        if (splits === 1) { ctx.dispatch('attentionBlockKernel', { ...bind, out: ctx.buf(n) }, { ...b, direct: 1 }, groups); return; }
        // while the block's last row is in the first chunk, one chunk's workgroups and no merge (the same
        // bits: flashCombineKernel divides a lone chunk's sums as they are)
        if (guarded && shortBelow > 0) ctx.dispatch('attentionBlockKernel', { ...bind, out: ctx.buf(n) }, { ...b, splits: 1, direct: 1 }, groups / splits, { below: shortBelow });
        const part = ctx.planScratch('attention_split', T * nHeads * splits * (headSize + 2));
        const later = guarded && shortBelow > 0 ? { from: shortBelow } : undefined;
        ctx.dispatch('attentionBlockKernel', { ...bind, out: part }, { ...b, direct: 0 }, groups, later);
        ctx.dispatch('flashCombineKernel', { part, pos: ctx.buf(pos!), out: ctx.buf(n) }, { headSize, splits, nHeads, seqLen, chunk }, nHeads * T, later);
        return;
      }
      if (context <= SHORT_KEYS) {
        ctx.dispatch('attentionShortKernel', { ...bind, out: ctx.buf(n) }, u, nHeads * T);
        return;
      }
      if (guarded && shortBelow > 0) ctx.dispatch('attentionShortKernel', { ...bind, out: ctx.buf(n) }, u, nHeads * T, { below: shortBelow });
      // further on, split-K over chunks of keys, so a decode step has more than nHeads workgroups
      const chunk = 64 * Math.ceil(context / (64 * MAX_SPLITS)), splits = Math.ceil(context / chunk);
      // (one buffer for the plan's attentions: each layer's combine reads it before the next layer's writes)
      const part = ctx.planScratch('attention_split', T * nHeads * splits * (headSize + 2));
      const long = guarded && shortBelow > 0 ? { from: shortBelow } : undefined;
      ctx.dispatch('flashAttentionKernel', { ...bind, out: part }, { ...u, chunk, splits }, nHeads * T * splits, long);
      ctx.dispatch('flashCombineKernel', { part, pos: ctx.buf(pos!), out: ctx.buf(n) }, { headSize, splits, nHeads, seqLen, chunk }, nHeads * T, long);
      return;
    }
    const scores = ctx.scratch(n, 'pattern', T * nHeads * context);
    ctx.dispatch('attentionKernel', { q: ctx.buf(q!), kc: ctx.buf(kc!), vc: ctx.buf(vc!), pos: ctx.buf(pos!), scores, out: ctx.buf(n) },
      { headSize, nHeads, kvDim: nKvHeads * headSize, group: nHeads / nKvHeads, seqLen, context, scale: scoreScale(n.attr as AttentionAttr) }, nHeads * T);
  },
}, { rows: () => [0], pos: 3, states: [1, 2] });

// Attention's gradients, through the softmax as flash attention computes it (no [pos, pos] matrix:
// each query row's probabilities are made again from q and the keys). Row t of a block sits at
// position p = pos + t and sees keys 0..p. With P = softmax(scale·q·kⱼ) and z = Σ Pⱼ·vⱼ:
//   dvⱼ += Pⱼ·dz,  dPⱼ = dz·vⱼ,  dsⱼ = Pⱼ·(dPⱼ − Σᵢ Pᵢ·dPᵢ),  dq = scale·Σ dsⱼ·kⱼ,  dkⱼ += scale·dsⱼ·q.
// `of` picks the source: q (a row per query) or the key or value cache (summed over the block's rows).
/** `rows` (k, v; the rule attention_grad_rows): only the block's own rows of the cache's gradient,
 *  [T, kvDim] (keys pos .. pos + T − 1), which is all kv_write's backward reads of it. */
export type AttentionGradAttr = AttentionAttr & { of: 'q' | 'k' | 'v'; rows?: boolean };

/** Each query row and head's softmax statistics, [T, nHeads, 3]: the max score, Σ exp(s − max) and
 *  Σ Pⱼ·(dz·vⱼ) over the keys it sees (made once, read by the three gradients). */
export const attentionStats: Op<AttentionAttr> = {
  name: 'attention_stats',
  infer([q, kc, , pos, dz], { nHeads, headSize }) {
    if (q!.shape.length > 2 || kc!.shape.length !== 2) throw new ShapeError('attention_stats takes one sequence: q [T, width] and caches [context, width]');
    expectShape(dz!, q!.shape, 'attention output gradient');
    expectShape(pos!, [1], 'position');
    return { shape: [q!.shape.reduce((x, y) => x * y, 1) / (nHeads * headSize), nHeads, 3], dtype: 'f32' };
  },
  reference([q, kc, vc, pos, dz], a) {
    const { nHeads, nKvHeads, headSize } = a, qDim = nHeads * headSize, kvDim = nKvHeads * headSize, group = nHeads / nKvHeads;
    const T = q!.length / qDim, out = new Float64Array(T * nHeads * 3);
    for (let t = 0; t < T; t++)
      for (let h = 0; h < nHeads; h++) {
        const s = headScores(q!.subarray(t * qDim, (t + 1) * qDim), kc!, pos![0]! + t, h, a), m = Math.max(...s), ko = Math.floor(h / group) * headSize;
        let z = 0, pd = 0;
        s.forEach((x, j) => {
          let dp = 0;
          for (let e = 0; e < headSize; e++) dp += dz![t * qDim + h * headSize + e]! * vc![j * kvDim + ko + e]!;
          z += Math.exp(x - m);
          pd += Math.exp(x - m) * dp;
        });
        out.set([m, z, pd / z], (t * nHeads + h) * 3);
      }
    return out;
  },
  lower(n, ctx) {
    const [q, kc, vc, pos, dz] = n.srcs, a = n.attr as AttentionAttr;
    ctx.dispatch('attentionStatsKernel', { q: ctx.buf(q!), kc: ctx.buf(kc!), vc: ctx.buf(vc!), pos: ctx.buf(pos!), dz: ctx.buf(dz!), stats: ctx.buf(n) },
      attentionGradUniforms(q!, a), n.size / 3);
  },
};
const attentionGradUniforms = (q: GraphNode, a: AttentionAttr) => {
  const qDim = a.nHeads * a.headSize;
  return { T: q.size / qDim, nHeads: a.nHeads, headSize: a.headSize, qDim, kvDim: a.nKvHeads * a.headSize, group: a.nHeads / a.nKvHeads, scale: scoreScale(a) };
};

export const attentionGrad: Op<AttentionGradAttr> = {
  name: 'attention_grad',
  infer([q, kc, vc, pos, dz, stats], { of, nHeads, headSize, rows }) {
    if (q!.shape.length > 2 || kc!.shape.length !== 2) throw new ShapeError('attention_grad takes one sequence: q [T, width] and caches [context, width]');
    if (headSize > 128 || headSize % 4 !== 0) throw new ShapeError(`attention's backward takes heads of at most 128 lanes, a multiple of 4, got ${headSize}`);
    expectShape(stats!, [q!.shape.reduce((x, y) => x * y, 1) / (nHeads * headSize), nHeads, 3], 'softmax statistics');
    expectShape(dz!, q!.shape, 'attention output gradient');
    expectShape(vc!, kc!.shape, 'value cache');
    expectShape(pos!, [1], 'position');
    if (rows && of !== 'q') return { shape: [...q!.shape.slice(0, -1), kc!.shape[1]!], dtype: 'f32' };
    return { shape: of === 'q' ? q!.shape : kc!.shape, dtype: 'f32' };
  },
  reference([q, kc, vc, pos, dz], a, s) {
    const { nHeads, nKvHeads, headSize } = a, qDim = nHeads * headSize, kvDim = nKvHeads * headSize, group = nHeads / nKvHeads;
    const T = q!.length / qDim, scale = scoreScale(a);
    const out = new Float64Array(a.of === 'q' ? q!.length : s.srcs[1]!.reduce((x, y) => x * y, 1));
    for (let t = 0; t < T; t++) {
      const p = pos![0]! + t, qt = q!.subarray(t * qDim, (t + 1) * qDim), dzt = dz!.subarray(t * qDim, (t + 1) * qDim);
      for (let h = 0; h < nHeads; h++) {
        const ko = Math.floor(h / group) * headSize;
        const P = softmax(headScores(qt, kc!, p, h, a));
        const dP = P.map((_, j) => { let d = 0; for (let e = 0; e < headSize; e++) d += dzt[h * headSize + e]! * vc![j * kvDim + ko + e]!; return d; });
        const mean = P.reduce((acc, pj, j) => acc + pj * dP[j]!, 0);
        for (let j = 0; j <= p; j++) {
          const ds = P[j]! * (dP[j]! - mean);
          for (let e = 0; e < headSize; e++) {
            if (a.of === 'q') out[t * qDim + h * headSize + e]! += scale * ds * kc![j * kvDim + ko + e]!;
            else if (a.of === 'k') out[j * kvDim + ko + e]! += scale * ds * qt[h * headSize + e]!;
            else out[j * kvDim + ko + e]! += P[j]! * dzt[h * headSize + e]!;
          }
        }
      }
    }
    return a.rows && a.of !== 'q' ? out.slice(pos![0]! * kvDim, (pos![0]! + T) * kvDim) : out;
  },
  // (the reference makes its probabilities anew; the kernels read the statistics node)
  lower(n, ctx) {
    const [q, kc, vc, pos, dz, stats] = n.srcs, a = n.attr as AttentionGradAttr;
    const bind = { q: ctx.buf(q!), kc: ctx.buf(kc!), vc: ctx.buf(vc!), pos: ctx.buf(pos!), dz: ctx.buf(dz!), stats: ctx.buf(stats!), out: ctx.buf(n) };
    // a workgroup per (query row, head) for dq; per (key, KV head) of the cache for dk and dv
    if (a.of === 'q') ctx.dispatch('attentionGradQKernel', { ...bind, kc4: bind.kc }, attentionGradUniforms(q!, a), q!.size / a.headSize);
    // (q and dz bound twice: as floats, and as 4-float vectors for the dot products)
    else ctx.dispatch('attentionGradKvKernel', { ...bind, q4: bind.q, dz4: bind.dz }, { ...attentionGradUniforms(q!, a), ofK: a.of === 'k' ? 1 : 0, block: a.rows ? 1 : 0 }, (a.rows ? q!.size / (a.nHeads * a.headSize) : kc!.shape[0]!) * a.nKvHeads);
  },
};

/** A workgroup per (query row, head). Leaves the softmaxed pattern of each in `scores` [T, nHeads, context]. */
/** @kernel @workgroupSize 64 */
export function attentionKernel(id: Invocation, q: In<f32>, kc: In<f32>, vc: In<f32>, pos: In<u32>, scores: Out<f32>, out: Out<f32>,
  headSize: u32, nHeads: u32, kvDim: u32, group: u32, seqLen: u32, context: u32, scale: f32) {
  const red = sharedF32(64);
  const h: u32 = id.group % nHeads;
  const r: u32 = idiv(id.group, nHeads);
  const p: u32 = pos[0] + r % seqLen;
  const qo: u32 = id.group * headSize;
  const ko: u32 = idiv(r, seqLen) * context * kvDim + idiv(h, group) * headSize; // this sequence's cache, this head's columns
  const so: u32 = id.group * context;
  let best: f32 = -3.4e38;
  for (let t: u32 = id.local; t <= p; t += id.size) {
    let s: f32 = 0;
    for (let d: u32 = 0; d < headSize; d++) {
      s += q[qo + d] * kc[t * kvDim + ko + d];
    }
    s = s * scale;
    scores[so + t] = s;
    best = Math.max(best, s);
  }
  red[id.local] = best;
  workgroupMax(red, id);
  const top: f32 = red[0];
  workgroupBarrier();
  let sum: f32 = 0;
  for (let t: u32 = id.local; t <= p; t += id.size) {
    const e: f32 = Math.exp(scores[so + t] - top);
    scores[so + t] = e;
    sum += e;
  }
  red[id.local] = sum;
  workgroupSum(red, id);
  const total: f32 = red[0];
  storageBarrier();
  for (let d: u32 = id.local; d < headSize; d += id.size) {
    let acc: f32 = 0;
    for (let t: u32 = 0; t <= p; t++) {
      acc += scores[so + t] * vc[t * kvDim + ko + d];
    }
    out[qo + d] = acc / total;
  }
  storageBarrier();
  for (let t: u32 = id.local; t <= p; t += id.size) {
    scores[so + t] = scores[so + t] / total;
  }
}

/** Attention over long contexts as flash decoding (the seed's processHeadsFlashAttention, split over
 *  the keys): the keys are cut into chunks of `chunk`, and a workgroup per (query row, head, chunk)
 *  walks its chunk in tiles of 64 positions, keeping a running max and sum (online softmax) and
 *  rescaling the output accumulator as the max grows; it leaves the unnormalised accumulator, max and
 *  sum in `out`, and flashCombineKernel merges the chunks. K and V are read once. */
/** @kernel @workgroupSize 64 */
export function flashAttentionKernel(id: Invocation, q: In<f32x4>, kc: In<f32x4>, vc: In<f32x4>, pos: In<u32>, out: Out<f32>,
  headSize: Spec<u32>, nHeads: u32, kvDim: u32, group: u32, seqLen: u32, context: u32, scale: f32, chunk: u32, splits: u32) {
  const probs = sharedF32(64);
  const red = sharedF32(64);
  const acc = sharedF32(256);
  const sums = sharedF32(256);
  // the value phase: invocation i takes dimensions 4·(i % quads) .. +3 of the tile's keys
  // (i / quads)·per .. +per−1 (a 4-lane load each), so every invocation has `per` loads in flight
  const quads: u32 = headSize >> 2;
  const groups: u32 = idiv(64, quads);
  const per: u32 = idiv(64 + groups - 1, groups);
  const dq: u32 = id.local % quads;
  const kg: u32 = idiv(id.local, quads);
  const split: u32 = id.group % splits;
  const rh: u32 = idiv(id.group, splits); // query row * nHeads + head
  const h: u32 = rh % nHeads;
  const r: u32 = idiv(rh, nHeads);
  const p: u32 = pos[0] + r % seqLen;
  const qo: u32 = rh * headSize;
  const ko: u32 = idiv(r, seqLen) * context * kvDim + idiv(h, group) * headSize;
  const first: u32 = split * chunk;
  const last: u32 = Math.min(p, first + chunk - 1); // keys first..last (none when first > p)
  for (let d: u32 = id.local; d < headSize; d += id.size) {
    acc[d] = 0;
  }
  let runMax: f32 = -3.4e38;
  let runSum: f32 = 0;
  for (let t0: u32 = first; t0 <= last; t0 += id.size) {
    const t: u32 = t0 + id.local;
    let s: f32 = -3.4e38;
    if (t <= last) {
      // q and the key row in 4-lane loads (a key row is one invocation's: a quarter of the loads)
      let dot: f32 = 0;
      const k4: u32 = (t * kvDim + ko) >> 2;
      for (let d: u32 = 0; d < headSize >> 2; d++) {
        const qv: f32x4 = q[(qo >> 2) + d];
        const kv: f32x4 = kc[k4 + d];
        dot += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
      }
      s = dot * scale;
    }
    red[id.local] = s;
    workgroupMax(red, id);
    const newMax: f32 = Math.max(runMax, red[0]);
    probs[id.local] = t <= last ? Math.exp(s - newMax) : 0;
    workgroupBarrier();
    let tileSum: f32 = 0;
    for (let j: u32 = 0; j < id.size; j++) {
      tileSum += probs[j];
    }
    const correction: f32 = Math.exp(runMax - newMax);
    runSum = runSum * correction + tileSum;
    // keys past `last` have probability 0 and read key `last` instead: a constant trip count
    let sx: f32 = 0;
    let sy: f32 = 0;
    let sz: f32 = 0;
    let sw: f32 = 0;
    if (kg < groups) {
      for (let j: u32 = 0; j < per; j++) {
        const key: u32 = Math.min(kg * per + j, 63);
        const pk: f32 = kg * per + j < 64 ? probs[key] : 0;
        const v: f32x4 = vc[((Math.min(t0 + key, last) * kvDim + ko) >> 2) + dq];
        sx += pk * v.x;
        sy += pk * v.y;
        sz += pk * v.z;
        sw += pk * v.w;
      }
    }
    sums[4 * id.local] = sx;
    sums[4 * id.local + 1] = sy;
    sums[4 * id.local + 2] = sz;
    sums[4 * id.local + 3] = sw;
    workgroupBarrier();
    if (kg === 0) {
      for (let c: u32 = 0; c < 4; c++) {
        let a: f32 = acc[4 * dq + c] * correction;
        for (let g: u32 = 0; g < groups; g++) {
          a += sums[4 * (g * quads + dq) + c];
        }
        acc[4 * dq + c] = a;
      }
    }
    runMax = newMax;
    workgroupBarrier();
  }
  const po: u32 = id.group * (headSize + 2); // [rh][split][acc..., max, sum]
  for (let d: u32 = id.local; d < headSize; d += id.size) {
    out[po + d] = acc[d];
  }
  if (id.local === 0) {
    out[po + headSize] = runMax;
    out[po + headSize + 1] = runSum;
  }
}

/** Attention over at most SHORT_KEYS keys, one workgroup per (query row, head), every score held in
 *  workgroup memory: q·k for all keys at once (invocation i takes keys i, i + 256, ...), one max and
 *  one sum over the workgroup, then the values in 4-lane loads, invocation i taking dimensions
 *  4·(i % quads) .. +3 of every `groups`-th key, and a sum over the groups. No online softmax and no
 *  second kernel: at the positions of most decode steps this is one launch where flash decoding's
 *  chunks take two, and every load is independent of the previous one's result. */
/** @kernel @workgroupSize 256 */
export function attentionShortKernel(id: Invocation, q: In<f32x4>, kc: In<f32x4>, vc: In<f32x4>, pos: In<u32>, out: Out<f32>,
  headSize: Spec<u32>, nHeads: u32, kvDim: u32, group: u32, seqLen: u32, context: u32, scale: f32) {
  const scores = sharedF32(1024); // SHORT_KEYS
  const red = sharedF32(256);
  const sums = sharedF32(1024);
  const h: u32 = id.group % nHeads;
  const r: u32 = idiv(id.group, nHeads);
  const p: u32 = Math.min(pos[0] + r % seqLen, 1023); // the plan guards this dispatch to pos + r < SHORT_KEYS
  const q4: u32 = (id.group * headSize) >> 2;
  const ko: u32 = idiv(r, seqLen) * context * kvDim + idiv(h, group) * headSize;
  let best: f32 = -3.4e38;
  // two keys a round (t and t + 256; past p it reads key p again), their loads in flight together
  for (let t: u32 = id.local; t <= p; t += 512) {
    const u: u32 = Math.min(t + 256, p);
    let dt: f32 = 0;
    let du: f32 = 0;
    const kt: u32 = (t * kvDim + ko) >> 2;
    const ku: u32 = (u * kvDim + ko) >> 2;
    for (let d: u32 = 0; d < headSize >> 2; d++) {
      const qv: f32x4 = q[q4 + d];
      const a: f32x4 = kc[kt + d];
      const b: f32x4 = kc[ku + d];
      dt += qv.x * a.x + qv.y * a.y + qv.z * a.z + qv.w * a.w;
      du += qv.x * b.x + qv.y * b.y + qv.z * b.z + qv.w * b.w;
    }
    scores[t] = dt * scale;
    best = Math.max(best, dt * scale);
    if (t + 256 <= p) {
      scores[u] = du * scale;
      best = Math.max(best, du * scale);
    }
  }
  red[id.local] = best;
  workgroupMax(red, id);
  const top: f32 = red[0];
  workgroupBarrier();
  let sum: f32 = 0;
  for (let t: u32 = id.local; t <= p; t += 256) {
    const e: f32 = Math.exp(scores[t] - top);
    scores[t] = e;
    sum += e;
  }
  red[id.local] = sum;
  workgroupSum(red, id);
  const total: f32 = red[0];
  const quads: u32 = headSize >> 2;
  const groups: u32 = idiv(256, quads);
  const dq: u32 = id.local % quads;
  const kg: u32 = idiv(id.local, quads);
  let sx: f32 = 0;
  let sy: f32 = 0;
  let sz: f32 = 0;
  let sw: f32 = 0;
  if (kg < groups) {
    // 16 keys a round (a constant trip count, so the loads are all in flight; a key past p reads key
    // p with weight 0): the values of 385 keys take two rounds of memory latency, not a dozen
    for (let t0: u32 = kg; t0 <= p; t0 += 16 * groups) {
      for (let j: u32 = 0; j < 16; j++) {
        const t: u32 = Math.min(t0 + j * groups, p);
        const e: f32 = t0 + j * groups <= p ? scores[t] : 0;
        const v: f32x4 = vc[((t * kvDim + ko) >> 2) + dq];
        sx += e * v.x;
        sy += e * v.y;
        sz += e * v.z;
        sw += e * v.w;
      }
    }
  }
  sums[4 * id.local] = sx;
  sums[4 * id.local + 1] = sy;
  sums[4 * id.local + 2] = sz;
  sums[4 * id.local + 3] = sw;
  workgroupBarrier();
  if (id.local < headSize) {
    const c: u32 = id.local >> 2;
    let a: f32 = 0;
    for (let g: u32 = 0; g < groups; g++) {
      a += sums[4 * (g * quads + c) + (id.local & 3)];
    }
    out[id.group * headSize + id.local] = a / total;
  }
}

/** Merges split-K attention: a workgroup per (query row, head) rescales each chunk's accumulator and
 *  sum by exp(its max − the overall max) and divides. Only the chunks up to the row's position hold
 *  keys; the others are skipped. */
/** @kernel @workgroupSize 64 */
export function flashCombineKernel(id: Invocation, part: In<f32>, pos: In<u32>, out: Out<f32>, headSize: u32, splits: u32, nHeads: u32, seqLen: u32, chunk: u32) {
  const base: u32 = id.group * splits * (headSize + 2);
  const p: u32 = pos[0] + idiv(id.group, nHeads) % seqLen;
  const active: u32 = Math.min(splits, idiv(p, chunk) + 1);
  // (one chunk: its sums divided as they are, the bits its kernel would give unsplit: attentionBlockKernel's rows)
  let top: f32 = -3.4e38;
  for (let s: u32 = 0; s < active; s++) {
    top = Math.max(top, part[base + s * (headSize + 2) + headSize]);
  }
  let total: f32 = 0;
  for (let s: u32 = 0; s < active; s++) {
    const o: u32 = base + s * (headSize + 2);
    total += Math.exp(part[o + headSize] - top) * part[o + headSize + 1];
  }
  for (let d: u32 = id.local; d < headSize; d += id.size) {
    let a: f32 = 0;
    for (let s: u32 = 0; s < active; s++) {
      const o: u32 = base + s * (headSize + 2);
      a += Math.exp(part[o + headSize] - top) * part[o + d];
    }
    out[id.group * headSize + d] = active === 1 ? part[base + d] / part[base + headSize + 1] : a / total;
  }
}

/** The softmax statistics of query row t, head h (a workgroup each: an invocation a row and head left
 *  most of an H100 idle, 24 ms of a 128-position backward in run 2026-12-07-h100-b): its max score, the
 *  sum of exp(s − max) and Σ Pⱼ·(dz·vⱼ) over keys 0..pos + t. Invocation i takes keys i, i + 64, ..
 *  with a running max (its sums rescaled as the max grows), then the workgroup combines them: the
 *  largest max, and each invocation's sums scaled by exp(its max − the largest). */
/** @kernel @workgroupSize 64 */
export function attentionStatsKernel(id: Invocation, q: In<f32x4>, kc: In<f32x4>, vc: In<f32x4>, pos: In<u32>, dz: In<f32x4>, stats: Out<f32>,
  T: u32, nHeads: u32, headSize: u32, qDim: u32, kvDim: u32, group: u32, scale: f32) {
  const ms = sharedF32(64);
  const zs = sharedF32(64);
  const ps = sharedF32(64);
  const t: u32 = idiv(id.group, nHeads);
  const h: u32 = id.group % nHeads;
  const p: u32 = pos[0] + Math.min(t, T - 1);
  const ko: u32 = idiv(h, group) * headSize;
  const qo: u32 = t * qDim + h * headSize;
  let m: f32 = -3.4e38;
  let z: f32 = 0;
  let pd: f32 = 0;
  for (let j: u32 = id.local; j <= p; j += 64) {
    // (16-byte loads: each invocation reads its own key's row)
    let sc: f32 = 0;
    let dp: f32 = 0;
    for (let e: u32 = 0; e < headSize >> 2; e++) {
      const a: f32x4 = q[(qo >> 2) + e];
      const b: f32x4 = kc[((j * kvDim + ko) >> 2) + e];
      const g: f32x4 = dz[(qo >> 2) + e];
      const w: f32x4 = vc[((j * kvDim + ko) >> 2) + e];
      sc += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
      dp += g.x * w.x + g.y * w.y + g.z * w.z + g.w * w.w;
    }
    const top: f32 = Math.max(m, sc * scale);
    const r: f32 = Math.exp(m - top);
    const x: f32 = Math.exp(sc * scale - top);
    z = z * r + x;
    pd = pd * r + x * dp;
    m = top;
  }
  ms[id.local] = m;
  workgroupMax(ms, id);
  const best: f32 = ms[0];
  // (an invocation with no keys has m = −3.4e38: its weight is 0)
  const wt: f32 = Math.exp(m - best);
  zs[id.local] = z * wt;
  ps[id.local] = pd * wt;
  workgroupSum(zs, id);
  workgroupSum(ps, id);
  if (id.local === 0) {
    stats[id.group * 3] = best;
    stats[id.group * 3 + 1] = zs[0];
    stats[id.group * 3 + 2] = ps[0] / zs[0];
  }
}

/** dq of query row t, head h (a workgroup each, headSize ≤ 128: invocation i takes lanes i and i + 64):
 *  scale · Σⱼ Pⱼ·(dPⱼ − Σ P·dP)·kⱼ. The keys go 64 at a time: each invocation makes one key's
 *  dSⱼ = Pⱼ·(dPⱼ − Σ P·dP) (its two dot products once, not once per lane), then every lane adds them up. */
/** @kernel @workgroupSize 64 */
export function attentionGradQKernel(id: Invocation, q: In<f32x4>, kc: In<f32>, vc: In<f32x4>, pos: In<u32>, dz: In<f32x4>, stats: In<f32>, out: Out<f32>,
  kc4: In<f32x4>, T: u32, nHeads: u32, headSize: u32, qDim: u32, kvDim: u32, group: u32, scale: f32) {
  const ds = sharedF32(64);
  const t: u32 = idiv(id.group, nHeads);
  const h: u32 = id.group % nHeads;
  const p: u32 = pos[0] + Math.min(t, T - 1);
  const ko: u32 = idiv(h, group) * headSize;
  const qo: u32 = t * qDim + h * headSize;
  const st: u32 = (t * nHeads + h) * 3;
  const e0: u32 = Math.min(id.local, headSize - 1);
  const e1: u32 = Math.min(id.local + 64, headSize - 1);
  let a0: f32 = 0;
  let a1: f32 = 0;
  for (let j0: u32 = 0; j0 <= p; j0 += 64) {
    const j: u32 = j0 + id.local;
    let v: f32 = 0;
    if (j <= p) {
      // (16-byte loads: each invocation reads its own key's row)
      let sc: f32 = 0;
      let dp: f32 = 0;
      for (let d: u32 = 0; d < headSize >> 2; d++) {
        const a: f32x4 = q[(qo >> 2) + d];
        const b: f32x4 = kc4[((j * kvDim + ko) >> 2) + d];
        const g: f32x4 = dz[(qo >> 2) + d];
        const w: f32x4 = vc[((j * kvDim + ko) >> 2) + d];
        sc += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
        dp += g.x * w.x + g.y * w.y + g.z * w.z + g.w * w.w;
      }
      v = (Math.exp(sc * scale - stats[st]) / stats[st + 1]) * (dp - stats[st + 2]);
    }
    ds[id.local] = v;
    workgroupBarrier();
    const n: u32 = Math.min(64, p + 1 - j0);
    for (let k: u32 = 0; k < n; k++) {
      const kr: u32 = (j0 + k) * kvDim + ko;
      a0 += ds[k] * kc[kr + e0];
      a1 += ds[k] * kc[kr + e1];
    }
    workgroupBarrier();
  }
  if (id.local < headSize) {
    out[qo + id.local] = scale * a0;
  }
  if (id.local + 64 < headSize) {
    out[qo + id.local + 64] = scale * a1;
  }
}

/** dk (ofK 1) or dv (0) of key j's row of KV head kh (a workgroup each, headSize ≤ 128; `block`: the
 *  block's own keys only, row r being key pos + r), summed over the
 *  block's (query row, head) pairs that see key j: 256 pairs at a time, each invocation makes one pair's
 *  weight (scale·dS for dk, P for dv: its dot products once), then a quarter of the invocations per
 *  64 lanes adds up the pairs' q (dk) or dz (dv) rows, and the quarters are added. Keys past the block's
 *  last position get 0. */
/** @kernel @workgroupSize 256 */
export function attentionGradKvKernel(id: Invocation, q: In<f32>, kc: In<f32x4>, vc: In<f32x4>, pos: In<u32>, dz: In<f32>, stats: In<f32>, out: Out<f32>,
  q4: In<f32x4>, dz4: In<f32x4>,
  T: u32, nHeads: u32, headSize: u32, qDim: u32, kvDim: u32, group: u32, scale: f32, ofK: Spec<u32>, block: u32) {
  const wt = sharedF32(256);
  const part = sharedF32(256);
  const nKv: u32 = idiv(nHeads, group);
  const kh: u32 = id.group % nKv;
  // output row r: key r of the cache, or (block) the block's row r, key pos + r
  const r: u32 = idiv(id.group, nKv);
  const j: u32 = block === 1 ? pos[0] + r : r;
  const ki: u32 = j * kvDim + kh * headSize;
  const ko: u32 = r * kvDim + kh * headSize;
  // no query row of the block sees a key past its last position: 0, and the workgroup is done (the
  // condition is the same for all of it: the group's key and the read-only position)
  if (j >= pos[0] + T) {
    for (let e: u32 = id.local; e < headSize; e += 256) {
      out[ko + e] = 0;
    }
    return;
  }
  const pairs: u32 = T * group;
  const e: u32 = id.local & 63;
  const quarter: u32 = id.local >> 6;
  const e0: u32 = Math.min(e, headSize - 1);
  const e1: u32 = Math.min(e + 64, headSize - 1);
  let a0: f32 = 0;
  let a1: f32 = 0;
  for (let i0: u32 = 0; i0 < pairs; i0 += 256) {
    const i: u32 = i0 + id.local;
    const t: u32 = idiv(i, group);
    let v: f32 = 0;
    if (i < pairs && j <= pos[0] + t) {
      const h: u32 = kh * group + i % group;
      const qo: u32 = t * qDim + h * headSize;
      const st: u32 = (t * nHeads + h) * 3;
      // (16-byte loads: each invocation reads its own row, so a load is a sector a row; dz·v only for dk)
      let sc: f32 = 0;
      let dp: f32 = 0;
      for (let d: u32 = 0; d < headSize >> 2; d++) {
        const a: f32x4 = q4[(qo >> 2) + d];
        const b: f32x4 = kc[(ki >> 2) + d];
        sc += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
        if (ofK === 1) {
          const g: f32x4 = dz4[(qo >> 2) + d];
          const w: f32x4 = vc[(ki >> 2) + d];
          dp += g.x * w.x + g.y * w.y + g.z * w.z + g.w * w.w;
        }
      }
      const pj: f32 = Math.exp(sc * scale - stats[st]) / stats[st + 1];
      v = ofK === 1 ? scale * pj * (dp - stats[st + 2]) : pj;
    }
    wt[id.local] = v;
    workgroupBarrier();
    const n: u32 = Math.min(256, pairs - i0);
    for (let k: u32 = quarter; k < n; k += 4) {
      const ii: u32 = i0 + k;
      const base: u32 = idiv(ii, group) * qDim + (kh * group + ii % group) * headSize;
      const x0: f32 = ofK === 1 ? q[base + e0] : dz[base + e0];
      const x1: f32 = ofK === 1 ? q[base + e1] : dz[base + e1];
      a0 += wt[k] * x0;
      a1 += wt[k] * x1;
    }
    workgroupBarrier();
  }
  part[id.local] = a0;
  workgroupBarrier();
  if (id.local < headSize && id.local < 64) {
    out[ko + id.local] = part[id.local] + part[id.local + 64] + part[id.local + 128] + part[id.local + 192];
  }
  workgroupBarrier();
  part[id.local] = a1;
  workgroupBarrier();
  if (id.local + 64 < headSize) {
    out[ko + id.local + 64] = part[id.local] + part[id.local + 64] + part[id.local + 128] + part[id.local + 192];
  }
}
