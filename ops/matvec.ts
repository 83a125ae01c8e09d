// Matrix-vector product: W [rows, cols] times x [cols] -> [rows]. Every decode-time projection.
// W may be f32, f16, bf16, q8_0 or q4_0; it is dequantized element by element inside the kernel.
// Fusion extends it without new kernel source: `norm` folds the RMSNorm of x (weight nw) into the
// dot product, and `epilogues` splice fragments (residual/bias add, scale) into the store.
// Sources: [W, x, nw if norm, ...one vector per `add` epilogue].
import { type Invocation, type In, type Out, type Spec, type u32, type u32x4, type f32x4, epilogue, f32, idiv, localF32, mul4, sharedF32, lane4, subgroupAdd, unpackHalf, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { sumRuns, workgroupSum } from './reduce.js';
import { type Op, expectDtype, expectShape, isBlock, overRows, rowsOf } from './op.js';
import { WTYPE, weightAt } from './dequant.js';
import { EPILOGUES, epilogueArrays, epiloguesOf, lowerEpilogues, valueOf, type EpilogueUse } from './epilogues.js';
import { ShapeError } from '../compiler/errors.js';
import type { Node } from '../compiler/ir/graph.js';
import { BLOCK, WEIGHT_DTYPES } from '../compiler/ir/dtype.js';
import type { LowerCtx } from '../compiler/ir/op.js';
import { matvecT } from './matvec_t.js';

export type MatvecAttr = { norm?: boolean; eps?: number; epilogues?: readonly EpilogueUse[] };

export const matvec: Op<MatvecAttr> = overRows<MatvecAttr>({
  name: 'matvec',
  describe: (n) => [...(n.attr.norm ? ['rmsnorm'] : []), 'matvec', ...epiloguesOf(n).map((e) => e.name)],
  infer([w, x, ...rest], a) {
    if (w!.shape.length !== 2 || x!.shape.length !== 1) throw new ShapeError('matvec takes a matrix and a vector');
    if (w!.shape[1] !== x!.shape[0]) throw new ShapeError(`matrix has ${w!.shape[1]} columns but the vector has ${x!.shape[0]} elements`);
    expectDtype(w!, WEIGHT_DTYPES, 'matvec weight');
    if (w!.shape[1]! % BLOCK[w!.dtype]![0] !== 0) throw new ShapeError(`${w!.dtype} rows must be whole blocks of ${BLOCK[w!.dtype]![0]}, got ${w!.shape[1]} columns`);
    const extra = (a.norm ? 1 : 0) + epilogueArrays(epiloguesOf(a));
    if (rest.length !== extra) throw new ShapeError(`matvec with these attributes takes ${2 + extra} sources, got ${2 + rest.length}`);
    if (a.norm) expectShape(rest[0]!, x!.shape, 'norm weight');
    let next = a.norm ? 1 : 0;
    for (const e of epiloguesOf(a)) {
      for (const y of rest.slice(next, next + EPILOGUES[e.name].arrays)) {
        // a bias is read from its offset in a longer vector; other vectors match the output
        const at = valueOf(e);
        if (e.name === 'bias') { if (y.shape.length !== 1 || at + w!.shape[0]! > y.shape[0]!) throw new ShapeError(`bias [${at}, ${at + w!.shape[0]!}) of [${y.shape}]`); }
        else expectShape(y, [w!.shape[0]!], 'epilogue vector');
      }
      next += EPILOGUES[e.name].arrays;
    }
    return { shape: [w!.shape[0]!], dtype: 'f32' };
  },
  reference([w, x, ...rest], a, shapes) {
    const [rows, cols] = shapes.srcs[0] as [number, number];
    let xs = x!;
    if (a.norm) {
      let ss = 0;
      for (const v of xs) ss += v * v;
      const s = 1 / Math.sqrt(ss / cols + a.eps!);
      xs = xs.map((v, i) => v * s * rest[0]![i]!);
    }
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += w![r * cols + c]! * xs[c]!;
      out[r] = acc;
    }
    let next = a.norm ? 1 : 0;
    for (const e of epiloguesOf(a)) {
      const def = EPILOGUES[e.name];
      const arrays = rest.slice(next, next + def.arrays);
      next += def.arrays;
      for (let r = 0; r < rows; r++) out[r] = def.reference(out[r]!, r, arrays, valueOf(e));
    }
    return out;
  },
  lower(n, ctx) { lowerMatvec(matvecCall(n), ctx, ctx.buf(n), 0, n.shape[n.shape.length - 1]!); },
  // the input's gradient through the weights as stored (the weight's own: none); the unfused graph's
  // product only (a fused norm or epilogue is the fusion pass's, after differentiation)
  vjp(n, dy, b) {
    if (n.attr.norm || epiloguesOf(n.attr as MatvecAttr).length) throw new Error('internal: a fused matvec has no backward (differentiate before fusing)');
    return [undefined, b.apply(matvecT, [n.srcs[0]!, dy], {})];
  },
  // x and each epilogue vector have a row per position; over T positions it is a matrix product
}, { rows: (a, nSrcs) => [1, ...Array.from({ length: nSrcs - (a.norm ? 3 : 2) }, (_, i) => i + (a.norm ? 3 : 2))] });

/** One matvec (or, over several positions, matrix product) to dispatch: W·x, x normed first if `norm`
 *  is given, then the epilogues with their vectors. `owner` is the node whose stored outputs the
 *  epilogues' stores write (a matvec node itself, or the fused node a lowering is part of). */
