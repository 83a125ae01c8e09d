// Workgroup reductions shared by the kernels, as statement @inline helpers: each halves the active
// invocations until element 0 holds the result. Call them where every invocation of the workgroup
// arrives (they contain barriers), after each invocation has written its own element.
import { type Invocation, type In, type Out, type f32, type u32, workgroupBarrier } from '../compiler/kernel/dsl.js';

/** a[0] = a[0] + a[1] + ... + a[size-1] */
/** @inline */
export function workgroupSum(a: Out<f32>, id: Invocation): void {
  workgroupBarrier();
  for (let s: u32 = id.size >> 1; s > 0; s >>= 1) {
    if (id.local < s) {
      a[id.local] += a[id.local + s];
    }
    workgroupBarrier();
  }
}

/** a[0] = max(a[0], ..., a[size-1]) */
/** @inline */
export function workgroupMax(a: Out<f32>, id: Invocation): void {
  workgroupBarrier();
  for (let s: u32 = id.size >> 1; s > 0; s >>= 1) {
    if (id.local < s) {
      a[id.local] = Math.max(a[id.local], a[id.local + s]);
    }
    workgroupBarrier();
  }
}

/** partial[0] = x[at]² + ... + x[at+n-1]² (the RMSNorm reduction of one row) */
/** @inline */
export function sumOfSquares(x: In<f32>, at: u32, n: u32, partial: Out<f32>, id: Invocation): void {
  let ss: f32 = 0;
  for (let i: u32 = id.local; i < n; i += id.size) {
    ss += x[at + i] * x[at + i];
  }
  partial[id.local] = ss;
  workgroupSum(partial, id);
}
