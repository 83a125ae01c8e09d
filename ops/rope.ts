// Rotary position embedding: within each head, pairs (x[2i], x[2i+1]) turn by the angle for
// (position, i) from the precomputed table. Adjacent pairs, as llama2.c and GGUF's llama arch store Q/K.
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor, overRows, rowsOf, seqLenOf } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const rope: Op<{ headSize: number }> = overRows<{ headSize: number }>({
  name: 'rope',
  infer([x, pos, table], { headSize }) {
    expectShape(pos!, [1], 'position');
    if (x!.shape.length !== 1 || x!.shape[0]! % headSize !== 0) throw new ShapeError(`rope input must be a multiple of the head size ${headSize}`);
    if (table!.shape.length !== 3 || table!.shape[1]! * 2 > headSize) throw new ShapeError('rope table must be [context, rotDim/2, 2] with rotDim <= headSize');
    return x!;
  },
  reference([x, pos, table], { headSize }, shapes) {
    const half = shapes.srcs[2]![1]!;
    const p = pos![0]!;
    const out = Float64Array.from(x!);
    for (let h = 0; h < x!.length / headSize; h++)
      for (let i = 0; i < half; i++) {
        const c = table![(p * half + i) * 2]!, s = table![(p * half + i) * 2 + 1]!;
        const a = x![h * headSize + 2 * i]!, b = x![h * headSize + 2 * i + 1]!;
        out[h * headSize + 2 * i] = a * c - b * s;
        out[h * headSize + 2 * i + 1] = a * s + b * c;
      }
    return out;
  },
  // a rotation's transpose is the rotation by the opposite angles: RoPE again, through the inverse table
  vjp(n, dy, b) {
    const table = n.srcs[2]!;
    return [b.apply(rope, [dy, n.srcs[1]!, b.apply(table.op, [], { ...table.attr, inverse: true })], n.attr), undefined, undefined];
  },
  lower(n, ctx) {
    const [x, pos, table] = n.srcs;
    const pairs = n.shape[n.shape.length - 1]! / 2;
    ctx.dispatch('ropeKernel', { x: ctx.buf(x!), pos: ctx.buf(pos!), table: ctx.buf(table!), out: ctx.buf(n) },
      { pairs, tokens: rowsOf(n.shape), seqLen: seqLenOf(n.shape), headSize: Number(n.attr.headSize), rotDim: table!.shape[1]! * 2 }, groupsFor(pairs * rowsOf(n.shape), 64));
  },
}, { rows: () => [0], pos: 1 });

/** One invocation per pair; pairs past rotDim (partial rotary) pass through. */
/** @kernel @workgroupSize 64 */
export function ropeKernel(id: Invocation, x: In<f32>, pos: In<u32>, table: In<f32>, out: Out<f32>, pairs: u32, tokens: u32, seqLen: u32, headSize: u32, rotDim: u32) {
  const i: u32 = id.global;
  if (i >= pairs * tokens) {
    return;
  }
  const row: u32 = idiv(i, pairs);
  const j: u32 = (2 * (i % pairs)) % headSize;
  const at: u32 = 2 * i;
  if (j >= rotDim) {
    out[at] = x[at];
    out[at + 1] = x[at + 1];
    return;
  }
  const t: u32 = ((pos[0] + row % seqLen) * idiv(rotDim, 2) + idiv(j, 2)) * 2;
  const c: f32 = table[t];
  const s: f32 = table[t + 1];
  const a: f32 = x[at];
  const b: f32 = x[at + 1];
  out[at] = a * c - b * s;
  out[at + 1] = a * s + b * c;
}