export interface MatvecCall {
  readonly owner: Node;
  readonly w: Node;
  readonly x: Node;
  readonly norm?: { readonly weight: Node; readonly eps: number };
  readonly epilogues: readonly EpilogueUse[];
  /** the epilogues' vector sources, in order */
  readonly vectors: readonly Node[];
}

/** A matvec node as the call it makes. */
export function matvecCall(n: Node): MatvecCall {
  const [w, x, ...rest] = n.srcs;
  const a = n.attr as MatvecAttr;
  return { owner: n, w: w!, x: x!, ...(a.norm ? { norm: { weight: rest[0]!, eps: a.eps ?? 0 } } : {}), epilogues: epiloguesOf(a), vectors: rest.slice(a.norm ? 1 : 0) };
}

/** Dispatch a matvec call's rows into `out` at `offset` (a row of the output is `stride` wide): one
 *  dispatch per weight piece. Over several positions, the matrix-product kernel. */
export function lowerMatvec(call: MatvecCall, ctx: LowerCtx, out: string, offset: number, stride: number) {
  const { w, x, norm } = call;
  const T = rowsOf(x.shape), block = isBlock(x.shape);
  // f16 and q8_0 rows of whole 16-byte loads: the wide decode kernels
  const chunks = ctx.chunks(w);
  const wide = block ? undefined : wideFor([w], w.shape[1]!, chunks.map((c) => c.rows));
  const { kernel: matmul, tile, specs } = matmulFor(w.dtype, T, w.shape[0]!, ctx);
  const tensor = matmul === 'matmulTensorKernel';
  const splits = block ? splitsFor(w.shape[0]!, w.shape[1]!, T, ctx, tensor ? TENSOR_SPLIT_COLS : SPLIT_COLS, tensor ? TENSOR_SPLIT_MAX_ROWS : SPLIT_MAX_ROWS) : 1;
  if (splits > 1) return lowerSplit(call, ctx, out, offset, stride, splits, matmul, tile, specs);
  const e = lowerEpilogues(call.owner, ctx, block ? matmul : wide?.matvec ?? 'matvecKernel', call.vectors, call.epilogues);
  const bind: Record<string, string> = { ...e.bind, x: ctx.buf(x), nw: norm ? ctx.buf(norm.weight) : ctx.buf(x), out };
  const grid = wide && wideGrid(wide, w.shape[0]!, w.shape[1]!);
  const uniforms: Record<string, number> = { ...e.uniforms, cols: w.shape[1]!, eps: norm?.eps ?? 0, norm: norm ? 1 : 0, ...(grid ? { lanes: grid.lanes } : { wtype: WTYPE[w.dtype]! }) };
  for (const c of chunks) {
    if (block) {
      const rowTiles = Math.ceil(c.rows / tile.rows), tiles = rowTiles * Math.ceil(T / tile.positions);
      ctx.dispatch(e.kernel, { ...bind, w: c.buf }, { ...uniforms, ...specs, rows: c.rows, tokens: T, outStride: stride, outOffset: offset + c.rowStart, rowTiles, tiles, splitCols: w.shape[1]! }, tiles);
    } else ctx.dispatch(e.kernel, { ...bind, w: c.buf }, { ...uniforms, rows: c.rows, outOffset: offset + c.rowStart }, grid ? Math.ceil(c.rows / ((wide.rowSet * 256) / grid.lanes)) : c.rows);
  }
}

/** Columns one split of a prefill matrix product sums at most (Target.splitCols overrides it): a
 *  matrix of few output rows (2048) over a block of positions is only a few dozen tiles, each walking
 *  all its columns; split along the columns it gives every SM work. */
export const SPLIT_COLS = 1024;
/** The same for the tensor-core kernel (ops/matmul_tensor.ts), whose tiles are few at 128 positions
 *  and fewer at 16 (a 2048-row matrix: 64 or 128 workgroups at 1024 columns a split, one subgroup of
 *  four busy per SM): it splits every 512. */
export const TENSOR_SPLIT_COLS = 512;
/** the most rows a block pass takes (Model's MAX_BLOCK; PATCH_ROWS is less): splits are chosen for it */
const SPLIT_BLOCK_ROWS = 512;
/** the most output rows a matrix that splits has: wider ones (the FFN's gate and up, the unembedding)
 *  have tiles enough for the f32 kernels */
const SPLIT_MAX_ROWS = 4096;
/** the same for the tensor-core kernel, whose 128 × 128 tiles are fewer: the FFN's gate and up (8192
 *  rows of the 1B shape) split too. Unsplit, their 128 workgroups each walked 2048 columns, 245 µs a
 *  product at 256 positions; split, a 512-token prefill took 28.5 ms against 33.0 and a 128-token one
 *  8.1 against 11.9 (benchmarks/prefill_study.ts, run 2026-12-07-h100-j) */
export const TENSOR_SPLIT_MAX_ROWS = 8192;

/** How many splits a matrix product of `rows` × `cols` takes over a block of T positions: decided by
 *  the matrix alone (so a position's row is the same bits in any block), one where the partial sums of
 *  a full block would not fit a binding. */
export function splitsFor(rows: number, cols: number, T: number, ctx: Pick<LowerCtx, 'splitCols' | 'maxBindingBytes' | 'splitMaxRows'>, splitCols = SPLIT_COLS, maxRows = SPLIT_MAX_ROWS): number {
  const per = Math.max(64, ctx.splitCols ?? splitCols);
  if (rows > (ctx.splitMaxRows ?? maxRows) || cols < 2 * per) return 1;
  const splits = Math.min(8, Math.ceil(cols / per));
  return splits * Math.max(SPLIT_BLOCK_ROWS, T) * rows * 4 <= ctx.maxBindingBytes ? splits : 1;
}

