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
  bitcastF32, epilogue, f16, halfOf, idiv, localF32, localU32, matrixLoadLeft, matrixLoadRight, matrixMultiplyAdd, matrixStore, matrixZero, sharedF16, sharedF32, workgroupBarrier,
} from '../compiler/kernel/dsl.js';
import { weightAt } from './dequant.js';

/** out[t][r] = Σ_c W[r][c]·x[t][c] in tiles of weight rows by positions, a workgroup of four subgroups a
 *  tile (`shape`): 0, 64 rows by 16 positions (a few positions), each subgroup one 16 × 16 block; 1, 64
 *  by 64, each subgroup 2 × 2 blocks; 2, 128 by 128 (wide matrices over many positions), each subgroup
 *  4 × 4 blocks. Each step stages a tile's columns of weights and positions in workgroup memory as f16
 *  (32 columns a step, rows padded to 40 halves; 64 and 72 in the small tile, whose few workgroups must
 *  each keep more loads in flight) while the next step's f16/bf16 words and x values are already being
 *  loaded into registers, so one step's loads overlap the multiply-adds of the one before. Results go
 *  through workgroup memory to the epilogue, which scales by the norm. A position's row is the same bits
 *  in any tile or block: every output sums its columns in the same order (16 at a time, in column order,
 *  within the same split), and the norm's squares are summed by the same code whatever the tile. */
