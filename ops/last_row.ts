// The last position of each sequence of a block: x [T, n] -> [1, n], [B, T, n] -> [B, 1, n]. A prefill
// that needs only the next-token logits (or a metric of them) takes the final norm and the unembedding
// of this row alone, not of every position. `row` takes another position's row instead (a gradient's
// metric at an earlier position).
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { lastRowGrad, rowOf } from './last_row_grad.js';

export const lastRow: Op = {
  name: 'last_row',
  infer([x], a) {
    if (x!.shape.length < 2 || x!.shape.length > 3) throw new ShapeError(`last_row takes [T, n] or [B, T, n], got [${x!.shape}]`);
    const shape = [...x!.shape];
    rowOf(shape[shape.length - 2]!, a.row);
    shape[shape.length - 2] = 1;
    return { shape, dtype: x!.dtype };
  },
  reference([x], a, s) {
    const sh = s.srcs[0]!, n = sh[sh.length - 1]!, T = sh[sh.length - 2]!, B = sh.length === 3 ? sh[0]! : 1, r = rowOf(T, a.row);
    const out = new Float64Array(B * n);
    for (let b = 0; b < B; b++) out.set(x!.subarray((b * T + r) * n, (b * T + r + 1) * n), b * n);
    return out;
  },
  vjp: (n, dy, b) => [b.apply(lastRowGrad, [dy, n.srcs[0]!], n.attr)],
  lower(n, ctx) {
    const x = n.srcs[0]!, sh = x.shape, T = sh[sh.length - 2]!;
    ctx.dispatch('lastRowKernel', { x: ctx.buf(x), out: ctx.buf(n) }, { width: sh[sh.length - 1]!, T, row: rowOf(T, n.attr.row), total: n.size }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function lastRowKernel(id: Invocation, x: In<f32>, out: Out<f32>, width: u32, T: u32, row: u32, total: u32) {
  const i: u32 = id.global;
  if (i < total) {
    out[i] = x[(idiv(i, width) * T + row) * width + i % width]; // sequence i / width, its row `row`
  }
}
