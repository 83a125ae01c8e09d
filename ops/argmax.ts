// The index of the largest logit (the lowest index among ties): greedy decoding on the GPU, so a
// step reads back 4 bytes instead of the whole vocabulary.
import { type Invocation, type In, type Out, type f32, type f32x4, type u32, sharedF32, sharedU32, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { type Op, overRows, rowsOf } from './op.js';
import { ShapeError } from '../compiler/errors.js';

export const argmax: Op = overRows({
  name: 'argmax',
  infer([x]) {
    if (x!.shape.length !== 1) throw new ShapeError('argmax takes a vector');
    return { shape: [1], dtype: 'i32' };
  },
  reference([x]) {
    let best = 0;
    for (let i = 1; i < x!.length; i++) if (x![i]! > x![best]!) best = i;
    return Float64Array.of(best);
  },
  lower(n, ctx) {
    const x = n.srcs[0]!, width = x.shape[x.shape.length - 1]!;
    // rows of whole 4-lane loads: a quarter of the loads (a vocabulary is scanned by one workgroup)
    ctx.dispatch(width % 4 === 0 ? 'argmax4Kernel' : 'argmaxKernel', { x: ctx.buf(x), out: ctx.buf(n) }, { n: width }, rowsOf(x.shape));
  },
}, { rows: () => [0] });

/** A workgroup per row: each invocation scans a stride, then a tree reduction keeps (value, index). */
/** @kernel @workgroupSize 256 */
export function argmaxKernel(id: Invocation, x: In<f32>, out: Out<u32>, n: u32) {
  const vals = sharedF32(256);
  const idxs = sharedU32(256);
  let best: f32 = -3.4e38;
  let at: u32 = 0;
  const row: u32 = id.group * n;
  for (let i: u32 = id.local; i < n; i += id.size) {
    if (x[row + i] > best) {
      best = x[row + i];
      at = i;
    }
  }
  keepLargest(vals, idxs, best, at, id);
  if (id.local === 0) {
    out[id.group] = idxs[0];
  }
}

/** argmaxKernel reading 4 logits a load (n % 4 = 0); the same ties rule (lowest index wins). */
/** @kernel @workgroupSize 256 */
export function argmax4Kernel(id: Invocation, x: In<f32x4>, out: Out<u32>, n: u32) {
  const vals = sharedF32(256);
  const idxs = sharedU32(256);
  let best: f32 = -3.4e38;
  let at: u32 = 0;
  const row: u32 = id.group * (n >> 2);
  for (let i: u32 = id.local; i < n >> 2; i += id.size) {
    const v: f32x4 = x[row + i];
    if (v.x > best) {
      best = v.x;
      at = 4 * i;
    }
    if (v.y > best) {
      best = v.y;
      at = 4 * i + 1;
    }
    if (v.z > best) {
      best = v.z;
      at = 4 * i + 2;
    }
    if (v.w > best) {
      best = v.w;
      at = 4 * i + 3;
    }
  }
  keepLargest(vals, idxs, best, at, id);
  if (id.local === 0) {
    out[id.group] = idxs[0];
  }
}

/** (vals[0], idxs[0]) = the largest of every invocation's (best, at), the lowest index among ties. */
/** @inline */
export function keepLargest(vals: Out<f32>, idxs: Out<u32>, best: f32, at: u32, id: Invocation): void {
  vals[id.local] = best;
  idxs[id.local] = at;
  workgroupBarrier();
  for (let s: u32 = id.size >> 1; s > 0; s >>= 1) {
    if (id.local < s) {
      const v: f32 = vals[id.local + s];
      const j: u32 = idxs[id.local + s];
      if (v > vals[id.local] || (v === vals[id.local] && j < idxs[id.local])) {
        vals[id.local] = v;
        idxs[id.local] = j;
      }
    }
    workgroupBarrier();
  }
}

/** The greedy loop's step on the GPU, after argmax: the chosen token becomes the next step's input and
 *  goes to the history at its step, and the position advances. Nothing is copied or written by the
 *  host between steps, so many steps are encoded and submitted at once. */
/** @kernel @workgroupSize 1 */
export function greedyStepKernel(id: Invocation, next: In<u32>, token: Out<u32>, pos: Out<u32>, history: Out<u32>, first: u32) {
  token[0] = next[0];
  history[pos[0] - first] = next[0];
  pos[0] = pos[0] + 1;
}
