// What the logit lens reports of each of its rows, reduced on the GPU so only that is read back: the
// row's top-k tokens and their probabilities, the target's rank and probability, and the KL divergence
// from the final layer's distribution at the same position. Rows are layer-major: with c = R / layers
// positions, row r is layer r / c at position r % c, and that position's final-layer row is
// (layers − 1)·c + r % c.
// Sources: [logits [R, V], target i32[1] (V or more: none)]. Output [R, 3 + 2k]:
// [kl, rank, prob, id_1..id_k, prob_1..prob_k] (ids are exact in f32 below 2^24).
import { type Invocation, type In, type Out, type f32, type u32, f32 as toF32, bitcastF32, localF32, localU32, sharedF32, sharedU32, idiv, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { type Op, expectDtype } from './op.js';
import { ShapeError } from '../compiler/errors.js';
import { keepLargest } from './argmax.js';
import { workgroupMax, workgroupSum } from './reduce.js';

export type LensStatsAttr = { layers: number; top: number };
export const lensStatsWidth = (top: number) => 3 + 2 * top;

export const lensStats: Op<LensStatsAttr> = {
  name: 'lens_stats',
  infer([z, target], { layers, top }) {
    if (z!.shape.length !== 2) throw new ShapeError('lens_stats takes [rows, vocab] logits');
    const [R, V] = z!.shape as [number, number];
    if (!Number.isInteger(layers) || layers < 1 || R % layers !== 0) throw new ShapeError(`${R} rows are not whole positions of ${layers} layers`);
    if (!Number.isInteger(top) || top < 1 || top > V) throw new ShapeError(`top-${top} of a vocabulary of ${V}`);
    expectDtype(target!, ['i32'], 'target');
    return { shape: [R, lensStatsWidth(top)], dtype: 'f32' };
  },
  reference([z, target], { layers, top }, s) {
    const [R, V] = s.srcs[0] as [number, number];
    const W = lensStatsWidth(top), t = target![0]!;
    const out = new Float64Array(R * W);
    const probs = (r: number) => {
      let m = -Infinity;
      for (let i = 0; i < V; i++) m = Math.max(m, z![r * V + i]!);
      const p = new Float64Array(V);
      let sum = 0;
      for (let i = 0; i < V; i++) sum += p[i] = Math.exp(z![r * V + i]! - m);
      return p.map((x) => x / sum);
    };
    for (let r = 0; r < R; r++) {
      const p = probs(r), f = probs((layers - 1) * (R / layers) + (r % (R / layers)));
      let kl = 0;
      for (let i = 0; i < V; i++) if (f[i]! > 0) kl += f[i]! * (Math.log(f[i]!) - Math.log(Math.max(p[i]!, 1e-300)));
      const order = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b);
      out[r * W] = Math.max(0, kl);
      if (t < V) { out[r * W + 1] = order.indexOf(t); out[r * W + 2] = p[t]!; }
      for (let j = 0; j < top; j++) { out[r * W + 3 + j] = order[j]!; out[r * W + 3 + top + j] = p[order[j]!]!; }
    }
    return out;
  },
  lower(n, ctx) {
    const [z, target] = n.srcs;
    const [R, V] = z!.shape as [number, number];
    const { layers, top } = n.attr as LensStatsAttr;
    ctx.dispatch('lensStatsKernel', { z: ctx.buf(z!), target: ctx.buf(target!), out: ctx.buf(n) }, { n: V, rows: R, layers, top }, R);
  },
};

/** A workgroup per row. Log-sum-exp of the row and of its position's final row; the KL as
 *  Σ f_i ((zf_i − lseF) − (z_i − lse)); the target's rank as the count of logits above it (ties: the
 *  lower index first, as a stable sort by probability would give); the top k (ties the same way) from
 *  each invocation's own sorted eight, one pass over the row (k ≤ 8), or in k passes. */
