// The prefill matrix product on the tensor cores (WGSL subgroup matrices: Vulkan cooperative matrices),
// for devices that offer f16 16 × 16 × 16 matrices with f32 results. The same call as ops/matvec.ts's
// matmulKernel (same uniforms, the same split ranges, the norm, the epilogue hole), chosen by
// lowerMatvec where the target has matrices and the weights are not f32.
//
// Numerics, stated: the weights (f16, bf16, q8_0, q4_0, dequantized by weightAt) and the activations
// (times the norm weight) are rounded to f16 on their way into workgroup memory, as PyTorch's f16 path
// holds them; products are summed in f32 by the matrix unit, 16 columns at a time, in column order. So
// an output carries the f16 rounding of its inputs (relative 2^-11 each) and f32 summation; tests bound
// it by Σ|w·x| · (2^-10 + K · 2^-24) against the float64 reference. The norm's scale (1/rms) is applied
// to the f32 sum afterwards, from the f32 activations. Values beyond f16's range (±65504) overflow, as in
// PyTorch f16.
import {
  type Invocation, type In, type Out, type Spec, type u32, f32, type MatrixLeft, type MatrixRight, type MatrixResult,
  bitcastF32, epilogue, f16, halfOf, idiv, matrixLoadLeft, matrixLoadRight, matrixMultiplyAdd, matrixStore, matrixZero, sharedF16, sharedF32, workgroupBarrier,
} from '../compiler/kernel/dsl.js';
import { weightAt } from './dequant.js';

/** out[t][r] = Σ_c W[r][c]·x[t][c] in tiles of 64 weight rows by 64 positions (`big` = 1) or by 16 (a
 *  few positions), a workgroup of four subgroups a tile. Each step stages 32 columns of the tile's
 *  weights and positions in workgroup memory as f16 (rows padded to 40 halves), and each subgroup
 *  multiplies its 16 × 16 blocks: 2 × 2 of them (32 positions by 32 weight rows) in a big tile, one in a
 *  small one. Results go through workgroup memory to the epilogue, which scales by the norm. A
 *  position's row is the same bits in any tile or block: every output sums its columns in the same order,
 *  and the norm's squares are summed by the same code whatever the tile. */
