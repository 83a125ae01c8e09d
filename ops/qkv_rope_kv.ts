// The QKV projections, RoPE and the KV-cache write in one decode kernel (the seed's fusedQKVMatmulX and
// ropeRotationWithCacheCopy as one dispatch): a RoPE pair is two adjacent rows of [q; k], and the
// 16-byte QKV kernels compute adjacent rows in one workgroup, so the rotation happens at the store.
// Sources: [x, nw, Wq, Wk, Wv, pos, table, kCache, vCache], then the [q; k; v] bias where the epilogues
// have 'bias:bias' (added before the rotation); the value is the rotated q, the caches are written in
// place (as rope_kv). Hole 'k' sees each rotated key on its way to the cache.
import { type Invocation, type In, type Out, type Spec, type u32, type u32x4, type f32x4, epilogue, f32, idiv, sharedF32 } from '../compiler/kernel/dsl.js';
import { epilogueAttr, epiloguesOf, lowerEpilogues, storeCount } from './epilogues.js';
import { type Op, isBlock, overRows, rowsOf } from './op.js';
import { clearSets, sumLanes, sumLanes4, wideFor, wideGrid } from './matvec.js';
import { lowerQkv, qkvMatvec, qkvRowF16, qkvSetQ8 } from './qkv_matvec.js';
import { type RopeKvAttr, lowerRopeKv, ropeKv } from './rope_kv.js';

export type QkvRopeKvAttr = RopeKvAttr & { eps: number };
/** the attributes of the two halves: the bias epilogue is the projections', the rest rope_kv's */
const split = (a: QkvRopeKvAttr, bias: boolean) => epiloguesOf(a).filter((e) => (e.hole === 'bias') === bias);
const qkvPart = (a: QkvRopeKvAttr) => ({ eps: a.eps, ...epilogueAttr(split(a, true)) });
const ropePart = (a: QkvRopeKvAttr): RopeKvAttr => ({ headSize: a.headSize, qDim: a.qDim, kvDim: a.kvDim, ...epilogueAttr(split(a, false)) });

export const qkvRopeKv: Op<QkvRopeKvAttr> = overRows<QkvRopeKvAttr>({
  name: 'qkv_rope_kv',
  describe: () => ['rmsnorm', 'matvec (q)', 'matvec (k)', 'matvec (v)', 'rope (q)', 'rope (k)', 'kv_write (k)', 'kv_write (v)'],
  infer([x, nw, wq, wk, wv, pos, table, kc, vc, b], a) {
    const q = qkvMatvec.infer([x!, nw!, wq!, wk!, wv!, ...(b ? [b] : [])], qkvPart(a));
    return ropeKv.infer([q, pos!, table!, kc!, vc!], ropePart(a));
  },
  reference([x, nw, wq, wk, wv, pos, table, kc, vc, b], a, s) {
    const qkv = qkvMatvec.reference([x!, nw!, wq!, wk!, wv!, ...(b ? [b] : [])], qkvPart(a), { srcs: [...s.srcs.slice(0, 5), ...s.srcs.slice(9)], out: [a.qDim + 2 * a.kvDim] });
    return ropeKv.reference([qkv, pos!, table!, kc!, vc!], ropePart(a), { srcs: [[qkv.length], ...s.srcs.slice(5, 9)], out: s.out });
  },
  lower(n, ctx) {
    const [x, nw, wq, wk, wv, pos, table, kc, vc, b] = n.srcs;
    const { headSize, qDim, kvDim, eps } = n.attr as QkvRopeKvAttr;
    const wide = wideFor([wq!, wk!, wv!], x!.shape[x!.shape.length - 1]!);
    const whole = [wq, wk, wv].every((w) => ctx.chunks(w!).length === 1);
    const rotDim = table!.shape[1]! * 2;
    // one kernel binds 10 storage buffers (one more for a bias, one more for a tap on k): where the device has them
    const fits = 10 + (b ? 1 : 0) + storeCount(epiloguesOf(n)) <= ctx.maxStorageBuffers;
    if (wide && whole && fits && !isBlock(n.shape) && qDim % 4 === 0 && kvDim % 4 === 0 && headSize % 2 === 0) {
      const rows = qDim + 2 * kvDim, cols = x!.shape[0]!;
      let { lanes, groups } = wideGrid(wide, rows, cols);
      // a RoPE pair's two rows in one workgroup
      if (wide.rowSet === 1 && lanes > 128) ({ lanes, groups } = { lanes: 128, groups: Math.ceil(rows / 2) });
      const e = lowerEpilogues(n, ctx, wide.rowSet === 4 ? 'qkvRopeQ8Kernel' : 'qkvRopeF16Kernel', b ? [b] : []);
      ctx.dispatch(e.kernel, { ...e.bind, x: ctx.buf(x!), nw: ctx.buf(nw!), wq: ctx.buf(wq!), wk: ctx.buf(wk!), wv: ctx.buf(wv!), pos: ctx.buf(pos!), table: ctx.buf(table!), kc: ctx.buf(kc!), vc: ctx.buf(vc!), q: ctx.buf(n) },
        { ...e.uniforms, rq: qDim, rk: kvDim, cols, eps, headSize, rotDim, lanes }, groups);
      return;
    }
    // blocks of positions, split weights, a device with fewer bindings: the two kernels
    const qkv = ctx.scratch(n, 'qkv', (qDim + 2 * kvDim) * rowsOf(n.shape));
    lowerQkv(n, ctx, qkv, b);
    lowerRopeKv(n, ctx, qkv, [pos!, table!, kc!, vc!], ropePart(n.attr as QkvRopeKvAttr).epilogues ?? []);
  },
}, { rows: () => [0], pos: 5, states: [7, 8] });

