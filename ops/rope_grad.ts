// RoPE's gradient: a rotation's transpose is the rotation by the opposite angle, so dx is dy turned back
// by each position's angles (pairs past the rotated dimensions pass through, as in the forward).
import { type Op, expectShape, overRows } from './op.js';

export const ropeGrad: Op<{ headSize: number }> = overRows<{ headSize: number }>({
  name: 'rope_grad',
  infer([dy, pos]) {
    expectShape(pos!, [1], 'position');
    return dy!;
  },
  reference([dy, pos, table], { headSize }, shapes) {
    const half = shapes.srcs[2]![1]!, p = pos![0]!;
    const out = Float64Array.from(dy!);
    for (let h = 0; h < dy!.length / headSize; h++)
      for (let i = 0; i < half; i++) {
        const c = table![(p * half + i) * 2]!, s = table![(p * half + i) * 2 + 1]!;
        const a = dy![h * headSize + 2 * i]!, b = dy![h * headSize + 2 * i + 1]!;
        out[h * headSize + 2 * i] = a * c + b * s;
        out[h * headSize + 2 * i + 1] = -a * s + b * c;
      }
    return out;
  },
}, { rows: () => [0], pos: 1 });