/** @kernel @workgroupSize 128 */
export function matmulTensorKernel(id: Invocation, w: In<u32>, x: In<f32>, nw: In<f32>, out: Out<f32>,
  rows: u32, cols: u32, tokens: u32, outStride: u32, outOffset: u32, eps: f32, rowTiles: u32, tiles: u32, splitCols: u32,
  wtype: Spec<u32>, norm: Spec<u32>, big: Spec<u32>) {
  const xs = sharedF16(2560); // [64 positions][40 halves]: a step's 32 columns and 8 of padding
  const ws = sharedF16(2560); // [64 weight rows][40 halves]
  const os = sharedF32(1024); // each subgroup's 16 × 16 results; first, the norm's partial sums of squares
  const sc = sharedF32(64); // each position's norm scale
  // split k of `tiles` tiles sums columns k0 .. k1 (all of them when there is one split)
  const split: u32 = idiv(id.group, tiles);
  const tile: u32 = id.group % tiles;
  const k0: u32 = split * splitCols;
  const k1: u32 = Math.min(cols, k0 + splitCols);
  const tp: u32 = big === 1 ? 64 : 16; // positions in a tile
  const r0: u32 = (tile % rowTiles) * 64;
  const t0: u32 = idiv(tile, rowTiles) * tp;
  // staging W: row i / 2, columns (i % 2)·16 .. +16 of a step
  const wl: u32 = id.local >> 1;
  const wc: u32 = (id.local & 1) * 16;
  const wr: u32 = Math.min(r0 + wl, rows - 1);
  // f16 and bf16 rows are whole u32 words of two halves (ops/dequant.ts): a step's 16 halves are 8 words
  const wbase: u32 = wr * ((cols + 1) >> 1) + (wc >> 1);
  // staging x (positions past the end compute a copy of the last, never stored): in a big tile
  // invocation i takes position i / 2, columns (i % 2)·16 .. +16; in a small one position i / 8,
  // columns (i % 8)·4 .. +4. (Each shape is written out, so compiler/kernel/bounds.ts sees every
  // workgroup index in bounds and the printer needs no clamps on them.)
  const xpb: u32 = id.local >> 1;
  const xcb: u32 = (id.local & 1) * 16;
  const xps: u32 = id.local >> 3;
  const xcs: u32 = (id.local & 7) * 4;
  const xt: u32 = Math.min(t0 + (big === 1 ? xpb : xps), tokens - 1);
  // this subgroup's blocks: its first weight row and position in the tile
  const s: u32 = id.subgroupId;
  const rb: u32 = big === 1 ? (s & 1) * 32 : s * 16;
  const pb: u32 = big === 1 ? (s >> 1) * 32 : 0;
  // c<p><r>: positions pb + 16p, weight rows rb + 16r
  let c00: MatrixResult = matrixZero();
  let c01: MatrixResult = matrixZero();
  let c10: MatrixResult = matrixZero();
  let c11: MatrixResult = matrixZero();
  for (let c0: u32 = k0; c0 < k1; c0 += 32) {
    // a whole step (every step but a ragged last one): no column to mask
    const whole: boolean = c0 + 32 <= k1;
    if (whole && wtype === 1) {
      for (let j: u32 = 0; j < 8; j++) {
        const word: u32 = w[wbase + ((c0 >> 1) + j)];
        ws[wl * 40 + wc + 2 * j] = halfOf(word, 0);
        ws[wl * 40 + wc + 2 * j + 1] = halfOf(word, 1);
      }
    } else if (whole && wtype === 2) {
      for (let j: u32 = 0; j < 8; j++) {
        const word: u32 = w[wbase + ((c0 >> 1) + j)];
        ws[wl * 40 + wc + 2 * j] = f16(bitcastF32(word << 16));
        ws[wl * 40 + wc + 2 * j + 1] = f16(bitcastF32(word & 0xffff0000));
      }
    } else {
      for (let j: u32 = 0; j < 16; j++) {
        // columns past the end (the last step of a row that is not whole steps) read the last, as 0
        const c: u32 = Math.min(c0 + wc + j, k1 - 1);
        const live: f32 = c0 + wc + j < k1 ? 1 : 0;
        ws[wl * 40 + wc + j] = f16(weightAt(w, wtype, rows, cols, wr, c) * live);
      }
    }
    if (big === 1) {
      for (let j: u32 = 0; j < 16; j++) {
        const c: u32 = Math.min(c0 + xcb + j, k1 - 1);
        const live: f32 = whole || c0 + xcb + j < k1 ? 1 : 0;
        const xv: f32 = x[xt * cols + c] * live;
        xs[xpb * 40 + xcb + j] = f16(norm === 1 ? xv * nw[c] : xv);
      }
    } else {
      for (let j: u32 = 0; j < 4; j++) {
        const c: u32 = Math.min(c0 + xcs + j, k1 - 1);
        const live: f32 = whole || c0 + xcs + j < k1 ? 1 : 0;
        const xv: f32 = x[xt * cols + c] * live;
        xs[xps * 40 + xcs + j] = f16(norm === 1 ? xv * nw[c] : xv);
      }
    }
    workgroupBarrier();
    for (let kk: u32 = 0; kk < 32; kk += 16) {
      const a0: MatrixLeft = matrixLoadLeft(xs, pb * 40 + kk, 40);
      const b0: MatrixRight = matrixLoadRight(ws, rb * 40 + kk, 40);
      c00 = matrixMultiplyAdd(a0, b0, c00);
      if (big === 1) {
        // (the big tile's second block of positions and of weight rows, written as such)
        const a1: MatrixLeft = matrixLoadLeft(xs, ((s >> 1) * 32 + 16) * 40 + kk, 40);
        const b1: MatrixRight = matrixLoadRight(ws, ((s & 1) * 32 + 16) * 40 + kk, 40);
        c01 = matrixMultiplyAdd(a0, b1, c01);
        c10 = matrixMultiplyAdd(a1, b0, c10);
        c11 = matrixMultiplyAdd(a1, b1, c11);
      }
    }
    workgroupBarrier();
  }
  // the norm's scale per position: eight strided partial sums of the squares of its row, added in
  // order, each by the same code in any tile (sums made during the staging differed in their last bit
  // between the two tile shapes on the H100)
  const whole: boolean = norm === 1 && k1 - k0 === cols;
  if (whole) {
    for (let task: u32 = id.local; task < tp * 8; task += 128) {
      const xr: u32 = Math.min(t0 + (task >> 3), tokens - 1);
      let ss: f32 = 0;
      for (let c: u32 = task & 7; c < cols; c += 8) {
        const v: f32 = x[xr * cols + c];
        ss += v * v;
      }
      os[task] = ss;
    }
  }
  workgroupBarrier();
  if (id.local < tp) {
    let squares: f32 = 0;
    for (let k: u32 = 0; k < 8; k++) {
      squares += os[id.local * 8 + k];
    }
    // a split's partial sum is stored as it is: splitSumKernel adds the splits and scales
    sc[id.local] = whole ? 1 / Math.sqrt(squares / f32(cols) + eps) : 1;
  }
  workgroupBarrier();
  // each block through workgroup memory to the epilogue: lane e of the subgroup takes elements e, e + size, ..
  const lane: u32 = id.local - s * id.subgroupSize;
  const blocks: u32 = big === 1 ? 4 : 1;
  for (let q: u32 = 0; q < blocks; q++) {
    if (q === 0) {
      matrixStore(os, s * 256, c00, 16);
    } else if (q === 1) {
      matrixStore(os, s * 256, c01, 16);
    } else if (q === 2) {
      matrixStore(os, s * 256, c10, 16);
    } else {
      matrixStore(os, s * 256, c11, 16);
    }
    workgroupBarrier();
    const pq: u32 = pb + (q >> 1) * 16;
    const rq: u32 = rb + (q & 1) * 16;
    for (let e: u32 = lane; e < 256; e += id.subgroupSize) {
      const tl: u32 = pq + (e >> 4);
      const r: u32 = r0 + rq + (e & 15);
      if (r < rows && t0 + tl < tokens) {
        const o: u32 = (split * tokens + t0 + tl) * outStride + outOffset + r;
        out[o] = epilogue(os[s * 256 + e] * sc[tl], o);
      }
    }
    workgroupBarrier();
  }
}