/** A block's matrix product in `splits` column ranges: each range's partial sums into a scratch
 *  [splits][T][rows] (matmul kernels without epilogues or the norm's scale), then splitSumKernel adds
 *  them in order, scales and runs the epilogues. */
function lowerSplit(call: MatvecCall, ctx: LowerCtx, out: string, offset: number, stride: number, splits: number, kernel: string, tile: Tile, specs: Record<string, number>) {
  const { w, x, norm } = call;
  const T = rowsOf(x.shape), rows = w.shape[0]!, cols = w.shape[1]!;
  const splitCols = Math.ceil(Math.ceil(cols / splits) / 64) * 64;
  // (one buffer for the plan: each split product's sums are added up by the dispatch after it)
  const part = ctx.planScratch('split', splits * T * rows);
  for (const c of ctx.chunks(w)) {
    const rowTiles = Math.ceil(c.rows / tile.rows), tiles = rowTiles * Math.ceil(T / tile.positions);
    ctx.dispatch(kernel, { w: c.buf, x: ctx.buf(x), nw: norm ? ctx.buf(norm.weight) : ctx.buf(x), out: part },
      { ...specs, rows: c.rows, cols, tokens: T, outStride: rows, outOffset: c.rowStart, eps: 0, rowTiles, tiles, splitCols, wtype: WTYPE[w.dtype]!, norm: norm ? 1 : 0 }, tiles * Math.ceil(cols / splitCols));
  }
  const e = lowerEpilogues(call.owner, ctx, 'splitSumKernel', call.vectors, call.epilogues);
  const rowBlocks = Math.ceil(rows / 256);
  ctx.dispatch(e.kernel, { ...e.bind, part, x: ctx.buf(x), out },
    { ...e.uniforms, rows, cols, tokens: T, splits: Math.ceil(cols / splitCols), outStride: stride, outOffset: offset, eps: norm?.eps ?? 0, rowBlocks, norm: norm ? 1 : 0 }, rowBlocks * T);
}

/** The 16-byte decode kernels by weight dtype: the column multiple that makes a row whole 16-byte loads,
 *  weights a load, and the rows a set of `lanes` invocations computes together (x loaded once for them;
 *  the matrices' rows must be a multiple of it); `ffnRows`: output rows of gate/up such a set computes. */
export type Wide = { matvec: string; ffn: string; qkv: string; cols: number; perLoad: number; rowSet: number; ffnRows: number };
const WIDE: Readonly<Record<string, Wide>> = {
  f16: { matvec: 'matvecF16Kernel', ffn: 'ffnGateUpF16Kernel', qkv: 'qkvF16Kernel', cols: 8, perLoad: 8, rowSet: 1, ffnRows: 1 },
  // four int8 rows a set: unpacking costs about what loading x does, so x is loaded once for four
  q8_0: { matvec: 'matvecQ8Kernel', ffn: 'ffnGateUpQ8Kernel', qkv: 'qkvQ8Kernel', cols: 32, perLoad: 16, rowSet: 4, ffnRows: 2 },
};
/** The 16-byte kernels for these weights (one dtype) over `cols` columns, if there are any. */
export function wideFor(weights: readonly Node[], cols: number, rows = weights.map((w) => w.shape[0]!)): Wide | undefined {
  const k = WIDE[weights[0]!.dtype];
  return k && weights.every((w) => w.dtype === weights[0]!.dtype) && rows.every((r) => r % k.rowSet === 0) && cols % k.cols === 0 ? k : undefined;
}
/** Invocations a row set gets, and the workgroups, for `rows` rows (`rowSet` to a set) of `cols` columns. */
export function wideGrid(k: Wide, rows: number, cols: number, rowSet = k.rowSet): { lanes: number; groups: number } {
  const lanes = lanesFor(rows / rowSet, (cols * 8) / k.perLoad);
  return { lanes, groups: Math.ceil(rows / ((rowSet * 256) / lanes)) };
}

/** The splits of a matrix product split along its columns (lowerMatvec) added up, in split order, then
 *  scaled by the row's norm and passed to the epilogues: one invocation per output, `rowBlocks` workgroups
 *  of 256 outputs per position. `part` holds [splits][tokens][rows] partial sums; the squares of x's row
 *  for the norm are summed here, the same way for a position in any block. */
/** @kernel @workgroupSize 256 */
export function splitSumKernel(id: Invocation, part: In<f32>, x: In<f32>, out: Out<f32>,
  rows: u32, cols: u32, tokens: u32, splits: u32, outStride: u32, outOffset: u32, eps: f32, rowBlocks: u32, norm: Spec<u32>) {
  const sq = sharedF32(256);
  const t: u32 = idiv(id.group, rowBlocks);
  const r: u32 = (id.group % rowBlocks) * 256 + id.local;
  let scale: f32 = 1;
  if (norm === 1) {
    let ss: f32 = 0;
    for (let c: u32 = id.local; c < cols; c += 256) {
      const v: f32 = x[t * cols + c];
      ss += v * v;
    }
    sq[id.local] = ss;
    workgroupSum(sq, id);
    scale = 1 / Math.sqrt(sq[0] / f32(cols) + eps);
  }
  if (r < rows) {
    let v: f32 = 0;
    for (let k: u32 = 0; k < splits; k++) {
      v += part[(k * tokens + t) * rows + r];
    }
    const o: u32 = t * outStride + outOffset + r;
    out[o] = epilogue(v * scale, o);
  }
}

