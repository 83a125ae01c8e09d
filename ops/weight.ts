// A model weight, loaded from the model file under its GGUF name (e.g. `blk.0.attn_q.weight`).
import type { Op } from './op.js';
import type { DType } from '../compiler/ir/dtype.js';

export const weight: Op<{ name: string; shape: readonly number[]; dtype: DType }> = {
  name: 'weight',
  leaf: 'weight',
  infer: (_, a) => ({ shape: a.shape, dtype: a.dtype }),
  reference() { throw new Error('internal: weights are read from the environment'); },
};
