// The transposed product: dy [.., rows] through W [rows, cols] to [.., cols] (out = Wᵀ·dy per row), the
// gradient of a matrix product with respect to its input. The weights are read as they are stored
// (any dtype; the float64 reference sees them dequantized), never copied transposed.
import { type Invocation, type In, type Out, type Spec, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { WTYPE, weightAt } from './dequant.js';
import { type Op, expectShape, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const matvecT: Op = {
  name: 'matvec_t',
  infer([w, dy]) {
    if (w!.shape.length !== 2) throw new ShapeError('matvec_t needs a matrix [rows, cols]');
    const [rows, cols] = w!.shape as [number, number];
    if (dy!.shape.length < 1) throw new ShapeError('matvec_t needs a gradient [.., rows]');
    expectShape({ ...dy!, shape: dy!.shape.slice(-1) }, [rows], 'gradient rows');
    return { shape: [...dy!.shape.slice(0, -1), cols], dtype: 'f32' };
  },
  reference([w, dy], _, s) {
    const [rows, cols] = s.srcs[0] as [number, number], T = dy!.length / rows;
    const out = new Float64Array(T * cols);
    for (let t = 0; t < T; t++)
      for (let r = 0; r < rows; r++) {
        const g = dy![t * rows + r]!;
        if (g !== 0) for (let c = 0; c < cols; c++) out[t * cols + c]! += w![r * cols + c]! * g;
      }
    return out;
  },
  lower(n, ctx) {
    const [w, dy] = n.srcs, [rows, cols] = w!.shape as [number, number];
    ctx.chunks(w!).forEach((c, k) => ctx.dispatch('matvecTKernel', { w: c.buf, dy: ctx.buf(dy!), out: ctx.buf(n) },
      { rows: c.rows, cols, allRows: rows, rowStart: c.rowStart, n: n.size, add: k > 0 ? 1 : 0, wtype: WTYPE[w!.dtype]! }, groupsFor(n.size, 64)));
  },
};

/** out[t][c] = Σ_r W[r][c]·dy[t][r] over this piece's rows, in row order (weights read where they are). */
/** @kernel @workgroupSize 64 */
export function matvecTKernel(id: Invocation, w: In<u32>, dy: In<f32>, out: Out<f32>, rows: u32, cols: u32, allRows: u32, rowStart: u32, n: u32, add: u32, wtype: Spec<u32>) {
  const i: u32 = id.global;
  if (i >= n) {
    return;
  }
  const t: u32 = idiv(i, cols);
  const c: u32 = i % cols;
  let acc: f32 = add === 1 ? out[i] : 0;
  for (let r: u32 = 0; r < rows; r++) {
    acc += weightAt(w, wtype, rows, cols, r, c) * dy[t * allRows + rowStart + r];
  }
  out[i] = acc;
}
