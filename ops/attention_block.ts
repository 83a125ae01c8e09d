// The causal attention of a prefill block (ops/attention.ts lowers to it where a plan's rows are
// several positions of a sequence). attentionShortKernel gives each (query row, head) a workgroup of
// its own that reads every key of its row from memory: a 256-position block of the 1B shape read its
// KV cache 128 times over (32 heads of 4 sharing a KV head, each row the keys of the row before and
// one more) and spent 137 µs a layer on an H100 (run 2026-12-07-h100-j), L2-bound. Here a workgroup
// takes 16 query vectors that share one KV head (consecutive (row, head) pairs of the KV head's group:
// 4 rows × 4 heads in the 1B shape) and walks their keys once, 64 at a time, flash-attention style.
//
// A row's result is the same bits whichever block it runs in and whichever vectors share its
// workgroup: its scores, its running max and sum and its weighted values are each made by the same
// invocation lanes in the same order, keys past the row's position count exactly 0, and tiles past
// them leave its sums as they were (×1, +0).
import { type Invocation, type f32x4, type Spec, type In, type Out, type f32, type u32, idiv, localF32, sharedF32, workgroupBarrier } from '../compiler/kernel/dsl.js';

/** query vectors a workgroup takes: the kernel's layout is built on 16 (its 4 × 4 score lanes, 16
 *  softmax lanes a vector, the [16][..] tiles), so this names that number for the lowering, not a knob */
export const BLOCK_QUERIES = 16;
/** the widest head (the query tile is 16 × 128 floats of workgroup memory) */
export const BLOCK_MAX_HEAD = 128;

/** Attention of `tiles` tiles of 16 query vectors per (sequence, KV head), over keys `chunk` at a time
 *  (`splits` chunks; a workgroup per tile and chunk). `direct` 1: one chunk holds every key, the
 *  result goes to `out` [row, nHeads · headSize]; 0: each chunk's unnormalised sums, max and sum go to
 *  `out` as flashAttentionKernel leaves them ([row · nHeads + head][split][headSize + 2]), for
 *  flashCombineKernel. Within a tile of 64 keys: the scores (invocation i: key i % 64 for the four
 *  query vectors 4·(i / 64) ..), each vector's max and sum (16 invocations a vector, four keys each),
 *  then the weighted values (invocation i: four vectors × four lanes of the head, every `klanes`-th
 *  key; the key lanes' sums are added in order at the end). */