/** a matmul workgroup's tile: weight rows by positions */
type Tile = { readonly rows: number; readonly positions: number };
const TILE: Tile = { rows: 64, positions: 64 };
/** at most this many positions (all sequences' rows of a block) take matmulSmallKernel's tiles of
 *  32 rows by 16 positions: with 64 × 64 tiles, a few positions leave most of each tile idle and a
 *  matrix only rows / 64 workgroups (a 16-position prefill of the 1B shape took 27 ms on an H100,
 *  128 positions 35 ms) */
const SMALL_TOKENS = 32;
const SMALL_TILE: Tile = { rows: 32, positions: 16 };
/** matmulTensorKernel's tiles (ops/matmul_tensor.ts, its `shape` specialization): 64 weight rows by 16
 *  positions for a block of at most 16, 64 by 64, and 128 by 128 for a matrix of at least
 *  TENSOR_WIDE_ROWS rows over more than 64 positions (each staged value serves twice the products).
 *  2048: every 1B-shape matrix but k and v; a 512-token prefill took 32.5 ms against 37.8 with 8192
 *  (the FFN's gate and up alone), a 128-token one 12.1 against 13.1, though the 2048-row matrices then
 *  have fewer workgroups than SMs (benchmarks/prefill_study.ts, run 2026-12-07-h100-e) */
const TENSOR_TILES: readonly Tile[] = [{ rows: 64, positions: 16 }, { rows: 64, positions: 64 }, { rows: 128, positions: 128 }];
export const TENSOR_WIDE_ROWS = 2048;

/** The prefill matrix-product kernel for weights of `dtype` and `rows` rows over T positions: the tensor
 *  cores where the target has subgroup matrices and the weights are not f32 (an f32 model keeps the
 *  exact f32 path), else the f32 kernels, with smaller tiles for a few positions. Every tile sums a
 *  row's columns in the same order, so a position's row is the same bits in any block. */
export function matmulFor(dtype: string, T: number, rows: number, ctx: Pick<LowerCtx, 'matrices' | 'tensorWideRows'>): { kernel: string; tile: Tile; specs: Record<string, number> } {
  if (ctx.matrices && dtype !== 'f32') {
    const shape = T <= 16 ? 0 : T > 64 && rows >= (ctx.tensorWideRows ?? TENSOR_WIDE_ROWS) ? 2 : 1;
    return { kernel: 'matmulTensorKernel', tile: TENSOR_TILES[shape]!, specs: { shape } };
  }
  return T <= SMALL_TOKENS ? { kernel: 'matmulSmallKernel', tile: SMALL_TILE, specs: {} } : { kernel: 'matmulKernel', tile: TILE, specs: {} };
}

/** A workgroup per output row: strided partial dot products (and sums of squares for the norm),
 *  a tree reduction, then the epilogue at the store. */
/** @kernel @workgroupSize 64 */
export function matvecKernel(id: Invocation, w: In<u32>, x: In<f32>, nw: In<f32>, out: Out<f32>,
  rows: u32, cols: u32, outOffset: u32, eps: f32, wtype: Spec<u32>, norm: Spec<u32>) {
  const partial = sharedF32(64);
  const squares = sharedF32(64);
  const row: u32 = id.group;
  if (row >= rows) {
    return;
  }
  let acc: f32 = 0;
  let ss: f32 = 0;
  for (let c: u32 = id.local; c < cols; c += id.size) {
    const xv: f32 = x[c];
    ss += xv * xv;
    acc += weightAt(w, wtype, rows, cols, row, c) * (norm === 1 ? xv * nw[c] : xv);
  }
  partial[id.local] = acc;
  squares[id.local] = ss;
  workgroupSum(partial, id);
  if (norm === 1) {
    workgroupSum(squares, id);
  }
  if (id.local === 0) {
    const scale: f32 = norm === 1 ? 1 / Math.sqrt(squares[0] / f32(cols) + eps) : 1;
    out[outOffset + row] = epilogue(partial[0] * scale, outOffset + row);
  }
}

/** Several positions at once (a prefill): the matrix product out[t][r] = Σ_c W[r][c]·x[t][c] in tiles
 *  of 64 weight rows by 64 positions, a workgroup a tile. Each step stages 16 columns of the tile's
 *  weights (dequantized) and of its positions' x (times the norm weight) in workgroup memory, and each
 *  invocation adds them into its 4 × 4 outputs (rows ty + 16i, positions tx + 16j): every weight read
 *  from memory serves 64 positions, every staged value 4 products. An output's sum runs over the
 *  columns in order whatever the tile, so a position's row is the same in any block. The norm's sums of
 *  squares ride along with the staging (four invocations a position, added in a fixed order). */
