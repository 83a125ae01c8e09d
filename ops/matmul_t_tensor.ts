// The transposed product (ops/matvec_t.ts: a gradient through a matrix product, out[t][c] = Σ_r
// W[r][c]·dy[t][r]) on the tensor cores, for devices that offer f16 16 × 16 × 16 subgroup matrices with
// f32 results and weights that are not f32 (an f32 model keeps the exact f32 kernel). The weights are
// read as they are stored, row by row, and staged in workgroup memory as they lie: the matrix unit takes
// them row-major as its right operand (matrixLoadRightRows), so nothing is ever copied transposed.
//
// Numerics, stated: a gradient row is scaled by a power of two (gradScale; each split of the rows its
// own) so that its largest value there lies in [2^13, 2^14), then rounded to f16 (relative 2^-11) on
// its way into workgroup memory: gradients are small, and unscaled any value under 2^-14 would keep
// only a subnormal's few bits and under 2^-24 vanish. f16 weights are exact; bf16 ones too within
// f16's range (fewer mantissa bits, a wider exponent), q8_0 and q4_0's d·q round once. The matrix
// unit sums in f32, 16 rows at a time, in row order; the scale is undone exactly on the f32 sum. Per output: |out − ref| ≤ (2^-10 + R·2^-24)·Σ_r |W[r][c]·dy[t][r]|,
// the same bound as the forward's tensor-core product (benchmarks/tensor_check.ts checks it on the GPU).
import {
  type Invocation, type In, type Out, type Spec, type u32, type f32, type MatrixLeft, type MatrixRight, type MatrixResult,
  bitcastF32, bitcastU32, f16, halfOf, idiv, localF32, localU32, matrixLoadLeft, matrixLoadRightRows, matrixMultiplyAdd, matrixStore, matrixZero, sharedF16, sharedF32, subgroupMax, workgroupBarrier,
} from '../compiler/kernel/dsl.js';
import { weightAt } from './dequant.js';
import { gradAt } from './matvec_t.js';

/** The power of two that puts `top` (a largest |value|) in [2^13, 2^14): 2^(13 − e) for top in
 *  [2^e, 2^(e+1)), made from the exponent's bits, so exactly a power of two (clamped to f32's normal
 *  range: 0 gets 2^126, infinity 2^-114). */
/** @inline */
export function gradScale(top: f32): f32 {
  return bitcastF32((267 - Math.min(Math.max((bitcastU32(top) >> 23) & 255, 14), 254)) << 23);
}

/** out[s][t][c] = Σ_r W[r][c]·dy[t][rowStart + r] over split s's rows, plus out's value where `add`, in
 *  tiles of 128 columns by positions (`shape` 0: 16 positions, each of the four subgroups 16 × 32
 *  outputs; 1: 64 positions, each subgroup 32 × 64). Each step stages 32 weight rows of the tile's
 *  columns (f16, as stored) and the tile's positions' dy of those rows (scaled, as f16) in workgroup
 *  memory, from registers loaded while the step before multiplied. Results go through workgroup
 *  memory, unscaled, to the store. */
