// The transposed product: dy [.., rows] through W [rows, cols] to [.., cols] (out = Wᵀ·dy per row), the
// gradient of a matrix product with respect to its input. The weights are read as they are stored
// (any dtype; the float64 reference sees them dequantized), never copied transposed.
import { type Op, expectShape } from './op.js';
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
};
