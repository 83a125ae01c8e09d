// A per-step input written by the host: the token id or the position (one i32 each).
import type { Op } from './op.js';

export const input: Op<{ name: string; shape: readonly number[]; dtype: 'i32' | 'f32' }> = {
  name: 'input',
  leaf: 'input',
  infer: (_, a) => ({ shape: a.shape, dtype: a.dtype }),
  reference() { throw new Error('internal: inputs are read from the environment'); },
};