/** @kernel @workgroupSize 256 */
export function matmulKernel(id: Invocation, w: In<u32>, x: In<f32>, nw: In<f32>, out: Out<f32>,
  rows: u32, cols: u32, tokens: u32, outStride: u32, outOffset: u32, eps: f32, rowTiles: u32, tiles: u32, splitCols: u32, wtype: Spec<u32>, norm: Spec<u32>) {
  const ws = sharedF32(1024); // [16 columns][64 rows]
  const xs = sharedF32(1024); // [16 columns][64 positions]
  const sq = sharedF32(256);
  // split k of `tiles` tiles sums columns k0 .. k1 (all of them when there is one split)
  const split: u32 = idiv(id.group, tiles);
  const tile: u32 = id.group % tiles;
  const k0: u32 = split * splitCols;
  const k1: u32 = Math.min(cols, k0 + splitCols);
  const r0: u32 = (tile % rowTiles) * 64;
  const t0: u32 = idiv(tile, rowTiles) * 64;
  const tx: u32 = id.local % 16;
  const ty: u32 = idiv(id.local, 16);
  // staging: invocation i loads row (and position) i / 4, columns 4·(i % 4) .. +3 of the step
  const lr: u32 = id.local >> 2;
  const lc: u32 = (id.local & 3) * 4;
  const wr: u32 = Math.min(r0 + lr, rows - 1); // rows and positions past the end compute a copy, never stored
  const xt: u32 = Math.min(t0 + lr, tokens - 1);
  let ss: f32 = 0;
  const acc = localF32(16); // [4 weight rows][4 positions]: rows ty + 16i, positions tx + 16j
  const wv = localF32(4);
  const xv4 = localF32(4);
  for (let c0: u32 = k0; c0 < k1; c0 += 16) {
    for (let j: u32 = 0; j < 4; j++) {
      // columns past the end (the last step of a row that is not whole steps) read the last, as 0
      const c: u32 = Math.min(c0 + lc + j, k1 - 1);
      const live: f32 = c0 + lc + j < k1 ? 1 : 0;
      const xv: f32 = x[xt * cols + c] * live;
      ss += xv * xv;
      ws[(lc + j) * 64 + lr] = weightAt(w, wtype, rows, cols, wr, c) * live;
      xs[(lc + j) * 64 + lr] = norm === 1 ? xv * nw[c] : xv;
    }
    workgroupBarrier();
    for (let k: u32 = 0; k < 16; k++) {
      for (let i: u32 = 0; i < 4; i++) {
        wv[i] = ws[k * 64 + ty + 16 * i];
        xv4[i] = xs[k * 64 + tx + 16 * i];
      }
      for (let i: u32 = 0; i < 4; i++) {
        for (let j: u32 = 0; j < 4; j++) {
          acc[i * 4 + j] += wv[i] * xv4[j];
        }
      }
    }
    workgroupBarrier();
  }
  sq[id.local] = ss;
  workgroupBarrier();
  for (let j: u32 = 0; j < 4; j++) {
    const tl: u32 = tx + 16 * j; // the position within the tile
    const squares: f32 = sq[4 * tl] + sq[4 * tl + 1] + sq[4 * tl + 2] + sq[4 * tl + 3];
    // a split's partial sum is stored as it is: splitSumKernel adds the splits and scales
    const scale: f32 = norm === 1 && k1 - k0 === cols ? 1 / Math.sqrt(squares / f32(cols) + eps) : 1;
    for (let i: u32 = 0; i < 4; i++) {
      const r: u32 = r0 + ty + 16 * i;
      if (r < rows && t0 + tl < tokens) {
        const v: f32 = acc[i * 4 + j];
        const o: u32 = (split * tokens + t0 + tl) * outStride + outOffset + r;
        out[o] = epilogue(v * scale, o);
      }
    }
  }
}

/** The matrix product for a few positions: a workgroup of 128 takes 32 weight rows by 16 positions,
 *  an invocation one row by four positions, each output's sum over the columns in order, one product at
 *  a time: the same sum in the same order as matmulKernel's (and the norm's sums of squares in its four
 *  interleaved parts, added as it adds them), so a position's row is the same bits whichever kernel a
 *  block takes. Each step stages 64 columns of the tile's weights (dequantized, neighbouring invocations
 *  reading neighbouring columns) and of its positions' x (times the norm weight) in workgroup memory;
 *  a weight read from there serves four products, an x value (the same for a whole subgroup) one. */
