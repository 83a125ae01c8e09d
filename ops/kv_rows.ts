// The rows a block wrote into a KV cache, read out of the cache's gradient: d cache [context, width] at
// positions pos .. pos + T − 1 is the gradient of the keys (or values) the block computed (x gives T).
import { type Invocation, type In, type Out, type f32, type u32 } from '../compiler/kernel/dsl.js';
import { type Op, expectShape, groupsFor } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const kvRows: Op = {
  name: 'kv_rows',
  infer([dc, pos, x]) {
    expectShape(pos!, [1], 'position');
    if (dc!.shape.length !== 2 || x!.shape.length > 2) throw new ShapeError('kv_rows reads one sequence\'s cache [context, width]');
    expectShape({ ...x!, shape: x!.shape.slice(-1) }, [dc!.shape[1]!], 'cache row');
    return { shape: x!.shape, dtype: 'f32' };
  },
  reference([dc, pos], _, s) {
    const n = s.out.reduce((a, b) => a * b, 1), at = pos![0]! * s.srcs[0]![1]!;
    return dc!.slice(at, at + n);
  },
  lower(n, ctx) {
    const [dc, pos] = n.srcs;
    ctx.dispatch('kvRowsKernel', { dc: ctx.buf(dc!), pos: ctx.buf(pos!), out: ctx.buf(n) }, { n: n.size, width: dc!.shape[1]! }, groupsFor(n.size, 64));
  },
};

/** @kernel @workgroupSize 64 */
export function kvRowsKernel(id: Invocation, dc: In<f32>, pos: In<u32>, out: Out<f32>, n: u32, width: u32) {
  const i: u32 = id.global;
  if (i < n) {
    out[i] = dc[pos[0] * width + i];
  }
}
