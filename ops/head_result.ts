// Each attention head's own contribution to the attention output, before the heads are summed:
// result[h] = W_O[:, head h's columns] · z[h] -> [nHeads, dim] (TransformerLens's attn.hook_result).
// Summed over heads it is hook_attn_out. Its own node, read only by that hook: opt-in, as in TL, and
// nothing is computed unless it is tapped. Sources: [z, W_O].
import { type Invocation, type In, type Out, type Spec, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor, overRows, rowsOf } from './op.js';
import { WTYPE, weightAt } from './dequant.js';
import { ShapeError } from '../compiler/errors.js';

export type HeadResultAttr = { nHeads: number; headSize: number };

export const headResult: Op<HeadResultAttr> = overRows<HeadResultAttr>({
  name: 'head_result',
  infer([z, wo], { nHeads, headSize }) {
    expectShape(z!, [nHeads * headSize], 'z');
    if (wo!.shape.length !== 2 || wo!.shape[1] !== nHeads * headSize) throw new ShapeError(`W_O must be [dim, ${nHeads * headSize}]`);
    return { shape: [nHeads, wo!.shape[0]!], dtype: 'f32' };
  },
  reference([z, wo], { nHeads, headSize }, s) {
    const [dim, cols] = s.srcs[1] as [number, number];
    const out = new Float64Array(nHeads * dim);
    for (let h = 0; h < nHeads; h++)
      for (let i = 0; i < dim; i++) {
        let acc = 0;
        for (let d = 0; d < headSize; d++) acc += wo![i * cols + h * headSize + d]! * z![h * headSize + d]!;
        out[h * dim + i] = acc;
      }
    return out;
  },
  lower(n, ctx) {
    const [z, wo] = n.srcs;
    const { nHeads, headSize } = n.attr as HeadResultAttr;
    const T = rowsOf(z!.shape), dim = wo!.shape[0]!;
    for (const c of ctx.chunks(wo!))
      ctx.dispatch('headResultKernel', { z: ctx.buf(z!), w: c.buf, out: ctx.buf(n) },
        { rows: c.rows, rowStart: c.rowStart, dim, nHeads, headSize, total: T * nHeads * c.rows, wtype: WTYPE[wo!.dtype]! }, groupsFor(T * nHeads * c.rows, 64));
  },
}, { rows: () => [0] });

/** An invocation per (position, head, output element): a dot product over the head's columns. */
/** @kernel @workgroupSize 64 */
export function headResultKernel(id: Invocation, z: In<f32>, w: In<u32>, out: Out<f32>,
  rows: u32, rowStart: u32, dim: u32, nHeads: u32, headSize: u32, total: u32, wtype: Spec<u32>) {
  const g: u32 = id.global;
  if (g >= total) {
    return;
  }
  const i: u32 = g % rows;
  const th: u32 = idiv(g, rows); // position * nHeads + head
  const h: u32 = th % nHeads;
  const cols: u32 = nHeads * headSize;
  const zo: u32 = idiv(th, nHeads) * cols + h * headSize;
  let acc: f32 = 0;
  for (let d: u32 = 0; d < headSize; d++) {
    acc += weightAt(w, wtype, rows, cols, i, h * headSize + d) * z[zo + d];
  }
  out[th * dim + rowStart + i] = acc;
}