/** @kernel @workgroupSize 128 */
export function matmulSmallKernel(id: Invocation, w: In<u32>, x: In<f32>, nw: In<f32>, out: Out<f32>,
  rows: u32, cols: u32, tokens: u32, outStride: u32, outOffset: u32, eps: f32, rowTiles: u32, tiles: u32, splitCols: u32, wtype: Spec<u32>, norm: Spec<u32>) {
  const ws = sharedF32(2080); // [32 rows][65]: a step's 64 columns and a pad, so a column's rows fall in 32 banks
  const xs = sharedF32(1040); // [16 positions][65]
  const sq = sharedF32(64); // the norm's sums of squares, [16 positions][4 parts]
  const acc = localF32(4); // this invocation's four positions (p0 .. p0 + 3) of its row
  // split k of `tiles` tiles sums columns k0 .. k1, as matmulKernel's
  const split: u32 = idiv(id.group, tiles);
  const tile: u32 = id.group % tiles;
  const k0: u32 = split * splitCols;
  const k1: u32 = Math.min(cols, k0 + splitCols);
  const r0: u32 = (tile % rowTiles) * 32;
  const t0: u32 = idiv(tile, rowTiles) * 16;
  const row: u32 = id.local % 32; // this invocation's row in the tile
  const p0: u32 = idiv(id.local, 32) * 4; // and its first position (one for a whole subgroup)
  // x staging: invocation i < 64 loads position i / 4's columns of part i % 4 (c % 16 in 4q .. 4q + 3)
  // in order, summing their squares as matmulKernel's part does
  const st: u32 = idiv(id.local, 4) % 16;
  const sp: u32 = id.local % 4;
  const xt: u32 = Math.min(t0 + st, tokens - 1); // positions past the end compute a copy, never stored
  let ss: f32 = 0;
  for (let c0: u32 = k0; c0 < k1; c0 += 64) {
    for (let j: u32 = 0; j < 16; j++) {
      const v: u32 = id.local + 128 * j; // row v / 64, column v % 64 of the step
      const cc: u32 = c0 + (v & 63);
      const live: f32 = cc < k1 ? 1 : 0;
      ws[(v >> 6) * 65 + (v & 63)] = weightAt(w, wtype, rows, cols, Math.min(r0 + (v >> 6), rows - 1), Math.min(cc, k1 - 1)) * live;
    }
    if (id.local < 64) {
      for (let m: u32 = 0; m < 4; m++) {
        for (let j: u32 = 0; j < 4; j++) {
          const k: u32 = 16 * m + 4 * sp + j;
          const c: u32 = Math.min(c0 + k, k1 - 1);
          const xv: f32 = x[xt * cols + c] * (c0 + k < k1 ? 1 : 0);
          ss += xv * xv;
          xs[st * 65 + k] = norm === 1 ? xv * nw[c] : xv;
        }
      }
    }
    workgroupBarrier();
    for (let k: u32 = 0; k < 64; k++) {
      const wv: f32 = ws[row * 65 + k];
      for (let j: u32 = 0; j < 4; j++) {
        acc[j] += wv * xs[p0 * 65 + 65 * j + k];
      }
    }
    workgroupBarrier();
  }
  if (id.local < 64) {
    sq[id.local] = ss;
  }
  workgroupBarrier();
  const r: u32 = r0 + row;
  for (let j: u32 = 0; j < 4; j++) {
    const tl: u32 = p0 + j; // the position within the tile
    const squares: f32 = sq[4 * tl] + sq[4 * tl + 1] + sq[4 * tl + 2] + sq[4 * tl + 3];
    // a split's partial sum is stored as it is: splitSumKernel adds the splits and scales
    const scale: f32 = norm === 1 && k1 - k0 === cols ? 1 / Math.sqrt(squares / f32(cols) + eps) : 1;
    if (r < rows && t0 + tl < tokens) {
      const o: u32 = (split * tokens + t0 + tl) * outStride + outOffset + r;
      out[o] = epilogue(acc[j] * scale, o);
    }
  }
}

/** 8 f16 weights (one 16-byte load) times 8 elements of x (two 4-lane loads). */
/** @inline */
export function dot8(v: u32x4, a: f32x4, b: f32x4): f32 {
  return unpackHalf(v.x, 0) * a.x + unpackHalf(v.x, 1) * a.y + unpackHalf(v.y, 0) * a.z + unpackHalf(v.y, 1) * a.w +
    unpackHalf(v.z, 0) * b.x + unpackHalf(v.z, 1) * b.y + unpackHalf(v.w, 0) * b.z + unpackHalf(v.w, 1) * b.w;
}

/** Row `r` of an f16 matrix (8 weights per 16-byte load, c8 loads a row) against x, normed by nw when
 *  `norm` is 1: this invocation's share (every `lanes`-th load from `lane`) of the dot product goes to
 *  dots[id.local], of x's squares to squares[id.local]. */
/** @inline */
export function rowDotF16(w: In<u32x4>, r: u32, c8: u32, x: In<f32x4>, nw: In<f32x4>, norm: u32, lane: u32, lanes: u32, dots: Out<f32>, squares: Out<f32>, id: Invocation): void {
  let acc: f32 = 0;
  let ss: f32 = 0;
  for (let j: u32 = lane; j < c8; j += lanes) {
    const v: u32x4 = w[r * c8 + j];
    const a: f32x4 = x[2 * j];
    const b: f32x4 = x[2 * j + 1];
    ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w + b.x * b.x + b.y * b.y + b.z * b.z + b.w * b.w;
    if (norm === 1) {
      acc += dot8(v, mul4(a, nw[2 * j]), mul4(b, nw[2 * j + 1]));
    } else {
      acc += dot8(v, a, b);
    }
  }
  dots[id.local] = acc;
  squares[id.local] = ss;
}

/** rowDotF16 for two matrices of one shape at once (the gate and up rows): both rows' loads are in
 *  flight together, and x is read once. */
/** @inline */
export function rowDot2F16(w1: In<u32x4>, w2: In<u32x4>, r: u32, c8: u32, x: In<f32x4>, nw: In<f32x4>, lane: u32, lanes: u32, dots1: Out<f32>, dots2: Out<f32>, squares: Out<f32>, id: Invocation): void {
  let acc1: f32 = 0;
  let acc2: f32 = 0;
  let ss: f32 = 0;
  for (let j: u32 = lane; j < c8; j += lanes) {
    const v1: u32x4 = w1[r * c8 + j];
    const v2: u32x4 = w2[r * c8 + j];
    const a: f32x4 = x[2 * j];
    const b: f32x4 = x[2 * j + 1];
    ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w + b.x * b.x + b.y * b.y + b.z * b.z + b.w * b.w;
    const na: f32x4 = mul4(a, nw[2 * j]);
    const nb: f32x4 = mul4(b, nw[2 * j + 1]);
    acc1 += dot8(v1, na, nb);
    acc2 += dot8(v2, na, nb);
  }
  dots1[id.local] = acc1;
  dots2[id.local] = acc2;
  squares[id.local] = ss;
}

