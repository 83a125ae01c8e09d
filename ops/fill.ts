// A constant tensor of one value: the seed of a backward pass (d metric / d metric = 1).
import type { Op } from './op.js';

export const fill: Op<{ shape: readonly number[]; value: number }> = {
  name: 'fill',
  leaf: 'const',
  infer: (_, { shape }) => ({ shape: [...shape], dtype: 'f32' }),
  reference: (_, { shape, value }) => new Float64Array(shape.reduce((a, b) => a * b, 1)).fill(value),
};
