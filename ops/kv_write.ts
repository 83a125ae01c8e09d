// KV-cache write: cache[pos, :] = x. Updates the cache in place and returns it, so attention
// that reads the returned node is ordered after the write.
import { type Invocation, type In, type Out, type f32, type u32, idiv } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor, overRows, seqLenOf } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { kvRows } from './kv_rows.js';

export const kvWrite: Op = overRows({
  name: 'kv_write',
  inPlace: true,
  infer([cache, x, pos]) {
    expectShape(pos!, [1], 'position');
    if (cache!.shape.length !== 2) throw new ShapeError('cache must be [context, width]');
    expectShape(x!, [cache!.shape[1]!], 'cache row');
    return cache!;
  },
  reference([cache, x, pos]) {
    cache!.set(x!, pos![0]! * x!.length);
    return cache!;
  },
  // the block's rows of the cache's gradient are its keys' (values'); earlier positions' rows would flow
  // to the cache as it was (a previous block's): not given yet
  vjp: (n, dy, b) => [undefined, b.apply(kvRows, [dy, n.srcs[2]!, n.srcs[1]!], {}), undefined],
  lower(n, ctx) {
    const [cache, x, pos] = n.srcs;
    const width = x!.shape[x!.shape.length - 1]!;
    ctx.dispatch('kvWriteKernel', { x: ctx.buf(x!), pos: ctx.buf(pos!), cache: ctx.buf(cache!) },
      { width, n: x!.size, seqLen: seqLenOf(x!.shape), context: cache!.shape[cache!.shape.length - 2]! }, groupsFor(x!.size, 64));
  },
}, { rows: () => [1], pos: 2, states: [0], outRows: false });

/** @kernel @workgroupSize 64 */
export function kvWriteKernel(id: Invocation, x: In<f32>, pos: In<u32>, cache: Out<f32>, width: u32, n: u32, seqLen: u32, context: u32) {
  const i: u32 = id.global;
  if (i < n) {
    const r: u32 = idiv(i, width); // row r: position pos + r % seqLen of sequence r / seqLen
    cache[(idiv(r, seqLen) * context + pos[0] + r % seqLen) * width + i % width] = x[i];
  }
}