/** Sum each group of `lanes` consecutive elements of a into the group's first (every invocation calls it). */
/** @inline */
export function sumLanes(a: Out<f32>, lane: u32, lanes: u32, id: Invocation): void {
  sumRuns(a, lane, lanes, id);
}

/** Invocations a row gets in the 16-byte kernels (32 .. 256, a power of two): enough that a matrix with
 *  few rows still has ~512 workgroups' worth of loads in flight, never more than a row has loads. */
export function lanesFor(rows: number, cols: number): number {
  let lanes = 32;
  while (lanes < 256 && (rows * lanes) / 256 < 512 && lanes * 2 <= Math.max(32, cols / 8)) lanes *= 2;
  return lanes;
}

/** The decode matvec for f16 weights whose rows are whole 16-byte loads (cols % 8 = 0): the weights
 *  stream in 16-byte loads, which is what reaches the memory's bandwidth. A workgroup of 256 takes
 *  256 / `lanes` rows, `lanes` invocations to a row, so each row is a short tree reduction; the norm
 *  prologue and the epilogues are matvecKernel's. */
/** @kernel @workgroupSize 256 */
export function matvecF16Kernel(id: Invocation, w: In<u32x4>, x: In<f32x4>, nw: In<f32x4>, out: Out<f32>,
  rows: u32, cols: u32, outOffset: u32, eps: f32, norm: Spec<u32>, lanes: Spec<u32>) {
  const partial = sharedF32(256);
  const squares = sharedF32(256);
  const lane: u32 = id.local % lanes;
  const row: u32 = id.group * idiv(256, lanes) + idiv(id.local, lanes);
  partial[id.local] = 0;
  squares[id.local] = 0;
  if (row < rows) {
    rowDotF16(w, row, cols >> 3, x, nw, norm, lane, lanes, partial, squares, id);
  }
  sumLanes(partial, lane, lanes, id);
  sumLanes(squares, lane, lanes, id);
  if (lane === 0 && row < rows) {
    const scale: f32 = norm === 1 ? 1 / Math.sqrt(squares[id.local] / f32(cols) + eps) : 1;
    out[outOffset + row] = epilogue(partial[id.local] * scale, outOffset + row);
  }
}

/** Bytes 0 and 2 of a u32 of int8 as the halves 1152 + b: offset to 0..255 (the xor of 0x80) and put
 *  in the mantissa of 1024.0 (0x6400), so unpack2x16float converts two weights in one instruction and
 *  no weight takes an integer-to-float conversion. */
/** @inline */
export function q8Even(w: u32): u32 {
  return (w & 0x00ff00ff) ^ 0x64806480;
}
/** Bytes 1 and 3 the same way. */
/** @inline */
export function q8Odd(w: u32): u32 {
  return ((w >> 8) & 0x00ff00ff) ^ 0x64806480;
}
/** Four q8_0 weights (one u32 of int8) times four elements of x, exactly. */
/** @inline */
export function dotQ8Word(w: u32, a: f32x4): f32 {
  return (unpackHalf(q8Even(w), 0) - 1152) * a.x + (unpackHalf(q8Odd(w), 0) - 1152) * a.y + (unpackHalf(q8Even(w), 1) - 1152) * a.z + (unpackHalf(q8Odd(w), 1) - 1152) * a.w;
}
/** 16 q8_0 weights (one 16-byte load: half a block) times x's 16 elements a..d, before the scale. */
/** @inline */
export function dot16Q8(v: u32x4, a: f32x4, b: f32x4, c: f32x4, d: f32x4): f32 {
  return dotQ8Word(v.x, a) + dotQ8Word(v.y, b) + dotQ8Word(v.z, c) + dotQ8Word(v.w, d);
}
/** The scale of block b of a q8_0 matrix bound as 16-byte loads, whose quants take `quads` words: the
 *  GPU layout keeps every row's f16 scales, two a word, after every row's quants in the same buffer, so
 *  no second binding is needed. */
/** @inline */
export function scaleQ8(w: In<u32x4>, quads: u32, b: u32): f32 {
  return unpackHalf(lane4(w[(quads + (b >> 1)) >> 2], (quads + (b >> 1)) & 3), b & 1);
}

/** Four q8_0 row dots at once (row r0 of w0, a matrix of n0 rows, ... r3 of w3): x (times nw when
 *  `norm`) is loaded once for all four, so each 16-byte weight load costs one 16-byte load of x, not
 *  four. A thread's partial sums go to dots[k * 256 + local], its sum of squares of x to squares[local]. */
