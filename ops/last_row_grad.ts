// The taken row's gradient spread back over its block: dy [.., 1, n] into the last row (or `row`) of
// x's shape [.., T, n], zeros elsewhere (x is a source for its shape only).
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const lastRowGrad: Op = {
  name: 'last_row_grad',
  infer: ([, x]) => ({ shape: x!.shape, dtype: 'f32' }),
  reference([dy], a, s) {
    const sh = s.out, n = sh[sh.length - 1]!, T = sh[sh.length - 2]!, B = sh.length === 3 ? sh[0]! : 1, r = rowOf(T, a.row);
    const out = new Float64Array(B * T * n);
    for (let b = 0; b < B; b++) out.set(dy!.subarray(b * n, (b + 1) * n), (b * T + r) * n);
    return out;
  },
  lower(n, ctx) {
    const sh = n.shape, T = sh[sh.length - 2]!;
    ctx.dispatch('lastRowGradKernel', { dy: ctx.buf(n.srcs[0]!), out: ctx.buf(n) }, { width: sh[sh.length - 1]!, T, row: rowOf(T, n.attr.row), total: n.size }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function lastRowGradKernel(id: Invocation, dy: In<f32>, out: Out<f32>, width: u32, T: u32, row: u32, total: u32) {
  const i: u32 = id.global;
  if (i < total) {
    const r: u32 = idiv(i, width);
    out[i] = r % T === row ? dy[idiv(r, T) * width + i % width] : 0;
  }
}

/** The row taken of T: the last unless `row` names one. */
export function rowOf(T: number, row: unknown): number {
  if (row === undefined) return T - 1;
  const r = Number(row);
  if (!Number.isInteger(r) || r < 0 || r >= T) throw new ShapeError(`row ${String(row)} is outside a block of ${T} positions`);
  return r;
}
