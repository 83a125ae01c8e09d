// A value a fused kernel stores on the side: the n-th `store` epilogue of node F (a tap that survived
// fusion, e.g. the attention output before the residual add). No kernel of its own: F writes it.
// Sources: [F]. Only fused graphs contain it; their float64 meaning is the unfused graph's.
import { type Op } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { epiloguesOf, storeCount } from './epilogues.js';

export const stored: Op<{ n: number; shape: readonly number[] }> = {
  name: 'stored',
  infer([f], { n, shape }, ) {
    void f;
    if (!Number.isInteger(n) || n < 0) throw new ShapeError(`stored: bad store index ${n}`);
    return { shape, dtype: 'f32' };
  },
  reference() {
    throw new Error('internal: stored values have no reference of their own; evaluate the unfused graph');
  },
  storeOf: (n) => ({ of: n.srcs[0]!, k: n.attr.n as number }),
  lower(n, ctx) {
    // F's lowering allocated the buffer when it bound the store; check it did
    const f = n.srcs[0]!;
    if (storeCount(epiloguesOf(f)) <= (n.attr.n as number)) throw new Error(`internal: %${f.id} has no store ${n.attr.n}`);
    ctx.buf(n);
  },
};