/** @inline */
export function fourRowsQ8(w0: In<u32x4>, r0: u32, n0: u32, w1: In<u32x4>, r1: u32, n1: u32, w2: In<u32x4>, r2: u32, n2: u32, w3: In<u32x4>, r3: u32, n3: u32,
  cols: u32, x: In<f32x4>, nw: In<f32x4>, norm: u32, lane: u32, lanes: u32, dots: Out<f32>, squares: Out<f32>, id: Invocation): void {
  let acc0: f32 = 0;
  let acc1: f32 = 0;
  let acc2: f32 = 0;
  let acc3: f32 = 0;
  let ss: f32 = 0;
  for (let j: u32 = lane; j < (cols >> 4); j += lanes) {
    const xa: f32x4 = x[4 * j];
    const xb: f32x4 = x[4 * j + 1];
    const xc: f32x4 = x[4 * j + 2];
    const xd: f32x4 = x[4 * j + 3];
    ss += xa.x * xa.x + xa.y * xa.y + xa.z * xa.z + xa.w * xa.w + xb.x * xb.x + xb.y * xb.y + xb.z * xb.z + xb.w * xb.w +
      xc.x * xc.x + xc.y * xc.y + xc.z * xc.z + xc.w * xc.w + xd.x * xd.x + xd.y * xd.y + xd.z * xd.z + xd.w * xd.w;
    const a: f32x4 = norm === 1 ? mul4(xa, nw[4 * j]) : xa;
    const b: f32x4 = norm === 1 ? mul4(xb, nw[4 * j + 1]) : xb;
    const c: f32x4 = norm === 1 ? mul4(xc, nw[4 * j + 2]) : xc;
    const d: f32x4 = norm === 1 ? mul4(xd, nw[4 * j + 3]) : xd;
    // half a block of each row (16 int8) and the block's scale
    const v0: u32x4 = w0[r0 * (cols >> 4) + j];
    const v1: u32x4 = w1[r1 * (cols >> 4) + j];
    const v2: u32x4 = w2[r2 * (cols >> 4) + j];
    const v3: u32x4 = w3[r3 * (cols >> 4) + j];
    acc0 += scaleQ8(w0, n0 * (cols >> 2), r0 * (cols >> 5) + (j >> 1)) * dot16Q8(v0, a, b, c, d);
    acc1 += scaleQ8(w1, n1 * (cols >> 2), r1 * (cols >> 5) + (j >> 1)) * dot16Q8(v1, a, b, c, d);
    acc2 += scaleQ8(w2, n2 * (cols >> 2), r2 * (cols >> 5) + (j >> 1)) * dot16Q8(v2, a, b, c, d);
    acc3 += scaleQ8(w3, n3 * (cols >> 2), r3 * (cols >> 5) + (j >> 1)) * dot16Q8(v3, a, b, c, d);
  }
  dots[id.local] = acc0;
  dots[256 + id.local] = acc1;
  dots[512 + id.local] = acc2;
  dots[768 + id.local] = acc3;
  squares[id.local] = ss;
}

/** Zero this invocation's slots of fourRowsQ8's sums (rows past the matrix keep them at 0). */
/** @inline */
export function clearSets(dots: Out<f32>, squares: Out<f32>, id: Invocation): void {
  dots[id.local] = 0;
  dots[256 + id.local] = 0;
  dots[512 + id.local] = 0;
  dots[768 + id.local] = 0;
  squares[id.local] = 0;
}

/** sumLanes for fourRowsQ8's four partial sums and the squares, one barrier a step (subgroups first). */
/** @inline */
export function sumLanes4(dots: Out<f32>, squares: Out<f32>, lane: u32, lanes: u32, id: Invocation): void {
  const sg: u32 = id.subgroupSize <= lanes ? id.subgroupSize : 1;
  const t0: f32 = subgroupAdd(dots[id.local]);
  const t1: f32 = subgroupAdd(dots[256 + id.local]);
  const t2: f32 = subgroupAdd(dots[512 + id.local]);
  const t3: f32 = subgroupAdd(dots[768 + id.local]);
  const t4: f32 = subgroupAdd(squares[id.local]);
  if (sg > 1) {
    dots[id.local] = t0;
    dots[256 + id.local] = t1;
    dots[512 + id.local] = t2;
    dots[768 + id.local] = t3;
    squares[id.local] = t4;
  }
  workgroupBarrier();
  for (let s: u32 = lanes >> 1; s >= sg; s >>= 1) {
    if (lane < s) {
      dots[id.local] += dots[id.local + s];
      dots[256 + id.local] += dots[256 + id.local + s];
      dots[512 + id.local] += dots[512 + id.local + s];
      dots[768 + id.local] += dots[768 + id.local + s];
      squares[id.local] += squares[id.local + s];
    }
    workgroupBarrier();
  }
}

/** The decode matvec for q8_0 weights (cols % 32 = 0, rows % 4 = 0): a workgroup of 256 takes
 *  4 * 256 / `lanes` rows, four rows to `lanes` invocations (fourRowsQ8); the norm prologue and the
 *  epilogues are matvecKernel's, the first four invocations of a row set store its four rows. */
/** @kernel @workgroupSize 256 */
export function matvecQ8Kernel(id: Invocation, w: In<u32x4>, x: In<f32x4>, nw: In<f32x4>, out: Out<f32>,
  rows: u32, cols: u32, outOffset: u32, eps: f32, norm: Spec<u32>, lanes: Spec<u32>) {
  const dots = sharedF32(1024);
  const squares = sharedF32(256);
  const lane: u32 = id.local % lanes;
  const r: u32 = 4 * (id.group * idiv(256, lanes) + idiv(id.local, lanes));
  clearSets(dots, squares, id);
  if (r < rows) {
    fourRowsQ8(w, r, rows, w, r + 1, rows, w, r + 2, rows, w, r + 3, rows, cols, x, nw, norm, lane, lanes, dots, squares, id);
  }
  sumLanes4(dots, squares, lane, lanes, id);
  const first: u32 = id.local - lane;
  if (lane < 4 && r + lane < rows) {
    const scale: f32 = norm === 1 ? 1 / Math.sqrt(squares[first] / f32(cols) + eps) : 1;
    out[outOffset + r + lane] = epilogue(dots[lane * 256 + first] * scale, outOffset + r + lane);
  }
}
