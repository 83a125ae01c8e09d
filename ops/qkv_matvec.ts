// Fused Q, K and V projections of one RMS-normed vector (the seed's fusedQKVMatmulX): one dispatch,
// a workgroup per output row of [q; k; v], written to one buffer. Sources: [x, nw, Wq, Wk, Wv], and
// with epilogues 'bias:bias' the [q; k; v] bias vector, added at the store (hole 'bias').
import { type Invocation, type In, type Out, type Spec, type u32, type u32x4, type f32x4, epilogue, f32, idiv, sharedF32 } from '../compiler/kernel/dsl.js';
import { EPILOGUES, epilogueUse, epiloguesOf, lowerEpilogues, sameEpilogues, type EpilogueUse } from './epilogues.js';
import { workgroupSum } from './reduce.js';
import { type Op, expectShape, isBlock, overRows } from './op.js';
import { WTYPE, weightAt } from './dequant.js';
import { matvec, clearSets, fourRowsQ8, lowerMatvec, type MatvecCall, rowDotF16, sumLanes, sumLanes4, wideFor, wideGrid } from './matvec.js';
import { ShapeError } from '../compiler/errors.js';
import type { Node } from '../compiler/ir/graph.js';
import type { BufId, LowerCtx } from '../compiler/ir/op.js';

export type QkvAttr = { eps: number; epilogues?: readonly EpilogueUse[] };
/** the one epilogue a qkv_matvec takes: the [q; k; v] bias at the kernels' 'bias' hole */
export const QKV_BIAS: readonly EpilogueUse[] = [epilogueUse('bias', 0, 'bias')];

export const qkvMatvec: Op<QkvAttr> = overRows<QkvAttr>({
  name: 'qkv_matvec',
  describe: () => ['rmsnorm', 'matvec (q)', 'matvec (k)', 'matvec (v)'],
  infer([x, nw, wq, wk, wv, b], a) {
    expectShape(nw!, x!.shape, 'norm weight');
    const rows = [wq, wk, wv].map((w) => matvec.infer([w!, x!, nw!], { norm: true, eps: a.eps }).shape[0]!);
    if (!rows.every((r) => r > 0)) throw new ShapeError('empty projection');
    const width = rows[0]! + rows[1]! + rows[2]!;
    if ((b !== undefined) !== sameEpilogues(epiloguesOf(a), QKV_BIAS)) throw new ShapeError('qkv_matvec takes a bias source exactly with the epilogue bias at hole bias');
    if (b) expectShape(b, [width], 'qkv bias');
    return { shape: [width], dtype: 'f32' };
  },
  reference([x, nw, wq, wk, wv, b], a, s) {
    const one = (w: Float64Array, shape: readonly number[]) => matvec.reference([w, x!, nw!], { norm: true, eps: a.eps }, { srcs: [shape, s.srcs[0]!, s.srcs[1]!], out: [shape[0]!] });
    const parts = [one(wq!, s.srcs[2]!), one(wk!, s.srcs[3]!), one(wv!, s.srcs[4]!)];
    const out = new Float64Array(s.out[0]!);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return b ? out.map((v, i) => EPILOGUES.bias.reference(v, i, [b], 0)) : out;
  },
  lower(n, ctx) { lowerQkv(n, ctx, ctx.buf(n), n.srcs[5]); },
}, { rows: () => [0] });

