// The last row's gradient spread back over its block: dy [.., 1, n] into the last row of x's shape
// [.., T, n], zeros elsewhere (x is a source for its shape only).
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, groupsFor } from './op.js';

export const lastRowGrad: Op = {
  name: 'last_row_grad',
  infer: ([, x]) => ({ shape: x!.shape, dtype: 'f32' }),
  reference([dy], _, s) {
    const sh = s.out, n = sh[sh.length - 1]!, T = sh[sh.length - 2]!, B = sh.length === 3 ? sh[0]! : 1;
    const out = new Float64Array(B * T * n);
    for (let b = 0; b < B; b++) out.set(dy!.subarray(b * n, (b + 1) * n), (b * T + T - 1) * n);
    return out;
  },
  lower(n, ctx) {
    const sh = n.shape;
    ctx.dispatch('lastRowGradKernel', { dy: ctx.buf(n.srcs[0]!), out: ctx.buf(n) }, { width: sh[sh.length - 1]!, T: sh[sh.length - 2]!, total: n.size }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function lastRowGradKernel(id: Invocation, dy: In<f32>, out: Out<f32>, width: u32, T: u32, total: u32) {
  const i: u32 = id.global;
  if (i < total) {
    const row: u32 = idiv(i, width);
    out[i] = row % T === T - 1 ? dy[idiv(row, T) * width + i % width] : 0;
  }
}