/** @kernel @workgroupSize 256 */
export function attentionBlockKernel(id: Invocation, q: In<f32x4>, kc: In<f32x4>, vc: In<f32x4>, pos: In<u32>, out: Out<f32>,
  headSize: Spec<u32>, nHeads: u32, kvDim: u32, group: u32, seqLen: u32, context: u32, scale: f32, tiles: u32, nKv: u32, chunk: u32, splits: u32, direct: Spec<u32>) {
  const qs = sharedF32(2048); // the tile's query vectors [16][headSize]; at the end, the summed values
  const ss = sharedF32(1024); // scores, then probabilities [16][64]
  const red = sharedF32(256);
  const mx = sharedF32(16); // each vector's running max
  const sm = sharedF32(16); // .. and sum of exp(score − max)
  const cr = sharedF32(16); // this key tile's correction of the sums, exp(old max − new max)
  const split: u32 = id.group % splits;
  const rest: u32 = idiv(id.group, splits);
  const tile: u32 = rest % tiles;
  const kh: u32 = idiv(rest, tiles) % nKv;
  const sq: u32 = idiv(idiv(rest, tiles), nKv);
  const pairs: u32 = seqLen * group; // (row, head) pairs of this KV head in a sequence
  const quads: u32 = headSize >> 2;
  const ko: u32 = sq * context * kvDim + kh * headSize;
  // the last row of the tile sees the most keys; this chunk's keys are first .. last
  const lastRow: u32 = idiv(Math.min(tile * 16 + 15, pairs - 1), group);
  const first: u32 = split * chunk;
  const last: u32 = Math.min(pos[0] + lastRow, first + chunk - 1);
  // query vector v of the tile: pair tile·16 + v (past the sequence's pairs: its last, not stored)
  for (let e: u32 = id.local; e < 16 * headSize; e += 256) {
    const pr: u32 = Math.min(tile * 16 + idiv(e, headSize), pairs - 1);
    const r: u32 = sq * seqLen + idiv(pr, group);
    const h: u32 = kh * group + pr % group;
    const v: f32x4 = q[((r * nHeads + h) * headSize + (e % headSize)) >> 2];
    const c: u32 = e & 3;
    qs[e] = c === 0 ? v.x : c === 1 ? v.y : c === 2 ? v.z : v.w;
  }
  if (id.local < 16) {
    mx[id.local] = -3.4e38;
    sm[id.local] = 0;
  }
  // the weighted values: invocation i takes vectors 4·vq .. +3, lanes 4·dq .. +3, keys kl, kl + klanes, ..
  const klanes: u32 = idiv(256, quads * 4);
  const kl: u32 = idiv(id.local, quads * 4);
  const vq: u32 = idiv(id.local % (quads * 4), quads);
  const dq: u32 = id.local % quads;
  const acc = localF32(16); // [vector][lane]
  // the scores: invocation i takes key i % 64 of the tile for vectors 4·sv .. +3
  const kk: u32 = id.local & 63;
  const sv: u32 = id.local >> 6;
  const dots = localF32(4);
  // a round's four 4-lane loads (of keys, then of values)
  const kx = localF32(4);
  const ky = localF32(4);
  const kz = localF32(4);
  const kw = localF32(4);
  // the softmax: vector id.local / 16, keys (id.local % 16) + 16j
  const xv: u32 = id.local >> 4;
  const xl: u32 = id.local & 15;
  workgroupBarrier();
  for (let t0: u32 = first; t0 <= last; t0 += 64) {
    const t: u32 = Math.min(t0 + kk, last);
    const k4: u32 = (t * kvDim + ko) >> 2;
    for (let j: u32 = 0; j < 4; j++) {
      dots[j] = 0;
    }
    // four lanes of the key's row a round, loaded before they are used: four loads in flight
    for (let d0: u32 = 0; d0 < quads; d0 += 4) {
      for (let i: u32 = 0; i < 4; i++) {
        const kv: f32x4 = kc[k4 + Math.min(d0 + i, quads - 1)];
        kx[i] = kv.x;
        ky[i] = kv.y;
        kz[i] = kv.z;
        kw[i] = kv.w;
      }
      for (let i: u32 = 0; i < 4; i++) {
        if (d0 + i < quads) {
          for (let j: u32 = 0; j < 4; j++) {
            const b: u32 = (4 * sv + j) * headSize + 4 * (d0 + i);
            dots[j] += qs[b] * kx[i] + qs[b + 1] * ky[i] + qs[b + 2] * kz[i] + qs[b + 3] * kw[i];
          }
        }
      }
    }
    for (let j: u32 = 0; j < 4; j++) {
      // a key past the vector's position (or past the chunk) scores -3.4e38: probability 0
      const p: u32 = pos[0] + idiv(Math.min(tile * 16 + 4 * sv + j, pairs - 1), group);
      ss[(4 * sv + j) * 64 + kk] = t0 + kk <= Math.min(p, last) ? dots[j] * scale : -3.4e38;
    }
    workgroupBarrier();
    let best: f32 = -3.4e38;
    for (let j: u32 = 0; j < 4; j++) {
      best = Math.max(best, ss[xv * 64 + xl + 16 * j]);
    }
    red[id.local] = best;
    workgroupBarrier();
    if (xl === 0) {
      let top: f32 = mx[xv];
      for (let j: u32 = 0; j < 16; j++) {
        top = Math.max(top, red[xv * 16 + j]);
      }
      cr[xv] = Math.exp(mx[xv] - top);
      mx[xv] = top;
    }
    workgroupBarrier();
    let part: f32 = 0;
    for (let j: u32 = 0; j < 4; j++) {
      const s: f32 = ss[xv * 64 + xl + 16 * j];
      const e: f32 = s > -3e38 ? Math.exp(s - mx[xv]) : 0;
      ss[xv * 64 + xl + 16 * j] = e;
      part += e;
    }
    red[id.local] = part;
    workgroupBarrier();
    if (xl === 0) {
      let total: f32 = sm[xv] * cr[xv];
      for (let j: u32 = 0; j < 16; j++) {
        total += red[xv * 16 + j];
      }
      sm[xv] = total;
    }
    if (kl < klanes) {
      for (let j: u32 = 0; j < 4; j++) {
        const f: f32 = cr[4 * vq + j];
        for (let c: u32 = 0; c < 4; c++) {
          acc[4 * j + c] *= f;
        }
      }
      // four keys a round (kl + klanes·i, in order), their values loaded before they are used
      for (let k0: u32 = kl; k0 < 64; k0 += 4 * klanes) {
        for (let i: u32 = 0; i < 4; i++) {
          const v: f32x4 = vc[((Math.min(t0 + Math.min(k0 + klanes * i, 63), last) * kvDim + ko) >> 2) + dq];
          kx[i] = v.x;
          ky[i] = v.y;
          kz[i] = v.z;
          kw[i] = v.w;
        }
        for (let i: u32 = 0; i < 4; i++) {
          if (k0 + klanes * i < 64) {
            for (let j: u32 = 0; j < 4; j++) {
              const w: f32 = ss[(4 * vq + j) * 64 + k0 + klanes * i];
              acc[4 * j] += w * kx[i];
              acc[4 * j + 1] += w * ky[i];
              acc[4 * j + 2] += w * kz[i];
              acc[4 * j + 3] += w * kw[i];
            }
          }
        }
      }
    }
    workgroupBarrier();
  }
  // the key lanes' sums, added in order into the query tile's memory
  for (let l: u32 = 0; l < klanes; l++) {
    if (kl === l) {
      for (let j: u32 = 0; j < 4; j++) {
        for (let c: u32 = 0; c < 4; c++) {
          const at: u32 = (4 * vq + j) * headSize + 4 * dq + c;
          qs[at] = l === 0 ? acc[4 * j + c] : qs[at] + acc[4 * j + c];
        }
      }
    }
    workgroupBarrier();
  }
  for (let e: u32 = id.local; e < 16 * headSize; e += 256) {
    const v: u32 = idiv(e, headSize);
    const pr: u32 = tile * 16 + v;
    if (pr < pairs) {
      const rh: u32 = (sq * seqLen + idiv(pr, group)) * nHeads + kh * group + pr % group;
      if (direct === 1) {
        out[rh * headSize + e % headSize] = qs[e] / sm[v];
      } else {
        const o: u32 = (rh * splits + split) * (headSize + 2);
        out[o + e % headSize] = qs[e];
        if (e % headSize === 0) {
          out[o + headSize] = mx[v];
          out[o + headSize + 1] = sm[v];
        }
      }
    }
  }
}