/** Lower a QKV node (sources [x, nw, Wq, Wk, Wv, ...], attr eps) into `out`, adding the [q; k; v] bias `b` if given. */
export function lowerQkv(n: Node, ctx: LowerCtx, out: BufId, b?: Node) {
    const [x, nw, wq, wk, wv] = n.srcs;
    // only the bias hole's epilogue belongs to these kernels (a qkv_rope_kv node also carries its k tap)
    const e = (kernel: string) => lowerEpilogues(n, ctx, kernel, b ? [b] : [], b ? QKV_BIAS : []);
    const [cq, ck, cv] = [wq, wk, wv].map((w) => ctx.chunks(w!));
    const width = wq!.shape[0]! + wk!.shape[0]! + wv!.shape[0]!; // a row of the output
    const wide = wideFor([wq!, wk!, wv!], x!.shape[0]!);
    if (cq!.length === 1 && ck!.length === 1 && cv!.length === 1 && !isBlock(n.shape)) {
      const rq = wq!.shape[0]!, rk = wk!.shape[0]!, rv = wv!.shape[0]!;
      if (wide) { // 16-byte loads
        const { lanes, groups } = wideGrid(wide, rq + rk + rv, x!.shape[0]!);
        const k = e(wide.qkv);
        ctx.dispatch(k.kernel, { ...k.bind, x: ctx.buf(x!), nw: ctx.buf(nw!), wq: cq![0]!.buf, wk: ck![0]!.buf, wv: cv![0]!.buf, out },
          { ...k.uniforms, rq, rk, rv, cols: x!.shape[0]!, eps: n.attr.eps as number, lanes }, groups);
        return;
      }
      const k = e('qkvKernel');
      ctx.dispatch(k.kernel, { ...k.bind, x: ctx.buf(x!), nw: ctx.buf(nw!), wq: cq![0]!.buf, wk: ck![0]!.buf, wv: cv![0]!.buf, out },
        { ...k.uniforms, rq, rk, rv, cols: x!.shape[0]!, eps: n.attr.eps as number, qtype: WTYPE[wq!.dtype]!, ktype: WTYPE[wk!.dtype]!, vtype: WTYPE[wv!.dtype]! }, rq + rk + rv);
      return;
    }
    if (b && isBlock(n.shape)) throw new Error('internal: a fused QKV bias over a block of positions');
    // several positions, or a weight too big for one binding: one normed matvec (or matrix product)
    // per projection, each into its columns of the output
    // (a bias epilogue reads b at the output index, which counts from the start of [q; k; v])
    const normed = (w: Node | undefined): MatvecCall => ({ owner: n, w: w!, x: x!, norm: { weight: nw!, eps: n.attr.eps as number }, epilogues: b ? [epilogueUse('bias', 0)] : [], vectors: b ? [b] : [] });
    lowerMatvec(normed(wq), ctx, out, 0, width);
    lowerMatvec(normed(wk), ctx, out, wq!.shape[0]!, width);
    lowerMatvec(normed(wv), ctx, out, wq!.shape[0]! + wk!.shape[0]!, width);
  }

/** @kernel @workgroupSize 64 */
export function qkvKernel(id: Invocation, x: In<f32>, nw: In<f32>, wq: In<u32>, wk: In<u32>, wv: In<u32>, out: Out<f32>,
  rq: u32, rk: u32, rv: u32, cols: u32, eps: f32, qtype: Spec<u32>, ktype: Spec<u32>, vtype: Spec<u32>) {
  const partial = sharedF32(64);
  const squares = sharedF32(64);
  const row: u32 = id.group;
  if (row >= rq + rk + rv) {
    return;
  }
  let acc: f32 = 0;
  let ss: f32 = 0;
  for (let c: u32 = id.local; c < cols; c += id.size) {
    const xv: f32 = x[c];
    ss += xv * xv;
    let wgt: f32 = 0;
    if (row < rq) {
      wgt = weightAt(wq, qtype, rq, cols, row, c);
    } else if (row < rq + rk) {
      wgt = weightAt(wk, ktype, rk, cols, row - rq, c);
    } else {
      wgt = weightAt(wv, vtype, rv, cols, row - rq - rk, c);
    }
    acc += wgt * (xv * nw[c]); // as matvec and matmul group it, so decode and prefill round alike
  }
  partial[id.local] = acc;
  squares[id.local] = ss;
  workgroupSum(partial, id);
  workgroupSum(squares, id);
  if (id.local === 0) {
    out[row] = epilogue(partial[0] / Math.sqrt(squares[0] / f32(cols) + eps), row, 'bias');
  }
}

