// A few columns of each row: out[r, j] = x[r, ids[j]] (the target's and the distractor's logits of a
// patched run), so a sweep reads back a few bytes per run instead of the vocabulary.
// Sources: [x [..., V], ids i32[k]] -> [..., k].
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, expectDtype, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const pick: Op = {
  name: 'pick',
  infer([x, ids]) {
    if (x!.shape.length < 1 || ids!.shape.length !== 1) throw new ShapeError('pick takes rows and a list of column ids');
    expectDtype(ids!, ['i32'], 'column ids');
    return { shape: [...x!.shape.slice(0, -1), ids!.shape[0]!], dtype: 'f32' };
  },
  reference([x, ids], _, s) {
    const V = s.srcs[0]![s.srcs[0]!.length - 1]!, k = ids!.length, rows = x!.length / V;
    const out = new Float64Array(rows * k);
    for (let r = 0; r < rows; r++) for (let j = 0; j < k; j++) out[r * k + j] = x![r * V + ids![j]!]!;
    return out;
  },
  lower(n, ctx) {
    const [x, ids] = n.srcs;
    ctx.dispatch('pickKernel', { x: ctx.buf(x!), ids: ctx.buf(ids!), out: ctx.buf(n) }, { width: x!.shape[x!.shape.length - 1]!, k: ids!.shape[0]!, total: n.size }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function pickKernel(id: Invocation, x: In<f32>, ids: In<u32>, out: Out<f32>, width: u32, k: u32, total: u32) {
  const i: u32 = id.global;
  if (i < total) {
    out[i] = x[idiv(i, k) * width + ids[i % k]];
  }
}
