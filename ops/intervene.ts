// An intervention at a hook: x -> x * a[pos] + b[pos], elementwise, with a and b [rows, size] written
// by the host once per run. Every kind is such a map: replace/patch (a=0, b=value), add a steering
// vector (a=1, b=v), scale (a=s, b=0), zero-ablate (0, 0), mean-ablate (0, mean); positions and heads
// left alone have a=1, b=0, which leaves x bit for bit. Positions past `rows` are left alone too.
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, elems, expectShape, groupsFor, overRows, rowsOf, seqLenOf } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const intervene: Op = overRows({
  name: 'intervene',
  infer([x, pos, a, b]) {
    expectShape(pos!, [1], 'position');
    if (a!.shape.length !== 2 || a!.shape[1] !== elems(x!)) throw new ShapeError(`intervention tables must be [rows, ${elems(x!)}]`);
    expectShape(b!, a!.shape, 'intervention offset');
    return x!;
  },
  reference([x, pos, a, b], _, s) {
    const p = pos![0]!, rows = s.srcs[2]![0]!, n = x!.length;
    return p >= rows ? Float64Array.from(x!) : x!.map((v, i) => v * a![p * n + i]! + b![p * n + i]!);
  },
  lower(n, ctx) {
    const [x, pos, a, b] = n.srcs;
    ctx.dispatch('interveneKernel', { x: ctx.buf(x!), pos: ctx.buf(pos!), a: ctx.buf(a!), b: ctx.buf(b!), out: ctx.buf(n) },
      { n: a!.shape[1]!, tokens: rowsOf(x!.shape), seqLen: seqLenOf(x!.shape), rows: a!.shape[0]! }, groupsFor(n.size, 64));
  },
}, { rows: () => [0], pos: 1 });

/** @kernel @workgroupSize 64 */
export function interveneKernel(id: Invocation, x: In<f32>, pos: In<u32>, a: In<f32>, b: In<f32>, out: Out<f32>, n: u32, tokens: u32, seqLen: u32, rows: u32) {
  const i: u32 = id.global;
  if (i >= n * tokens) {
    return;
  }
  const p: u32 = pos[0] + idiv(i, n) % seqLen; // element i is in row i / n, at that position of its sequence
  if (p >= rows) {
    out[i] = x[i];
    return;
  }
  out[i] = x[i] * a[p * n + i % n] + b[p * n + i % n];
}
