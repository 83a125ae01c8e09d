// Token embedding: row `token` of the table [vocab, dim] -> [dim], dequantized if the table is
// ([T] tokens -> [T, dim]).
import { type Invocation, type In, type Out, type Spec, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, expectDtype, expectShape, groupsFor, overRows, rowsOf } from './op.js';
import { WTYPE, weightAt } from './dequant.js';
import { WEIGHT_DTYPES } from '../compiler/ir/dtype.js';

export const embedding: Op = overRows({
  name: 'embedding',
  infer([table, token]) {
    if (table!.shape.length !== 2) throw new Error('embedding table must be 2-D');
    expectShape(token!, [1], 'token');
    expectDtype(token!, ['i32'], 'token');
    expectDtype(table!, WEIGHT_DTYPES, 'embedding table');
    return { shape: [table!.shape[1]!], dtype: 'f32' };
  },
  reference([table, token], _, shapes) {
    const dim = shapes.out[0]!;
    const t = token![0]!;
    return table!.slice(t * dim, (t + 1) * dim);
  },
  lower(n, ctx) {
    const dim = n.shape[n.shape.length - 1]!;
    // The table may be split by rows; every piece checks whether it holds the token.
    for (const c of ctx.chunks(n.srcs[0]!))
      ctx.dispatch('embeddingKernel', { table: c.buf, token: ctx.buf(n.srcs[1]!), out: ctx.buf(n) },
        { dim, tokens: rowsOf(n.shape), rowStart: c.rowStart, rows: c.rows, wtype: WTYPE[n.srcs[0]!.dtype]! }, groupsFor(n.size, 64));
  },
}, { rows: () => [], token: 1 });

/** @kernel @workgroupSize 64 */
export function embeddingKernel(id: Invocation, table: In<u32>, token: In<u32>, out: Out<f32>, dim: u32, tokens: u32, rowStart: u32, rows: u32, wtype: Spec<u32>) {
  const i: u32 = id.global;
  if (i >= dim * tokens) {
    return;
  }
  const t: u32 = token[idiv(i, dim)];
  if (t < rowStart || t >= rowStart + rows) {
    return;
  }
  out[i] = weightAt(table, wtype, rows, dim, t - rowStart, i % dim);
}