/** @kernel @workgroupSize 256 */
export function lensStatsKernel(id: Invocation, z: In<f32>, target: In<u32>, out: Out<f32>, n: u32, rows: u32, layers: u32, top: u32) {
  const a = sharedF32(256);
  const ix = sharedU32(256);
  const tv = localF32(8); // (top ≤ 8: this invocation's largest, in order, and their tokens)
  const ti = localU32(8);
  const row: u32 = id.group * n;
  const c: u32 = idiv(rows, layers); // positions
  const fin: u32 = ((layers - 1) * c + id.group % c) * n;
  const w: u32 = id.group * (3 + 2 * top);
  logSumExp(z, row, n, a, id);
  const lse: f32 = a[0];
  workgroupBarrier();
  logSumExp(z, fin, n, a, id);
  const lseF: f32 = a[0];
  workgroupBarrier();
  let kl: f32 = 0;
  for (let i: u32 = id.local; i < n; i += id.size) {
    const lf: f32 = z[fin + i] - lseF;
    kl += Math.exp(lf) * (lf - (z[row + i] - lse));
  }
  a[id.local] = kl;
  workgroupSum(a, id);
  if (id.local === 0) {
    out[w] = Math.max(a[0], 0);
  }
  workgroupBarrier();
  // (every invocation reaches the barriers: with no target the count runs on the last token, unused)
  const t: u32 = Math.min(target[0], n - 1);
  const zt: f32 = z[row + t];
  let above: f32 = 0;
  for (let i: u32 = id.local; i < n; i += id.size) {
    const v: f32 = z[row + i];
    if (v > zt || (v === zt && i < t)) {
      above += 1;
    }
  }
  a[id.local] = above;
  workgroupSum(a, id);
  if (id.local === 0 && target[0] < n) {
    out[w + 1] = a[0];
    out[w + 2] = Math.exp(zt - lse);
  }
  workgroupBarrier();
  if (top <= 8) {
    // each invocation keeps the eight largest of its share in order (value, then the lower index
    // first; empty slots are (−∞, n), below every real entry), in one pass over the row; then k rounds
    // take the largest head of all lists, and its owner moves its list up (a list of eight holds every
    // entry of a top-k of at most eight that it can hold)
    const none: f32 = bitcastF32(0xff800000 | (id.local & 0)); // −∞ (made at run time: WGSL rejects a constant ∞)
    for (let q: u32 = 0; q < 8; q++) {
      tv[q] = none;
      ti[q] = n;
    }
    for (let i: u32 = id.local; i < n; i += id.size) {
      const v: f32 = z[row + i];
      // (NaN never enters: it compares false)
      if (v > tv[7] || (v === tv[7] && ti[7] === n)) {
        tv[7] = v;
        ti[7] = i;
        for (let q: u32 = 0; q < 7; q++) {
          // the new entry bubbles up from slot 7 - q to 6 - q while it comes first
          if (tv[7 - q] > tv[6 - q] || (tv[7 - q] === tv[6 - q] && ti[7 - q] < ti[6 - q])) {
            const sv: f32 = tv[6 - q];
            const si: u32 = ti[6 - q];
            tv[6 - q] = tv[7 - q];
            ti[6 - q] = ti[7 - q];
            tv[7 - q] = sv;
            ti[7 - q] = si;
          }
        }
      }
    }
    for (let j: u32 = 0; j < top; j++) {
      keepLargest(a, ix, tv[0], ti[0], id);
      const bestV: f32 = a[0];
      const bestI: u32 = ix[0];
      if (id.local === 0) {
        out[w + 3 + j] = toF32(bestI);
        out[w + 3 + top + j] = Math.exp(bestV - lse);
      }
      if (ti[0] === bestI && bestI < n) {
        for (let q: u32 = 0; q < 7; q++) {
          tv[q] = tv[q + 1];
          ti[q] = ti[q + 1];
        }
        tv[7] = none;
        ti[7] = n;
      }
      workgroupBarrier();
    }
  } else {
    // more than eight: k rounds over the row, each the largest (value, lowest index) strictly after
    // the previous round's in that order
    let prevV: f32 = 3.4e38;
    let prevI: u32 = 0;
    for (let j: u32 = 0; j < top; j++) {
      let best: f32 = -3.4e38;
      let at: u32 = n;
      for (let i: u32 = id.local; i < n; i += id.size) {
        const v: f32 = z[row + i];
        if ((v < prevV || (v === prevV && i > prevI)) && (v > best || at === n)) {
          best = v;
          at = i;
        }
      }
      keepLargest(a, ix, best, at, id);
      prevV = a[0];
      prevI = ix[0];
      if (id.local === 0) {
        out[w + 3 + j] = toF32(prevI);
        out[w + 3 + top + j] = Math.exp(prevV - lse);
      }
      workgroupBarrier();
    }
  }
}

/** a[0] = log Σ exp(z[at..at+n)) over the workgroup (the max taken out first, so no term overflows). */
/** @inline */
export function logSumExp(z: In<f32>, at: u32, n: u32, a: Out<f32>, id: Invocation): void {
  let m: f32 = -3.4e38;
  for (let i: u32 = id.local; i < n; i += id.size) {
    m = Math.max(m, z[at + i]);
  }
  a[id.local] = m;
  workgroupMax(a, id);
  const mx: f32 = a[0];
  workgroupBarrier();
  let s: f32 = 0;
  for (let i: u32 = id.local; i < n; i += id.size) {
    s += Math.exp(z[at + i] - mx);
  }
  a[id.local] = s;
  workgroupSum(a, id);
  if (id.local === 0) {
    a[0] = mx + Math.log(a[0]);
  }
  workgroupBarrier();
}