/** Store row `row` of [q; k; v] (value `mine`; `partner` is its RoPE pair's, the other row of 2i, 2i+1)
 *  where rope_kv would: q rotated to `q`, k rotated into the key cache at position p (through hole
 *  'k'), v into the value cache. The first `rotDim` dimensions of a head rotate (partial rotary). */
/** @inline */
export function storeRotated(row: u32, mine: f32, partner: f32, rq: u32, rk: u32, p: u32, table: In<f32>, headSize: u32, rotDim: u32, q: Out<f32>, kc: Out<f32>, vc: Out<f32>): void {
  const i: u32 = row < rq ? row : row - rq; // index within q, or within k (and v)
  const j: u32 = (i - (i & 1)) % headSize; // the pair's first dimension within its head
  let v: f32 = mine;
  if (row < rq + rk && j < rotDim) {
    const t: u32 = (p * (rotDim >> 1) + (j >> 1)) * 2;
    const c: f32 = table[t];
    const s: f32 = table[t + 1];
    v = (i & 1) === 0 ? mine * c - partner * s : partner * s + mine * c;
  }
  if (row < rq) {
    q[row] = v;
  } else if (row < rq + rk) {
    kc[p * rk + i] = epilogue(v, i, 'k');
  } else {
    vc[p * rk + i - rk] = v;
  }
}

/** qkvQ8Kernel with RoPE and the cache write at the store (q, k and v widths multiples of 4, so a set of
 *  four rows holds two whole pairs of one projection). */
/** @kernel @workgroupSize 256 */
export function qkvRopeQ8Kernel(id: Invocation, x: In<f32x4>, nw: In<f32x4>, wq: In<u32x4>, wk: In<u32x4>, wv: In<u32x4>, pos: In<u32>, table: In<f32>,
  q: Out<f32>, kc: Out<f32>, vc: Out<f32>, rq: u32, rk: u32, cols: u32, eps: f32, headSize: u32, rotDim: u32, lanes: Spec<u32>) {
  const dots = sharedF32(1024);
  const squares = sharedF32(256);
  const lane: u32 = id.local % lanes;
  const r: u32 = 4 * (id.group * idiv(256, lanes) + idiv(id.local, lanes));
  clearSets(dots, squares, id);
  qkvSetQ8(wq, wk, wv, r, rq, rk, rk, cols, x, nw, lane, lanes, dots, squares, id);
  sumLanes4(dots, squares, lane, lanes, id);
  const first: u32 = id.local - lane;
  if (lane < 4 && r + lane < rq + 2 * rk) {
    const scale: f32 = 1 / Math.sqrt(squares[first] / f32(cols) + eps);
    storeRotated(r + lane, epilogue(dots[lane * 256 + first] * scale, r + lane, 'bias'), epilogue(dots[(lane ^ 1) * 256 + first] * scale, (r + lane) ^ 1, 'bias'), rq, rk, pos[0], table, headSize, rotDim, q, kc, vc);
  }
}

/** qkvF16Kernel with RoPE and the cache write at the store: a row's pair is the next (or previous) set
 *  of `lanes` invocations in the workgroup (lanes <= 128). */
/** @kernel @workgroupSize 256 */
export function qkvRopeF16Kernel(id: Invocation, x: In<f32x4>, nw: In<f32x4>, wq: In<u32x4>, wk: In<u32x4>, wv: In<u32x4>, pos: In<u32>, table: In<f32>,
  q: Out<f32>, kc: Out<f32>, vc: Out<f32>, rq: u32, rk: u32, cols: u32, eps: f32, headSize: u32, rotDim: u32, lanes: Spec<u32>) {
  const partial = sharedF32(256);
  const squares = sharedF32(256);
  const lane: u32 = id.local % lanes;
  const row: u32 = id.group * idiv(256, lanes) + idiv(id.local, lanes);
  const c8: u32 = cols >> 3;
  partial[id.local] = 0;
  squares[id.local] = 0;
  qkvRowF16(wq, wk, wv, row, rq, rk, rk, c8, x, nw, lane, lanes, partial, squares, id);
  sumLanes(partial, lane, lanes, id);
  sumLanes(squares, lane, lanes, id);
  const first: u32 = id.local - lane;
  if (lane === 0 && row < rq + 2 * rk) {
    const scale: f32 = 1 / Math.sqrt(squares[first] / f32(cols) + eps);
    storeRotated(row, epilogue(partial[first] * scale, row, 'bias'), epilogue(partial[first ^ lanes] * scale, row ^ 1, 'bias'), rq, rk, pos[0], table, headSize, rotDim, q, kc, vc);
  }
}
