// RoPE's gradient: a rotation's transpose is the rotation by the opposite angle, so dx is dy turned back
// by each position's angles (pairs past the rotated dimensions pass through, as in the forward).
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor, overRows, rowsOf, seqLenOf } from './op.js';

export const ropeGrad: Op<{ headSize: number }> = overRows<{ headSize: number }>({
  name: 'rope_grad',
  infer([dy, pos]) {
    expectShape(pos!, [1], 'position');
    return dy!;
  },
  reference([dy, pos, table], { headSize }, shapes) {
    const half = shapes.srcs[2]![1]!, p = pos![0]!;
    const out = Float64Array.from(dy!);
    for (let h = 0; h < dy!.length / headSize; h++)
      for (let i = 0; i < half; i++) {
        const c = table![(p * half + i) * 2]!, s = table![(p * half + i) * 2 + 1]!;
        const a = dy![h * headSize + 2 * i]!, b = dy![h * headSize + 2 * i + 1]!;
        out[h * headSize + 2 * i] = a * c + b * s;
        out[h * headSize + 2 * i + 1] = -a * s + b * c;
      }
    return out;
  },
  lower(n, ctx) {
    const [dy, pos, table] = n.srcs;
    const pairs = n.shape[n.shape.length - 1]! / 2;
    ctx.dispatch('ropeGradKernel', { dy: ctx.buf(dy!), pos: ctx.buf(pos!), table: ctx.buf(table!), out: ctx.buf(n) },
      { pairs, tokens: rowsOf(n.shape), seqLen: seqLenOf(n.shape), headSize: Number(n.attr.headSize), rotDim: table!.shape[1]! * 2 }, groupsFor(pairs * rowsOf(n.shape), 64));
  },
}, { rows: () => [0], pos: 1 });

/** One invocation per pair, turned back by its position's angle; pairs past rotDim pass through. */
/** @kernel @workgroupSize 64 */
export function ropeGradKernel(id: Invocation, dy: In<f32>, pos: In<u32>, table: In<f32>, out: Out<f32>, pairs: u32, tokens: u32, seqLen: u32, headSize: u32, rotDim: u32) {
  const i: u32 = id.global;
  if (i >= pairs * tokens) {
    return;
  }
  const row: u32 = idiv(i, pairs);
  const j: u32 = (2 * (i % pairs)) % headSize;
  const at: u32 = 2 * i;
  if (j >= rotDim) {
    out[at] = dy[at];
    out[at + 1] = dy[at + 1];
    return;
  }
  const t: u32 = ((pos[0] + row % seqLen) * idiv(rotDim, 2) + idiv(j, 2)) * 2;
  const c: f32 = table[t];
  const s: f32 = table[t + 1];
  const a: f32 = dy[at];
  const b: f32 = dy[at + 1];
  out[at] = a * c + b * s;
  out[at + 1] = b * c - a * s;
}