/** qkvKernel for f16 weights in 16-byte loads (matvecF16Kernel's layout: 8 rows a workgroup). */
/** @kernel @workgroupSize 256 */
export function qkvF16Kernel(id: Invocation, x: In<f32x4>, nw: In<f32x4>, wq: In<u32x4>, wk: In<u32x4>, wv: In<u32x4>, out: Out<f32>,
  rq: u32, rk: u32, rv: u32, cols: u32, eps: f32, lanes: Spec<u32>) {
  const partial = sharedF32(256);
  const squares = sharedF32(256);
  const lane: u32 = id.local % lanes;
  const row: u32 = id.group * idiv(256, lanes) + idiv(id.local, lanes);
  const c8: u32 = cols >> 3;
  partial[id.local] = 0;
  squares[id.local] = 0;
  qkvRowF16(wq, wk, wv, row, rq, rk, rv, c8, x, nw, lane, lanes, partial, squares, id);
  sumLanes(partial, lane, lanes, id);
  sumLanes(squares, lane, lanes, id);
  if (lane === 0 && row < rq + rk + rv) {
    out[row] = epilogue(partial[id.local] / Math.sqrt(squares[id.local] / f32(cols) + eps), row, 'bias');
  }
}

/** qkvF16Kernel for q8_0 weights (every projection's rows a multiple of 4): four rows of one
 *  projection to a set of `lanes` invocations (fourRowsQ8). */
/** @kernel @workgroupSize 256 */
export function qkvQ8Kernel(id: Invocation, x: In<f32x4>, nw: In<f32x4>, wq: In<u32x4>, wk: In<u32x4>, wv: In<u32x4>, out: Out<f32>,
  rq: u32, rk: u32, rv: u32, cols: u32, eps: f32, lanes: Spec<u32>) {
  const dots = sharedF32(1024);
  const squares = sharedF32(256);
  const lane: u32 = id.local % lanes;
  const r: u32 = 4 * (id.group * idiv(256, lanes) + idiv(id.local, lanes));
  clearSets(dots, squares, id);
  qkvSetQ8(wq, wk, wv, r, rq, rk, rv, cols, x, nw, lane, lanes, dots, squares, id);
  sumLanes4(dots, squares, lane, lanes, id);
  const first: u32 = id.local - lane;
  if (lane < 4 && r + lane < rq + rk + rv) {
    out[r + lane] = epilogue(dots[lane * 256 + first] / Math.sqrt(squares[first] / f32(cols) + eps), r + lane, 'bias');
  }
}

/** The normed dot products of row `row` of [Wq; Wk; Wv] (f16, 16-byte loads) for the QKV kernels. */
/** @inline */
export function qkvRowF16(wq: In<u32x4>, wk: In<u32x4>, wv: In<u32x4>, row: u32, rq: u32, rk: u32, rv: u32, c8: u32, x: In<f32x4>, nw: In<f32x4>, lane: u32, lanes: u32, partial: Out<f32>, squares: Out<f32>, id: Invocation): void {
  if (row < rq) {
    rowDotF16(wq, row, c8, x, nw, 1, lane, lanes, partial, squares, id);
  } else if (row < rq + rk) {
    rowDotF16(wk, row - rq, c8, x, nw, 1, lane, lanes, partial, squares, id);
  } else if (row < rq + rk + rv) {
    rowDotF16(wv, row - rq - rk, c8, x, nw, 1, lane, lanes, partial, squares, id);
  }
}

/** The normed dot products of rows r..r+3 of [Wq; Wk; Wv] (q8_0; a set never straddles two matrices,
 *  whose rows are multiples of 4) for the QKV kernels. */
/** @inline */
export function qkvSetQ8(wq: In<u32x4>, wk: In<u32x4>, wv: In<u32x4>, r: u32, rq: u32, rk: u32, rv: u32, cols: u32, x: In<f32x4>, nw: In<f32x4>, lane: u32, lanes: u32, dots: Out<f32>, squares: Out<f32>, id: Invocation): void {
  if (r < rq) {
    fourRowsQ8(wq, r, rq, wq, r + 1, rq, wq, r + 2, rq, wq, r + 3, rq, cols, x, nw, 1, lane, lanes, dots, squares, id);
  } else if (r < rq + rk) {
    const k: u32 = r - rq;
    fourRowsQ8(wk, k, rk, wk, k + 1, rk, wk, k + 2, rk, wk, k + 3, rk, cols, x, nw, 1, lane, lanes, dots, squares, id);
  } else if (r < rq + rk + rv) {
    const v: u32 = r - rq - rk;
    fourRowsQ8(wv, v, rv, wv, v + 1, rv, wv, v + 2, rv, wv, v + 3, rv, cols, x, nw, 1, lane, lanes, dots, squares, id);
  }
}
