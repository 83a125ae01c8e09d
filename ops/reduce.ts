// Workgroup reductions shared by the kernels, as statement @inline helpers. Each subgroup first
// reduces in registers (one instruction, no barrier), then a barrier tree halves the active
// invocations over whole subgroups until element 0 holds the result: log2(size / subgroup) barriers,
// not log2(size) (without subgroups the subgroup is one invocation and the tree does it all).
// Call them where every invocation of the workgroup arrives (they contain barriers and subgroup
// operations), after each invocation has written its own element.
import { type Invocation, type In, type Out, type f32, type u32, subgroupAdd, subgroupMax, workgroupBarrier } from '../compiler/kernel/dsl.js';

/** a[0] = a[0] + a[1] + ... + a[size-1] */
/** @inline */
export function workgroupSum(a: Out<f32>, id: Invocation): void {
  sumRuns(a, id.local, id.size, id);
}

/** Sum each run of `lanes` consecutive elements of a (lanes a power of two; `lane` = local % lanes)
 *  into the run's first. A subgroup wider than a run would mix runs: there the tree does all of it. */
/** @inline */
export function sumRuns(a: Out<f32>, lane: u32, lanes: u32, id: Invocation): void {
  const sg: u32 = id.subgroupSize <= lanes ? id.subgroupSize : 1;
  const t: f32 = subgroupAdd(a[id.local]);
  if (sg > 1) {
    a[id.local] = t;
  }
  workgroupBarrier();
  for (let s: u32 = lanes >> 1; s >= sg; s >>= 1) {
    if (lane < s) {
      a[id.local] += a[id.local + s];
    }
    workgroupBarrier();
  }
}

/** a[0] = max(a[0], ..., a[size-1]) */
/** @inline */
export function workgroupMax(a: Out<f32>, id: Invocation): void {
  const sg: u32 = id.subgroupSize <= id.size ? id.subgroupSize : 1;
  const t: f32 = subgroupMax(a[id.local]);
  if (sg > 1) {
    a[id.local] = t;
  }
  workgroupBarrier();
  for (let s: u32 = id.size >> 1; s >= sg; s >>= 1) {
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
