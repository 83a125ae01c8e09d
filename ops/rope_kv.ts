// RoPE on q and k, with k and v written into the KV cache at `pos` (the seed's
// ropeRotationWithCacheCopy), from the fused QKV output [q; k; v]. Returns the rotated q; the caches
// (sources 3 and 4) are updated in place, so attention reading them must come after (it reads the
// rotated q, which orders it). Sources: [qkv, pos, table, kCache, vCache].
import { type Invocation, type In, type Out, type f32, type u32, epilogue, idiv } from '../compiler/kernel/dsl.js';
import { lowerEpilogues } from './epilogues.js';
import { type Op, expectShape, groupsFor, overRows, rowsOf, seqLenOf } from './op.js';
import { rope } from './rope.js';
import { ShapeError } from '../compiler/errors.js';
import type { Node } from '../compiler/graph.js';
import type { BufId, LowerCtx } from '../compiler/plan.js';

export type RopeKvAttr = { headSize: number; qDim: number; kvDim: number; epilogues?: string };

export const ropeKv: Op<RopeKvAttr> = overRows<RopeKvAttr>({
  name: 'rope_kv',
  infer([qkv, pos, table, kc, vc], { headSize, qDim, kvDim }) {
    expectShape(qkv!, [qDim + 2 * kvDim], 'fused qkv');
    expectShape(pos!, [1], 'position');
    if (kc!.shape[1] !== kvDim || vc!.shape[1] !== kvDim) throw new ShapeError(`caches must be [context, ${kvDim}]`);
    if (qDim % headSize || kvDim % headSize) throw new ShapeError('q and kv widths must be whole heads');
    void table;
    return { shape: [qDim], dtype: 'f32' };
  },
  reference([qkv, pos, table, kc, vc], { headSize, qDim, kvDim }, s) {
    const r = (x: Float64Array) => rope.reference([x, pos!, table!], { headSize }, { srcs: [[x.length], [1], s.srcs[2]!], out: [x.length] });
    const k = r(qkv!.slice(qDim, qDim + kvDim));
    const p = pos![0]!;
    kc!.set(k, p * kvDim);
    vc!.set(qkv!.slice(qDim + kvDim, qDim + 2 * kvDim), p * kvDim);
    return r(qkv!.slice(0, qDim));
  },
  lower(n, ctx) {
    const [qkv, pos, table, kc, vc] = n.srcs;
    lowerRopeKv(n, ctx, ctx.buf(qkv!), [pos!, table!, kc!, vc!]);
  },
}, { rows: () => [0], pos: 1, states: [3, 4] });

/** Dispatch ropeKvKernel for node `n` (attr RopeKvAttr, output the rotated q) reading [q; k; v] rows
 *  from `qkv`. */
export function lowerRopeKv(n: Node, ctx: LowerCtx, qkv: BufId, [pos, table, kc, vc]: readonly Node[], epilogues = n.attr.epilogues as string | undefined) {
  const { headSize, qDim, kvDim } = n.attr as RopeKvAttr;
  const T = rowsOf(n.shape);
  const total = (qDim / 2 + kvDim / 2 + kvDim) * T;
  const e = lowerEpilogues(n, ctx, 'ropeKvKernel', [], epilogues);
  ctx.dispatch(e.kernel, { ...e.bind, qkv, pos: ctx.buf(pos!), table: ctx.buf(table!), kc: ctx.buf(kc!), vc: ctx.buf(vc!), q: ctx.buf(n) },
    { ...e.uniforms, qDim, kvDim, headSize, tokens: T, seqLen: seqLenOf(n.shape), context: kc!.shape[kc!.shape.length - 2]!, rotDim: table!.shape[1]! * 2 }, groupsFor(total, 64));
}

/** Invocations 0..qDim/2 turn q pairs, then kvDim/2 turn k pairs into the cache, then kvDim copy v.
 *  The rotated k passes hole 'k' on its way to the cache (where a tap stores it). */
/** @kernel @workgroupSize 64 */
export function ropeKvKernel(id: Invocation, qkv: In<f32>, pos: In<u32>, table: In<f32>, kc: Out<f32>, vc: Out<f32>, q: Out<f32>,
  qDim: u32, kvDim: u32, headSize: u32, tokens: u32, seqLen: u32, context: u32, rotDim: u32) {
  const qPairs: u32 = qDim >> 1;
  const kPairs: u32 = kvDim >> 1;
  const per: u32 = qPairs + kPairs + kvDim;
  if (id.global >= per * tokens) {
    return;
  }
  const row: u32 = idiv(id.global, per); // position pos + row % seqLen of sequence row / seqLen
  const i: u32 = id.global % per;
  const p: u32 = pos[0] + row % seqLen;
  const slot: u32 = idiv(row, seqLen) * context + p; // its row of the cache
  const base: u32 = row * (qDim + 2 * kvDim);
  if (i >= qPairs + kPairs) {
    const d: u32 = i - qPairs - kPairs;
    vc[slot * kvDim + d] = qkv[base + qDim + kvDim + d];
    return;
  }
  const isK: boolean = i >= qPairs;
  const pair: u32 = isK ? i - qPairs : i;
  const at: u32 = 2 * pair;
  const j: u32 = at % headSize;
  const src: u32 = base + (isK ? qDim + at : at);
  let a: f32 = qkv[src];
  let b: f32 = qkv[src + 1];
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
