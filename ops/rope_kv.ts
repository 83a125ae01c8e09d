// RoPE on q and k, with k and v written into the KV cache at `pos` (the seed's
// ropeRotationWithCacheCopy), from the fused QKV output [q; k; v]. Returns the rotated q; the caches
// (sources 3 and 4) are updated in place, so attention reading them must come after (it reads the
// rotated q, which orders it). Sources: [qkv, pos, table, kCache, vCache], and Qwen3's per-head norm
// weights [qNorm, kNorm] (each [headSize]) when `normEps` is set: each head of q and k is RMS-normed
// before it turns.
import { type Invocation, type In, type Out, f32, type u32, epilogue, idiv } from '../compiler/kernel/dsl.js';
import { epiloguesOf, lowerEpilogues, type EpilogueUse } from './epilogues.js';
import { type Op, expectShape, groupsFor, overRows, rowsOf, seqLenOf } from './op.js';
import { rope } from './rope.js';
import { rmsnorm } from './rmsnorm.js';
import { ShapeError } from '../compiler/errors.js';
import type { Node } from '../compiler/ir/graph.js';
import type { BufId, LowerCtx } from '../compiler/ir/op.js';

export type RopeKvAttr = { headSize: number; qDim: number; kvDim: number; epilogues?: readonly EpilogueUse[]; normEps?: number };

export const ropeKv: Op<RopeKvAttr> = overRows<RopeKvAttr>({
  name: 'rope_kv',
  describe: () => ['rope (q)', 'rope (k)', 'kv_write (k)', 'kv_write (v)'],
  infer([qkv, pos, table, kc, vc, qn, kn], { headSize, qDim, kvDim, normEps }) {
    expectShape(qkv!, [qDim + 2 * kvDim], 'fused qkv');
    if ((normEps !== undefined) !== (qn !== undefined && kn !== undefined)) throw new ShapeError('rope_kv takes q and k norm weights exactly when normEps is set');
    if (qn) { expectShape(qn, [headSize], 'q norm weight'); expectShape(kn!, [headSize], 'k norm weight'); }
    expectShape(pos!, [1], 'position');
    if (kc!.shape[1] !== kvDim || vc!.shape[1] !== kvDim) throw new ShapeError(`caches must be [context, ${kvDim}]`);
    if (qDim % headSize || kvDim % headSize) throw new ShapeError('q and kv widths must be whole heads');
    void table;
    return { shape: [qDim], dtype: 'f32' };
  },
  reference([qkv, pos, table, kc, vc, qn, kn], { headSize, qDim, kvDim, normEps }, s) {
    const normed = (x: Float64Array, w: Float64Array | undefined) => (w ? rmsnorm.reference([x, w], { eps: normEps! }, { srcs: [[x.length], [headSize]], out: [x.length] }) : x);
    const r = (x: Float64Array, w?: Float64Array) => rope.reference([normed(x, w), pos!, table!], { headSize }, { srcs: [[x.length], [1], s.srcs[2]!], out: [x.length] });
    const k = r(qkv!.slice(qDim, qDim + kvDim), kn);
    const p = pos![0]!;
    kc!.set(k, p * kvDim);
    vc!.set(qkv!.slice(qDim + kvDim, qDim + 2 * kvDim), p * kvDim);
    return r(qkv!.slice(0, qDim), qn);
  },
  lower(n, ctx) {
    const [qkv, pos, table, kc, vc, qn, kn] = n.srcs;
    lowerRopeKv(n, ctx, ctx.buf(qkv!), [pos!, table!, kc!, vc!, ...(qn ? [qn, kn!] : [])]);
  },
}, { rows: () => [0], pos: 1, states: [3, 4] });

/** Dispatch ropeKvKernel for node `n` (attr RopeKvAttr, output the rotated q) reading [q; k; v] rows
 *  from `qkv`. */
export function lowerRopeKv(n: Node, ctx: LowerCtx, qkv: BufId, [pos, table, kc, vc, qn, kn]: readonly Node[], epilogues = epiloguesOf(n)) {
  const { headSize, qDim, kvDim, normEps } = n.attr as RopeKvAttr;
  const T = rowsOf(n.shape);
  const total = (qDim / 2 + kvDim / 2 + kvDim) * T;
  const e = lowerEpilogues(n, ctx, qn ? 'ropeKvNormKernel' : 'ropeKvKernel', [], epilogues);
  ctx.dispatch(e.kernel, { ...e.bind, qkv, pos: ctx.buf(pos!), table: ctx.buf(table!), kc: ctx.buf(kc!), vc: ctx.buf(vc!), q: ctx.buf(n), ...(qn ? { qn: ctx.buf(qn), kn: ctx.buf(kn!) } : {}) },
    { ...e.uniforms, qDim, kvDim, headSize, tokens: T, seqLen: seqLenOf(n.shape), context: kc!.shape[kc!.shape.length - 2]!, rotDim: table!.shape[1]! * 2, ...(qn ? { eps: normEps! } : {}) }, groupsFor(total, 64));
}

