// Memory that lives across decode steps: the KV cache. Starts zeroed.
import type { Op } from './op.js';

export const state: Op<{ name: string; shape: readonly number[] }> = {
  name: 'state',
  leaf: 'state',
  infer: (_, a) => ({ shape: a.shape, dtype: 'f32' }),
  reference: (_, a) => new Float64Array(a.shape.reduce((x, y) => x * y, 1)),
};
