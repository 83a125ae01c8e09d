// The index of the largest logit (the lowest index among ties): greedy decoding on the GPU, so a
// step reads back 4 bytes instead of the whole vocabulary.
import { type Invocation, type In, type Out, type f32, type f32x4, type u32, idiv, sharedF32, sharedU32, workgroupBarrier } from '../compiler/kernel/dsl.js';
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
    const x = n.srcs[0]!, width = x.shape[x.shape.length - 1]!, rows = rowsOf(x.shape);
    if (width % 4 === 0 && width > 2 * PART) {
      // a large vocabulary in two steps: one workgroup scanning 128k logits walks 125 loads each, one
      // after another; slices of PART logits, then the slices' winners, are two short launches
      const parts = Math.ceil(width / PART);
      const vals = ctx.scratch(n, 'vals', rows * parts), idxs = ctx.scratch(n, 'idxs', rows * parts);
      ctx.dispatch('argmaxPartsKernel', { x: ctx.buf(x), vals, idxs }, { n: width, parts }, rows * parts);
      ctx.dispatch('argmaxFinalKernel', { vals, idxs, out: ctx.buf(n) }, { parts }, rows);
      return;
    }
    // rows of whole 4-lane loads: a quarter of the loads
    ctx.dispatch(width % 4 === 0 ? 'argmax4Kernel' : 'argmaxKernel', { x: ctx.buf(x), out: ctx.buf(n) }, { n: width }, rows);
  },
}, { rows: () => [0] });

/** logits a workgroup of argmaxPartsKernel scans: 256 invocations, four 4-lane loads each */
const PART = 4096;

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
    at = argmaxOf4(v, i, best, at);
    best = maxOf4(v, best);
  }
  keepLargest(vals, idxs, best, at, id);
  if (id.local === 0) {
    out[id.group] = idxs[0];
  }
}

/** The first step of a wide argmax: workgroup g takes slice g % parts (PART logits) of row g / parts;
 *  its largest logit and that logit's index (the lowest among ties) go to vals[g], idxs[g]. Each
 *  invocation's four loads are independent, so they are in flight together. */
/** @kernel @workgroupSize 256 */
export function argmaxPartsKernel(id: Invocation, x: In<f32x4>, vals: Out<f32>, idxs: Out<u32>, n: u32, parts: u32) {
  const sv = sharedF32(256);
  const si = sharedU32(256);
  const row: u32 = idiv(id.group, parts);
  const first: u32 = (id.group % parts) * 1024; // in 4-lane loads: PART / 4
  let best: f32 = -3.4e38;
  let at: u32 = 0;
  for (let j: u32 = 0; j < 4; j++) {
    const i: u32 = first + j * 256 + id.local;
    if (i < n >> 2) {
      const v: f32x4 = x[row * (n >> 2) + i];
      at = argmaxOf4(v, i, best, at);
      best = maxOf4(v, best);
    }
  }
  keepLargest(sv, si, best, at, id);
  if (id.local === 0) {
    vals[id.group] = sv[0];
    idxs[id.group] = si[0];
  }
}

/** The second step: a workgroup per row keeps the largest of its slices' winners (lowest index among ties). */
/** @kernel @workgroupSize 64 */
export function argmaxFinalKernel(id: Invocation, vals: In<f32>, idxs: In<u32>, out: Out<u32>, parts: u32) {
  const sv = sharedF32(64);
  const si = sharedU32(64);
  let best: f32 = -3.4e38;
  let at: u32 = 0;
  // slices in order, so a later slice's equal value never displaces an earlier one
  for (let k: u32 = id.local; k < parts; k += id.size) {
    const v: f32 = vals[id.group * parts + k];
    if (v > best) {
      best = v;
      at = idxs[id.group * parts + k];
    }
  }
  keepLargest(sv, si, best, at, id);
  if (id.local === 0) {
    out[id.group] = si[0];
  }
}

/** The largest of best and load i's four lanes. */
/** @inline */
export function maxOf4(v: f32x4, best: f32): f32 {
  return Math.max(Math.max(Math.max(Math.max(best, v.x), v.y), v.z), v.w);
}
/** The index of that largest: the first lane that reaches it, if it beats `best` (strictly: among ties
 *  the earlier index stays), else `at`. */
/** @inline */
export function argmaxOf4(v: f32x4, i: u32, best: f32, at: u32): u32 {
  return v.w > Math.max(Math.max(Math.max(best, v.x), v.y), v.z) ? 4 * i + 3
    : v.z > Math.max(Math.max(best, v.x), v.y) ? 4 * i + 2
    : v.y > Math.max(best, v.x) ? 4 * i + 1
    : v.x > best ? 4 * i : at;
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