/** Invocations 0..qDim/2 turn q pairs, then kvDim/2 turn k pairs into the cache, then kvDim copy v.
 *  The rotated k passes hole 'k' on its way to the cache (where a tap stores it). */
/** @kernel @workgroupSize 64 */
export function ropeKvKernel(id: Invocation, qkv: In<f32>, pos: In<u32>, table: In<f32>, kc: Out<f32>, vc: Out<f32>, q: Out<f32>,
  qDim: u32, kvDim: u32, headSize: u32, tokens: u32, seqLen: u32, context: u32, rotDim: u32) {
  ropeKvPair(id, qkv, pos, table, kc, vc, q, qkv, qkv, 0, 0, qDim, kvDim, headSize, tokens, seqLen, context, rotDim);
}

/** ropeKvKernel with Qwen3's per-head RMSNorm first: each invocation sums the squares of its pair's
 *  head itself (a head is at most a few hundred floats, read from cache), so no invocation waits. */
/** @kernel @workgroupSize 64 */
export function ropeKvNormKernel(id: Invocation, qkv: In<f32>, pos: In<u32>, table: In<f32>, kc: Out<f32>, vc: Out<f32>, q: Out<f32>, qn: In<f32>, kn: In<f32>,
  qDim: u32, kvDim: u32, headSize: u32, tokens: u32, seqLen: u32, context: u32, rotDim: u32, eps: f32) {
  ropeKvPair(id, qkv, pos, table, kc, vc, q, qn, kn, 1, eps, qDim, kvDim, headSize, tokens, seqLen, context, rotDim);
}

/** One invocation's share of rope_kv: a q pair, a k pair or a v element (`norm`: the pair's head
 *  RMS-normed with weights qn or kn first). */
/** @inline */
export function ropeKvPair(id: Invocation, qkv: In<f32>, pos: In<u32>, table: In<f32>, kc: Out<f32>, vc: Out<f32>, q: Out<f32>, qn: In<f32>, kn: In<f32>, norm: u32, eps: f32,
  qDim: u32, kvDim: u32, headSize: u32, tokens: u32, seqLen: u32, context: u32, rotDim: u32): void {
  const qPairs: u32 = qDim >> 1;
  const kPairs: u32 = kvDim >> 1;
  const per: u32 = qPairs + kPairs + kvDim;
  if (id.global < per * tokens) {
    const row: u32 = idiv(id.global, per); // position pos + row % seqLen of sequence row / seqLen
    const i: u32 = id.global % per;
    const p: u32 = pos[0] + row % seqLen;
    const slot: u32 = idiv(row, seqLen) * context + p; // its row of the cache
    const base: u32 = row * (qDim + 2 * kvDim);
    if (i >= qPairs + kPairs) {
      const d: u32 = i - qPairs - kPairs;
      vc[slot * kvDim + d] = qkv[base + qDim + kvDim + d];
    } else {
      const isK: boolean = i >= qPairs;
      const pair: u32 = isK ? i - qPairs : i;
      const at: u32 = 2 * pair;
      const j: u32 = at % headSize;
      const src: u32 = base + (isK ? qDim + at : at);
      let a: f32 = qkv[src];
      let b: f32 = qkv[src + 1];
      if (norm === 1) {
        let ss: f32 = 0;
        for (let d: u32 = 0; d < headSize; d++) {
          ss += qkv[src - j + d] * qkv[src - j + d];
        }
        const scale: f32 = 1 / Math.sqrt(ss / f32(headSize) + eps);
        a = a * scale * (isK ? kn[j] : qn[j]);
        b = b * scale * (isK ? kn[j + 1] : qn[j + 1]);
      }
      if (j < rotDim) {
        const t: u32 = (p * idiv(rotDim, 2) + idiv(j, 2)) * 2;
        const c: f32 = table[t];
        const s: f32 = table[t + 1];
        const ra: f32 = a * c - b * s;
        b = a * s + b * c;
        a = ra;
      }
      if (isK) {
        kc[slot * kvDim + at] = epilogue(a, row * kvDim + at, 'k');
        kc[slot * kvDim + at + 1] = epilogue(b, row * kvDim + at + 1, 'k');
      } else {
        q[row * qDim + at] = a;
        q[row * qDim + at + 1] = b;
      }
    }
  }
}
