// The transposed product: dy [.., rows] through W [rows, cols] to [.., cols] (out = Wᵀ·dy per row), the
// gradient of a matrix product with respect to its input. The weights are read as they are stored
// (any dtype; the float64 reference sees them dequantized), never copied transposed. A tiled kernel
// (matmulTKernel): a workgroup takes 32 positions by 128 columns and walks the weight's rows 32 at a
// time through workgroup memory, each invocation 4 × 4 outputs in registers; tall matrices (the
// unembedding: 128256 rows) are split along their rows into partial sums, added in split order
// (matvecTSumKernel), so every SM has work even for one position. Where the device has f16 subgroup
// matrices and the weights are not f32, the same tiling on the tensor cores (ops/matmul_t_tensor.ts,
// whose header states its numerics). Fused (ops/rules.ts, add_into_grad): `acc`, a third source added to
// the result by the kernel that adds the splits — a backward's sum of two gradients without an add.
import { type Invocation, type In, type Out, type Spec, type f32, type u32, idiv, localF32, sharedF32, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { WTYPE, weightAt } from './dequant.js';
import { type Op, expectShape, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const matvecT: Op<{ acc?: boolean }> = {
  name: 'matvec_t',
  infer([w, dy, acc], a) {
    if (w!.shape.length !== 2) throw new ShapeError('matvec_t needs a matrix [rows, cols]');
    const [rows, cols] = w!.shape as [number, number];
    if (dy!.shape.length < 1) throw new ShapeError('matvec_t needs a gradient [.., rows]');
    expectShape({ ...dy!, shape: dy!.shape.slice(-1) }, [rows], 'gradient rows');
    const shape = [...dy!.shape.slice(0, -1), cols];
    if (a.acc) expectShape(acc!, shape, 'the gradient added');
    return { shape, dtype: 'f32' };
  },
  reference([w, dy, acc], _, s) {
    const [rows, cols] = s.srcs[0] as [number, number], T = dy!.length / rows;
    const out = acc ? Float64Array.from(acc) : new Float64Array(T * cols);
    for (let t = 0; t < T; t++)
      for (let r = 0; r < rows; r++) {
        const g = dy![t * rows + r]!;
        if (g !== 0) for (let c = 0; c < cols; c++) out[t * cols + c]! += w![r * cols + c]! * g;
      }
    return out;
  },
  lower(n, ctx) {
    const [w, dy, acc] = n.srcs, [rows, cols] = w!.shape as [number, number], T = n.size / cols;
    // the tensor cores where the device has them and the weights are not f32 (ops/matmul_t_tensor.ts)
    const tensor = ctx.matrices === true && w!.dtype !== 'f32';
    const tp = tensor ? (T <= 16 ? 16 : 64) : TILE_POSITIONS;
    const tiles = Math.ceil(T / tp) * Math.ceil(cols / TILE_COLS);
    const kernel = tensor ? 'matmulTTensorKernel' : 'matmulTKernel';
    const specs: Record<string, number> = tensor ? { shape: T <= 16 ? 0 : 1 } : {};
    ctx.chunks(w!).forEach((c, k) => {
      // splits along the rows where the tiles alone leave SMs idle (each split at least minRows rows)
      const { groups, minRows } = ctx.transposedSplit ?? TRANSPOSED_SPLIT;
      const splits = Math.max(1, Math.min(Math.floor(groups / tiles), Math.floor(c.rows / minRows), Math.floor(ctx.maxBindingBytes / (4 * n.size))));
      const splitRows = Math.ceil(c.rows / splits / TILE_K) * TILE_K, used = Math.ceil(c.rows / splitRows);
      const u = { rows: c.rows, cols, allRows: rows, rowStart: c.rowStart, tokens: T, colTiles: Math.ceil(cols / TILE_COLS), tiles, splitRows, wtype: WTYPE[w!.dtype]!, ...specs };
      // (the first piece's sum starts from `acc` where there is one: through the split path even unsplit)
      const withAcc = acc !== undefined && k === 0;
      if (used === 1 && !withAcc) { ctx.dispatch(kernel, { w: c.buf, dy: ctx.buf(dy!), out: ctx.buf(n) }, { ...u, add: k > 0 ? 1 : 0 }, tiles); return; }
      const part = ctx.planScratch('split_t', used * n.size);
      ctx.dispatch(kernel, { w: c.buf, dy: ctx.buf(dy!), out: part }, { ...u, add: 0 }, tiles * used);
      ctx.dispatch('matvecTSumKernel', { part, acc: withAcc ? ctx.buf(acc!) : part, out: ctx.buf(n) }, { n: n.size, splits: used, add: k > 0 ? 1 : 0, hasAcc: withAcc ? 1 : 0 }, groupsFor(n.size, 256));
    });
  },
};

const TILE_POSITIONS = 32;
const TILE_COLS = 128;
const TILE_K = 32;
/** how far a transposed product splits along the weight's rows: into up to `groups` workgroups in all
 *  (tiles × splits), each split at least `minRows` rows (Target.transposedSplit overrides it). Two
 *  workgroups an SM of an H100: run 2026-12-07-h100-b's gradient plans (the tensor-core kernel) took
 *  61.9 ms at 128 positions and 18.6 at 16 with these, 68.1 and 19.8 with eight an SM (1056, 128),
 *  77.8 and 21.6 with sixteen (2112, 64): more splits cost more partial sums than they hide latency. */
export const TRANSPOSED_SPLIT = { groups: 264, minRows: 512 };

/** out[s][t][c] = Σ_r W[r][c]·dy[t][rowStart + r] over split s's rows (the whole piece with one split),
 *  plus out's value where `add`. A workgroup: 32 positions × 128 columns (tile t % colTiles of the
 *  columns, t / colTiles of the positions); invocation i takes columns 4·(i % 32).. and positions
 *  4·(i / 32)..; each step stages 32 weight rows × 128 columns and dy's 32 × 32 in workgroup memory,
 *  from registers loaded while the step before multiplied. */
/** @kernel @workgroupSize 256 */
export function matmulTKernel(id: Invocation, w: In<u32>, dy: In<f32>, out: Out<f32>, rows: u32, cols: u32, allRows: u32, rowStart: u32,
  tokens: u32, colTiles: u32, tiles: u32, splitRows: u32, add: u32, wtype: Spec<u32>) {
  const ws = sharedF32(4096); // [32 rows][128 columns]
  const ds = sharedF32(1024); // [32 rows][32 positions]
  const acc = localF32(16); // [position 0..3][column 0..3]
  const wr = localF32(4); // one weight row's four columns
  const split: u32 = idiv(id.group, tiles);
  const tile: u32 = id.group % tiles;
  const c0: u32 = (tile % colTiles) * 128;
  const p0: u32 = idiv(tile, colTiles) * 32;
  const r0: u32 = split * splitRows;
  const r1: u32 = Math.min(rows, r0 + splitRows);
  const cg: u32 = (id.local & 31) * 4;
  const pg: u32 = (id.local >> 5) * 4;
  // a step's values in registers first (masked), so the next step's loads are in flight while this
  // step multiplies: weights element e = local + 256j is row e / 128, column e % 128 (neighbours read
  // neighbouring columns); dy element e is position e / 32, row e % 32 (neighbours read neighbouring rows)
  const wq = localF32(16);
  const dq = localF32(4);
  loadStepT(w, wtype, rows, cols, dy, allRows, rowStart, tokens, r0, r1, c0, p0, wq, dq, id);
  for (let k0: u32 = r0; k0 < r1; k0 += 32) {
    for (let j: u32 = 0; j < 16; j++) {
      ws[id.local + 256 * j] = wq[j];
    }
    for (let j: u32 = 0; j < 4; j++) {
      const e: u32 = id.local + 256 * j;
      ds[(e & 31) * 32 + (e >> 5)] = dq[j]; // stored by row
    }
    workgroupBarrier();
    // (past the last step they read nothing live: every value masked)
    loadStepT(w, wtype, rows, cols, dy, allRows, rowStart, tokens, k0 + 32, r1, c0, p0, wq, dq, id);
    for (let k: u32 = 0; k < 32; k++) {
      // this row's four weights in registers first: 8 workgroup loads per 16 multiply-adds
      for (let b: u32 = 0; b < 4; b++) {
        wr[b] = ws[k * 128 + cg + b];
      }
      for (let a: u32 = 0; a < 4; a++) {
        const d: f32 = ds[k * 32 + pg + a];
        for (let b: u32 = 0; b < 4; b++) {
          acc[4 * a + b] += d * wr[b];
        }
      }
    }
    workgroupBarrier();
  }
  for (let a: u32 = 0; a < 4; a++) {
    for (let b: u32 = 0; b < 4; b++) {
      const p: u32 = p0 + pg + a;
      const c: u32 = c0 + cg + b;
      if (p < tokens && c < cols) {
        const o: u32 = (split * tokens + p) * cols + c;
        out[o] = add === 1 ? out[o] + acc[4 * a + b] : acc[4 * a + b];
      }
    }
  }
}

/** One step of matmulTKernel's loads: rows k0 .. k0 + 31 (those below r1) of the weights' 128 columns
 *  from c0 into wq (16 an invocation) and of dy's 32 positions from p0 into dq (4), 0 where masked. */
/** @inline */
export function loadStepT(w: In<u32>, wtype: u32, rows: u32, cols: u32, dy: In<f32>, allRows: u32, rowStart: u32, tokens: u32,
  k0: u32, r1: u32, c0: u32, p0: u32, wq: Out<f32>, dq: Out<f32>, id: Invocation): void {
  for (let j: u32 = 0; j < 16; j++) {
    const e: u32 = id.local + 256 * j;
    const r: u32 = k0 + (e >> 7);
    const c: u32 = c0 + (e & 127);
    const live: f32 = r < r1 && c < cols ? 1 : 0;
    wq[j] = weightAt(w, wtype, rows, cols, Math.min(r, rows - 1), Math.min(c, cols - 1)) * live;
  }
  for (let j: u32 = 0; j < 4; j++) {
    const e: u32 = id.local + 256 * j;
    const p: u32 = p0 + (e >> 5);
    const r: u32 = k0 + (e & 31);
    dq[j] = p < tokens && r < r1 ? gradAt(dy, allRows, rowStart, tokens, rows, p, r) : 0;
  }
}

/** dy[p][rowStart + r] of a [tokens, allRows] gradient, p and r clamped into it (the caller masks). */
/** @inline */
export function gradAt(dy: In<f32>, allRows: u32, rowStart: u32, tokens: u32, rows: u32, p: u32, r: u32): f32 {
  return dy[Math.min(p, tokens - 1) * allRows + rowStart + Math.min(r, rows - 1)];
}

/** out[i] (+)= Σ_s part[s][i], in split order, from acc[i] where `hasAcc`. */
/** @kernel @workgroupSize 256 */
export function matvecTSumKernel(id: Invocation, part: In<f32>, acc: In<f32>, out: Out<f32>, n: u32, splits: u32, add: u32, hasAcc: u32) {
  const i: u32 = id.global;
  if (i < n) {
    let v: f32 = add === 1 ? out[i] : hasAcc === 1 ? acc[i] : 0;
    for (let s: u32 = 0; s < splits; s++) {
      v += part[s * n + i];
    }
    out[i] = v;
  }
}
