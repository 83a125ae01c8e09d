// The last row's gradient spread back over its block: dy [.., 1, n] into the last row of x's shape
// [.., T, n], zeros elsewhere (x is a source for its shape only).
import type { Op } from './op.js';

export const lastRowGrad: Op = {
  name: 'last_row_grad',
  infer: ([, x]) => ({ shape: x!.shape, dtype: 'f32' }),
  reference([dy], _, s) {
    const sh = s.out, n = sh[sh.length - 1]!, T = sh[sh.length - 2]!, B = sh.length === 3 ? sh[0]! : 1;
    const out = new Float64Array(B * T * n);
    for (let b = 0; b < B; b++) out.set(dy!.subarray(b * n, (b + 1) * n), (b * T + T - 1) * n);
    return out;
  },
};