/** @kernel @workgroupSize 128 */
export function matmulTTensorKernel(id: Invocation, w: In<u32>, dy: In<f32>, out: Out<f32>, rows: u32, cols: u32, allRows: u32,
  rowStart: u32, tokens: u32, colTiles: u32, tiles: u32, splitRows: u32, add: u32, wtype: Spec<u32>, shape: Spec<u32>) {
  const ws = sharedF16(4400); // [32 weight rows][136 halves: 128 columns and padding], and 48 more: the bounds
  // analysis sees a subgroup's columns (cb) up to 96 in the blocks only shape 1 loads
  const ds = sharedF16(2560); // [64 positions][40 halves: 32 rows and padding] (16 positions in shape 0)
  const os = sharedF32(1024); // each subgroup's 16 × 16 results
  const scs = sharedF32(64); // each position's scale
  const split: u32 = idiv(id.group, tiles);
  const tile: u32 = id.group % tiles;
  const tp: u32 = shape === 1 ? 64 : 16; // positions in a tile
  const c0: u32 = (tile % colTiles) * 128;
  const p0: u32 = idiv(tile, colTiles) * tp;
  const r0: u32 = split * splitRows;
  const r1: u32 = Math.min(rows, r0 + splitRows);
  const half: u32 = (cols + 1) >> 1; // u32 words in an f16/bf16 row (ops/dequant.ts)
  const words: boolean = wtype === 1 || wtype === 2;
  // a step's weights: word e = local + 128j of the 32 rows × 64 words (row e / 64: 64 neighbours read a
  // row's 256 bytes); its dy: element e = local + 128j of tp positions × 32 rows (position e / 32)
  const wq = localU32(16);
  const dq = localF32(16);
  const dn: u32 = shape === 1 ? 16 : 4; // dy values an invocation stages a step
  // each position's scale over this split's rows, first: element e's position e / 32 = subgroup + 4j and
  // row e % 32 = lane, so the largest |dy| of subgroup s's j-th values over the steps is position
  // s + 4j's (a split's partial sums are unscaled before they are added: each split may scale apart)
  const dsc = localF32(16); // the scales of this invocation's positions (the same every step)
  for (let k0: u32 = r0; k0 < r1; k0 += 32) {
    for (let j: u32 = 0; j < 16; j++) {
      if (j < dn) {
        const e: u32 = id.local + 128 * j;
        const p: u32 = p0 + (e >> 5);
        const r: u32 = k0 + (e & 31);
        dsc[j] = Math.max(dsc[j], p < tokens && r < r1 ? Math.abs(gradAt(dy, allRows, rowStart, tokens, rows, p, r)) : 0);
      }
    }
  }
  for (let j: u32 = 0; j < 16; j++) {
    if (j < dn) {
      dsc[j] = gradScale(subgroupMax(dsc[j]));
      if ((id.local & 31) === 0) {
        scs[(id.local >> 5) + 4 * j] = dsc[j];
      }
    }
  }
  loadStepTT(w, dy, rows, half, allRows, rowStart, tokens, wtype, dn, r0, c0, p0, wq, dq, id);
  // this subgroup's blocks: its first position and column in the tile
  const s: u32 = id.subgroupId;
  const pb: u32 = shape === 1 ? (s >> 1) * 32 : 0;
  const cb: u32 = shape === 1 ? (s & 1) * 64 : s * 32;
  // c<p><q>: positions pb + 16p, columns cb + 16q
  let c00: MatrixResult = matrixZero();
  let c01: MatrixResult = matrixZero();
  let c02: MatrixResult = matrixZero();
  let c03: MatrixResult = matrixZero();
  let c10: MatrixResult = matrixZero();
  let c11: MatrixResult = matrixZero();
  let c12: MatrixResult = matrixZero();
  let c13: MatrixResult = matrixZero();
  for (let k0: u32 = r0; k0 < r1; k0 += 32) {
    for (let j: u32 = 0; j < 16; j++) {
      const e: u32 = id.local + 128 * j;
      const r: u32 = k0 + (e >> 6);
      const c: u32 = c0 + 2 * (e & 63);
      const at: u32 = (e >> 6) * 136 + 2 * (e & 63);
      // rows past the split and columns past the end stage 0
      if (words && r < r1 && c + 1 < cols) {
        if (wtype === 1) {
          ws[at] = halfOf(wq[j], 0);
          ws[at + 1] = halfOf(wq[j], 1);
        } else {
          ws[at] = f16(bitcastF32(wq[j] << 16));
          ws[at + 1] = f16(bitcastF32(wq[j] & 0xffff0000));
        }
      } else {
        // (quantized weights are read here, not ahead; addresses clamped, values masked)
        const rr: u32 = Math.min(r, rows - 1);
        ws[at] = f16(r < r1 && c < cols ? weightAt(w, wtype, rows, cols, rr, Math.min(c, cols - 1)) : 0);
        ws[at + 1] = f16(r < r1 && c + 1 < cols ? weightAt(w, wtype, rows, cols, rr, Math.min(c + 1, cols - 1)) : 0);
      }
    }
    for (let j: u32 = 0; j < 16; j++) {
      if (j < dn) {
        const e: u32 = id.local + 128 * j;
        const p: u32 = p0 + (e >> 5);
        const live: boolean = p < tokens && k0 + (e & 31) < r1;
        ds[(e >> 5) * 40 + (e & 31)] = f16(live ? dq[j] * dsc[j] : 0);
      }
    }
    workgroupBarrier();
    // the next step's loads, in flight while this step multiplies (past the last step they read the
    // last rows again, unused)
    loadStepTT(w, dy, rows, half, allRows, rowStart, tokens, wtype, dn, k0 + 32, c0, p0, wq, dq, id);
    for (let kk: u32 = 0; kk < 32; kk += 16) {
      const a0: MatrixLeft = matrixLoadLeft(ds, pb * 40 + kk, 40);
      const b0: MatrixRight = matrixLoadRightRows(ws, kk * 136 + cb, 136);
      const b1: MatrixRight = matrixLoadRightRows(ws, kk * 136 + cb + 16, 136);
      c00 = matrixMultiplyAdd(a0, b0, c00);
      c01 = matrixMultiplyAdd(a0, b1, c01);
      if (shape === 1) {
        const a1: MatrixLeft = matrixLoadLeft(ds, (pb + 16) * 40 + kk, 40);
        const b2: MatrixRight = matrixLoadRightRows(ws, kk * 136 + cb + 32, 136);
        const b3: MatrixRight = matrixLoadRightRows(ws, kk * 136 + cb + 48, 136);
        c02 = matrixMultiplyAdd(a0, b2, c02);
        c03 = matrixMultiplyAdd(a0, b3, c03);
        c10 = matrixMultiplyAdd(a1, b0, c10);
        c11 = matrixMultiplyAdd(a1, b1, c11);
        c12 = matrixMultiplyAdd(a1, b2, c12);
        c13 = matrixMultiplyAdd(a1, b3, c13);
      }
    }
    workgroupBarrier();
  }
  // each block (q = 4p + column block) through workgroup memory to the store: lane e of the subgroup
  // takes elements e, e + size, ..
  const lane: u32 = id.local - s * id.subgroupSize;
  for (let q: u32 = 0; q < 8; q++) {
    if (shape === 1 || q === 0 || q === 1) {
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
      } else {
        matrixStore(os, s * 256, c13, 16);
      }
      workgroupBarrier();
      for (let e: u32 = lane; e < 256; e += id.subgroupSize) {
        const tl: u32 = pb + (q >> 2) * 16 + (e >> 4);
        const p: u32 = p0 + tl;
        const c: u32 = c0 + cb + (q & 3) * 16 + (e & 15);
        if (p < tokens && c < cols) {
          const o: u32 = (split * tokens + p) * cols + c;
          const v: f32 = os[s * 256 + e] / scs[tl];
          out[o] = add === 1 ? out[o] + v : v;
        }
      }
      workgroupBarrier();
    }
  }
}

/** One step of matmulTTensorKernel's loads into registers, from weight row k0 (clamped: masked when
 *  staged): word e = local + 128j of the step's 32 rows × 64 words (f16/bf16 pairs) into wq, and of the
 *  first dn × 128 gradients (position e / 32, row e % 32) into dq. */
/** @inline */
export function loadStepTT(w: In<u32>, dy: In<f32>, rows: u32, half: u32, allRows: u32, rowStart: u32, tokens: u32, wtype: u32, dn: u32,
  k0: u32, c0: u32, p0: u32, wq: Out<u32>, dq: Out<f32>, id: Invocation): void {
  for (let j: u32 = 0; j < 16; j++) {
    const e: u32 = id.local + 128 * j;
    if (wtype === 1 || wtype === 2) {
      wq[j] = w[Math.min(k0 + (e >> 6), rows - 1) * half + Math.min((c0 >> 1) + (e & 63), half - 1)];
    }
    if (j < dn) {
      dq[j] = gradAt(dy, allRows, rowStart, tokens, rows, p0 + (e >> 5), k0 + (e & 31));
    }
  }
}