/** @kernel @workgroupSize 128 */
export function matmulTensorKernel(id: Invocation, w: In<u32>, x: In<f32>, nw: In<f32>, out: Out<f32>,
  rows: u32, cols: u32, tokens: u32, outStride: u32, outOffset: u32, eps: f32, rowTiles: u32, tiles: u32, splitCols: u32,
  wtype: Spec<u32>, norm: Spec<u32>, shape: Spec<u32>) {
  const xs = sharedF16(5120); // [128 positions][40 halves] (the small tile: [16][72])
  const ws = sharedF16(5120); // [128 weight rows][40 halves] (the small tile: [64][72])
  const os = sharedF32(1024); // each subgroup's 16 × 16 results; first, the norm's partial sums of squares
  const sc = sharedF32(128); // each position's norm scale
  // split k of `tiles` tiles sums columns k0 .. k1 (all of them when there is one split)
  const split: u32 = idiv(id.group, tiles);
  const tile: u32 = id.group % tiles;
  const k0: u32 = split * splitCols;
  const k1: u32 = Math.min(cols, k0 + splitCols);
  const tr: u32 = shape === 2 ? 128 : 64; // weight rows in a tile
  const tp: u32 = shape === 2 ? 128 : shape === 1 ? 64 : 16; // positions in a tile
  const ks: u32 = shape === 0 ? 64 : 32; // columns a step
  const r0: u32 = (tile % rowTiles) * tr;
  const t0: u32 = idiv(tile, rowTiles) * tp;
  // staging: invocation i takes the tile's rows (and positions) i / 8 + 16m, and of a step's columns
  // the eighth from (i % 8)·4 (sc4; sc8 in the small tile), two or four u32 words of an f16/bf16 row:
  // eight neighbours read a row's step whole
  const sr: u32 = id.local >> 3;
  const sc4: u32 = (id.local & 7) * 4;
  const sc8: u32 = (id.local & 7) * 8; // (the small tile's 64-column steps)
  const rm: u32 = tr >> 4; // rounds of 16 weight rows
  const pm: u32 = tp >> 4; // rounds of 16 positions
  const half: u32 = (cols + 1) >> 1; // u32 words in an f16/bf16 row (ops/dequant.ts)
  const words: boolean = wtype === 1 || wtype === 2;
  const wq = localU32(16); // the next step's words of this invocation's rows: [round][2] ([round][4] small)
  const xq = localF32(32); // the next step's x of its positions: [round][4] ([8] small)
  // registers filled for the first step (past the split: a step never staged from them)
  if (shape === 0) {
    for (let m: u32 = 0; m < 4; m++) {
      if (words) {
        const wr: u32 = Math.min(r0 + sr + 16 * m, rows - 1);
        for (let j: u32 = 0; j < 4; j++) {
          wq[4 * m + j] = w[wr * half + ((k0 + sc8) >> 1) + j];
        }
      }
    }
    const xt: u32 = Math.min(t0 + sr, tokens - 1);
    for (let j: u32 = 0; j < 8; j++) {
      xq[j] = x[xt * cols + Math.min(k0 + sc8 + j, k1 - 1)];
    }
  } else {
    for (let m: u32 = 0; m < 8; m++) {
      if (m < rm && words) {
        const wr: u32 = Math.min(r0 + sr + 16 * m, rows - 1);
        for (let j: u32 = 0; j < 2; j++) {
          wq[2 * m + j] = w[wr * half + ((k0 + sc4) >> 1) + j];
        }
      }
      if (m < pm) {
        const xt: u32 = Math.min(t0 + sr + 16 * m, tokens - 1);
        for (let j: u32 = 0; j < 4; j++) {
          xq[4 * m + j] = x[xt * cols + Math.min(k0 + sc4 + j, k1 - 1)];
        }
      }
    }
  }
  // this subgroup's blocks: its first position and weight row in the tile
  const s: u32 = id.subgroupId;
  const pb: u32 = shape === 2 ? (s >> 1) * 64 : shape === 1 ? (s >> 1) * 32 : 0;
  const rb: u32 = shape === 2 ? (s & 1) * 64 : shape === 1 ? (s & 1) * 32 : s * 16;
  // c<p><r>: positions pb + 16p, weight rows rb + 16r
  let c00: MatrixResult = matrixZero();
  let c01: MatrixResult = matrixZero();
  let c02: MatrixResult = matrixZero();
  let c03: MatrixResult = matrixZero();
  let c10: MatrixResult = matrixZero();
  let c11: MatrixResult = matrixZero();
  let c12: MatrixResult = matrixZero();
  let c13: MatrixResult = matrixZero();
  let c20: MatrixResult = matrixZero();
  let c21: MatrixResult = matrixZero();
  let c22: MatrixResult = matrixZero();
  let c23: MatrixResult = matrixZero();
  let c30: MatrixResult = matrixZero();
  let c31: MatrixResult = matrixZero();
  let c32: MatrixResult = matrixZero();
  let c33: MatrixResult = matrixZero();
  for (let c0: u32 = k0; c0 < k1; c0 += ks) {
    // a whole step (every step but a ragged last one): no column to mask
    const whole: boolean = c0 + ks <= k1;
    if (shape === 0) {
      for (let m: u32 = 0; m < 4; m++) {
        const at: u32 = (sr + 16 * m) * 72 + sc8;
        if (whole && wtype === 1) {
          for (let j: u32 = 0; j < 4; j++) {
            ws[at + 2 * j] = halfOf(wq[4 * m + j], 0);
            ws[at + 2 * j + 1] = halfOf(wq[4 * m + j], 1);
          }
        } else if (whole && wtype === 2) {
          for (let j: u32 = 0; j < 4; j++) {
            ws[at + 2 * j] = f16(bitcastF32(wq[4 * m + j] << 16));
            ws[at + 2 * j + 1] = f16(bitcastF32(wq[4 * m + j] & 0xffff0000));
          }
        } else {
          const wr: u32 = Math.min(r0 + sr + 16 * m, rows - 1);
          for (let j: u32 = 0; j < 8; j++) {
            // columns past the end (the last step of a row that is not whole steps) read the last, as 0
            const c: u32 = Math.min(c0 + sc8 + j, k1 - 1);
            const live: f32 = c0 + sc8 + j < k1 ? 1 : 0;
            ws[at + j] = f16(weightAt(w, wtype, rows, cols, wr, c) * live);
          }
        }
      }
      for (let j: u32 = 0; j < 8; j++) {
        const c: u32 = Math.min(c0 + sc8 + j, k1 - 1);
        const xv: f32 = c0 + sc8 + j < k1 ? xq[j] : 0;
        xs[sr * 72 + sc8 + j] = f16(norm === 1 ? xv * nw[c] : xv);
      }
    } else {
      for (let m: u32 = 0; m < 8; m++) {
        if (m < rm) {
          const at: u32 = (sr + 16 * m) * 40 + sc4;
          if (whole && wtype === 1) {
            for (let j: u32 = 0; j < 2; j++) {
              ws[at + 2 * j] = halfOf(wq[2 * m + j], 0);
              ws[at + 2 * j + 1] = halfOf(wq[2 * m + j], 1);
            }
          } else if (whole && wtype === 2) {
            for (let j: u32 = 0; j < 2; j++) {
              ws[at + 2 * j] = f16(bitcastF32(wq[2 * m + j] << 16));
              ws[at + 2 * j + 1] = f16(bitcastF32(wq[2 * m + j] & 0xffff0000));
            }
          } else {
            const wr: u32 = Math.min(r0 + sr + 16 * m, rows - 1);
            for (let j: u32 = 0; j < 4; j++) {
              const c: u32 = Math.min(c0 + sc4 + j, k1 - 1);
              const live: f32 = c0 + sc4 + j < k1 ? 1 : 0;
              ws[at + j] = f16(weightAt(w, wtype, rows, cols, wr, c) * live);
            }
          }
        }
        if (m < pm) {
          for (let j: u32 = 0; j < 4; j++) {
            const c: u32 = Math.min(c0 + sc4 + j, k1 - 1);
            const xv: f32 = c0 + sc4 + j < k1 ? xq[4 * m + j] : 0;
            xs[(sr + 16 * m) * 40 + sc4 + j] = f16(norm === 1 ? xv * nw[c] : xv);
          }
        }
      }
    }
    workgroupBarrier();
    // the next step's loads, in flight while this step multiplies (after the last step they read the
    // last columns again, unused)
    const n0: u32 = Math.min(c0 + ks, k1 - 1);
    if (shape === 0) {
      for (let m: u32 = 0; m < 4; m++) {
        if (words) {
          const wr: u32 = Math.min(r0 + sr + 16 * m, rows - 1);
          for (let j: u32 = 0; j < 4; j++) {
            wq[4 * m + j] = w[wr * half + ((n0 + sc8) >> 1) + j];
          }
        }
      }
      const xt: u32 = Math.min(t0 + sr, tokens - 1);
      for (let j: u32 = 0; j < 8; j++) {
        xq[j] = x[xt * cols + Math.min(n0 + sc8 + j, k1 - 1)];
      }
    } else {
      for (let m: u32 = 0; m < 8; m++) {
        if (m < rm && words) {
          const wr: u32 = Math.min(r0 + sr + 16 * m, rows - 1);
          for (let j: u32 = 0; j < 2; j++) {
            wq[2 * m + j] = w[wr * half + ((n0 + sc4) >> 1) + j];
          }
        }
        if (m < pm) {
          const xt: u32 = Math.min(t0 + sr + 16 * m, tokens - 1);
          for (let j: u32 = 0; j < 4; j++) {
            xq[4 * m + j] = x[xt * cols + Math.min(n0 + sc4 + j, k1 - 1)];
          }
        }
      }
    }
    if (shape === 2) {
      for (let kk: u32 = 0; kk < 32; kk += 16) {
        const a0: MatrixLeft = matrixLoadLeft(xs, ((s >> 1) * 64) * 40 + kk, 40);
        const a1: MatrixLeft = matrixLoadLeft(xs, ((s >> 1) * 64 + 16) * 40 + kk, 40);
        const a2: MatrixLeft = matrixLoadLeft(xs, ((s >> 1) * 64 + 32) * 40 + kk, 40);
        const a3: MatrixLeft = matrixLoadLeft(xs, ((s >> 1) * 64 + 48) * 40 + kk, 40);
        const b0: MatrixRight = matrixLoadRight(ws, ((s & 1) * 64) * 40 + kk, 40);
        const b1: MatrixRight = matrixLoadRight(ws, ((s & 1) * 64 + 16) * 40 + kk, 40);
        const b2: MatrixRight = matrixLoadRight(ws, ((s & 1) * 64 + 32) * 40 + kk, 40);
        const b3: MatrixRight = matrixLoadRight(ws, ((s & 1) * 64 + 48) * 40 + kk, 40);
        c00 = matrixMultiplyAdd(a0, b0, c00);
        c01 = matrixMultiplyAdd(a0, b1, c01);
        c02 = matrixMultiplyAdd(a0, b2, c02);
        c03 = matrixMultiplyAdd(a0, b3, c03);
        c10 = matrixMultiplyAdd(a1, b0, c10);
        c11 = matrixMultiplyAdd(a1, b1, c11);
        c12 = matrixMultiplyAdd(a1, b2, c12);
        c13 = matrixMultiplyAdd(a1, b3, c13);
        c20 = matrixMultiplyAdd(a2, b0, c20);
        c21 = matrixMultiplyAdd(a2, b1, c21);
        c22 = matrixMultiplyAdd(a2, b2, c22);
        c23 = matrixMultiplyAdd(a2, b3, c23);
        c30 = matrixMultiplyAdd(a3, b0, c30);
        c31 = matrixMultiplyAdd(a3, b1, c31);
        c32 = matrixMultiplyAdd(a3, b2, c32);
        c33 = matrixMultiplyAdd(a3, b3, c33);
      }
    } else if (shape === 1) {
      for (let kk: u32 = 0; kk < 32; kk += 16) {
        const a0: MatrixLeft = matrixLoadLeft(xs, ((s >> 1) * 32) * 40 + kk, 40);
        const a1: MatrixLeft = matrixLoadLeft(xs, ((s >> 1) * 32 + 16) * 40 + kk, 40);
        const b0: MatrixRight = matrixLoadRight(ws, ((s & 1) * 32) * 40 + kk, 40);
        const b1: MatrixRight = matrixLoadRight(ws, ((s & 1) * 32 + 16) * 40 + kk, 40);
        c00 = matrixMultiplyAdd(a0, b0, c00);
        c01 = matrixMultiplyAdd(a0, b1, c01);
        c10 = matrixMultiplyAdd(a1, b0, c10);
        c11 = matrixMultiplyAdd(a1, b1, c11);
      }
    } else {
      for (let kk: u32 = 0; kk < 64; kk += 16) {
        const a0: MatrixLeft = matrixLoadLeft(xs, kk, 72);
        const b0: MatrixRight = matrixLoadRight(ws, s * 16 * 72 + kk, 72);
        c00 = matrixMultiplyAdd(a0, b0, c00);
      }
    }
    workgroupBarrier();
  }
  // the norm's scale per position: eight strided partial sums of the squares of its row, added in
  // order, each by the same code in any tile (sums made during the staging differed in their last bit
  // between two tile shapes on the H100)
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
  // each block (q = 4p + r) through workgroup memory to the epilogue: lane e of the subgroup takes
  // elements e, e + size, ..
  const lane: u32 = id.local - s * id.subgroupSize;
  const side: u32 = shape === 2 ? 4 : shape === 1 ? 2 : 1; // blocks a subgroup has along each side
  for (let q: u32 = 0; q < 16; q++) {
    if ((q >> 2) < side && (q & 3) < side) {
      if (q === 0) {
        matrixStore(os, s * 256, c00, 16);
      } else if (q === 1) {
        matrixStore(os, s * 256, c01, 16);
      } else if (q === 2) {
        matrixStore(os, s * 256, c02, 16);
      } else if (q === 3) {
        matrixStore(os, s * 256, c03, 16);
      } else if (q === 4) {
        matrixStore(os, s * 256, c10, 16);
      } else if (q === 5) {
        matrixStore(os, s * 256, c11, 16);
      } else if (q === 6) {
        matrixStore(os, s * 256, c12, 16);
      } else if (q === 7) {
        matrixStore(os, s * 256, c13, 16);
      } else if (q === 8) {
        matrixStore(os, s * 256, c20, 16);
      } else if (q === 9) {
        matrixStore(os, s * 256, c21, 16);
      } else if (q === 10) {
        matrixStore(os, s * 256, c22, 16);
      } else if (q === 11) {
        matrixStore(os, s * 256, c23, 16);
      } else if (q === 12) {
        matrixStore(os, s * 256, c30, 16);
      } else if (q === 13) {
        matrixStore(os, s * 256, c31, 16);
      } else if (q === 14) {
        matrixStore(os, s * 256, c32, 16);
      } else {
        matrixStore(os, s * 256, c33, 16);
      }
      workgroupBarrier();
      const pq: u32 = pb + (q >> 2) * 16;
      const rq: u32 = rb + (q & 3) * 16;
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
}
