// Sparse autoencoder encoder over a batch of rows: pre = (x − b_dec)·W_enc + b_enc (b_dec taken off the
// input, SAELens's apply_b_dec_to_input), then the activation: ReLU, or TopK (the k largest
// pre-activations of a row, ReLU'd; ties go to the lower index). W_enc is [d_in, d_sae] as SAELens
// stores it. Outputs: pre [B, d_sae] (hook_sae_acts_pre), acts [B, d_sae] (hook_sae_acts_post), and for
// TopK the chosen latents [B, k] in the order chosen.
import { type Invocation, type In, type Out, type Spec, type u32, f32, sharedF32, sharedU32, storageBarrier } from '../compiler/kernel/dsl.js';
import { keepLargest } from './argmax.js';
import { ShapeError } from '../compiler/errors.js';
import { matvec } from './matvec.js';
import { whereNonzero } from './where_nonzero.js';
import { type Op, expectDtype, expectShape, overRows, rowsOf } from './op.js';

export type SaeArch = 'relu' | 'topk';
export interface SaeShape { rows: number; dIn: number; dSae: number; arch: SaeArch; k: number }

/** float64 reference: pre-activations, activations and (TopK) the chosen latents of each row. */
export function saeEncodeReference(x: ArrayLike<number>, wEnc: ArrayLike<number>, bEnc: ArrayLike<number>, bDec: ArrayLike<number>, s: SaeShape) {
  const { rows, dIn, dSae, arch, k } = s;
  const pre = new Float64Array(rows * dSae), acts = new Float64Array(rows * dSae), chosen = new Int32Array(rows * k);
  for (let b = 0; b < rows; b++) {
    for (let j = 0; j < dSae; j++) {
      let v = bEnc[j]!;
      for (let i = 0; i < dIn; i++) v += (x[b * dIn + i]! - bDec[i]!) * wEnc[i * dSae + j]!;
      pre[b * dSae + j] = v;
    }
    if (arch === 'relu') {
      for (let j = 0; j < dSae; j++) acts[b * dSae + j] = Math.max(pre[b * dSae + j]!, 0);
      continue;
    }
    const order = Array.from({ length: dSae }, (_, j) => j).sort((p, q) => pre[b * dSae + q]! - pre[b * dSae + p]! || p - q);
    for (let t = 0; t < k; t++) {
      chosen[b * k + t] = order[t]!;
      acts[b * dSae + order[t]!] = Math.max(pre[b * dSae + order[t]!]!, 0);
    }
  }
  return { pre, acts, chosen };
}

/** `clean`: the error term's own copy of the encoder (ops/sae_splice.ts): the same values, another node */
export type SaeEncodeAttr = { arch: SaeArch; k: number; part: 'pre' | 'acts'; clean?: boolean };

/** The encoder as a graph op (an SAE spliced in at a hook: ops/sae_splice.ts), one row a position:
 *  `part` says which of its values the node is, pre-activations or activations (a node each, the
 *  first computed only when tapped). Sources: [x (scaled), W_enc, b_enc, b_dec], all f32. */
export const saeEncode: Op<SaeEncodeAttr> = overRows<SaeEncodeAttr>({
  name: 'sae_encode',
  infer([x, wEnc, bEnc, bDec], { arch, k }) {
    const dIn = x!.shape[0]!, dSae = wEnc!.shape[1] ?? 0;
    expectShape(x!, [dIn], 'the SAE input');
    expectShape(wEnc!, [dIn, dSae], 'W_enc');
    expectShape(bEnc!, [dSae], 'b_enc');
    expectShape(bDec!, [dIn], 'b_dec');
    for (const [t, what] of [[x, 'the SAE input'], [wEnc, 'W_enc'], [bEnc, 'b_enc'], [bDec, 'b_dec']] as const) expectDtype(t!, ['f32'], what);
    if (arch === 'topk' && !(Number.isInteger(k) && k >= 1 && k <= dSae)) throw new ShapeError(`TopK's k must be 1..${dSae}, got ${k}`);
    return { shape: [dSae], dtype: 'f32' };
  },
  reference([x, wEnc, bEnc, bDec], { arch, k, part }, s) {
    const [dIn, dSae] = s.srcs[1] as [number, number];
    const r = saeEncodeReference(x!, wEnc!, bEnc!, bDec!, { rows: 1, dIn, dSae, arch, k });
    return part === 'pre' ? r.pre : r.acts;
  },
  // acts = f(x·W_enc + ..) with f's slope 1 on the kept latents, 0 elsewhere: dx = W_enc·(dy where kept)
  // (W_enc [d_in, d_sae] as a matrix product's weight; the SAE's own tensors get none). The
  // pre-activations feed nothing downstream: no rule, so a gradient asked there says none reaches it.
  vjp: (n, dy, g) => (n.attr.part === 'acts' ? [g.apply(matvec, [n.srcs[1]!, g.apply(whereNonzero, [dy, n], {})], {}), undefined, undefined, undefined] : [undefined, undefined, undefined, undefined]),
  lower(n, ctx) {
    const [x, wEnc, bEnc, bDec] = n.srcs;
    const { arch, k, part } = n.attr as SaeEncodeAttr;
    const rows = rowsOf(x!.shape), [dIn, dSae] = wEnc!.shape as [number, number];
    const value = (p: 'pre' | 'acts') => (part === p ? ctx.buf(n) : ctx.scratch(n, p, rows * dSae));
    ctx.dispatch('saeEncodeKernel', { x: ctx.buf(x!), wEnc: ctx.buf(wEnc!), bEnc: ctx.buf(bEnc!), bDec: ctx.buf(bDec!), pre: value('pre'), acts: value('acts'),
      chosen: ctx.scratch(n, 'chosen', rows * Math.max(1, k)) }, { dIn, dSae, k: arch === 'topk' ? k : 0, topk: arch === 'topk' ? 1 : 0 }, rows);
  },
}, { rows: () => [0] });

/** A workgroup per row: each invocation computes a stride of latents; TopK then picks k rounds of the
 *  workgroup's largest not yet chosen (k is small: 8..64). */
/** @kernel @workgroupSize 256 */
export function saeEncodeKernel(id: Invocation, x: In<f32>, wEnc: In<f32>, bEnc: In<f32>, bDec: In<f32>, pre: Out<f32>, acts: Out<f32>, chosen: Out<u32>,
  dIn: u32, dSae: u32, k: u32, topk: Spec<u32>) {
  const vals = sharedF32(256);
  const idxs = sharedU32(256);
  const row: u32 = id.group;
  for (let j: u32 = id.local; j < dSae; j += id.size) {
    let v: f32 = bEnc[j];
    for (let i: u32 = 0; i < dIn; i++) {
      v += (x[row * dIn + i] - bDec[i]) * wEnc[i * dSae + j];
    }
    pre[row * dSae + j] = v;
    acts[row * dSae + j] = topk === 1 ? 0 : Math.max(v, 0);
  }
  if (topk === 1) {
    storageBarrier();
    for (let t: u32 = 0; t < k; t++) {
      let best: f32 = -3.4e38;
      let at: u32 = 0;
      for (let j: u32 = id.local; j < dSae; j += id.size) {
        let taken: u32 = 0;
        for (let u: u32 = 0; u < t; u++) {
          if (chosen[row * k + u] === j) {
            taken = 1;
          }
        }
        const v: f32 = pre[row * dSae + j];
        if (taken === 0 && v > best) {
          best = v;
          at = j;
        }
      }
      keepLargest(vals, idxs, best, at, id);
      if (id.local === 0) {
        chosen[row * k + t] = idxs[0];
        acts[row * dSae + idxs[0]] = Math.max(vals[0], 0);
      }
      storageBarrier();
    }
  }
}

/** float64 reference of the auxiliary TopK (aux-K, for dead latents): the kAux largest pre-activations
 *  among the latents marked dead, ReLU'd. */
export function saeAuxReference(pre: ArrayLike<number>, dead: ArrayLike<boolean>, rows: number, dSae: number, kAux: number): Float64Array {
  const acts = new Float64Array(rows * dSae);
  for (let b = 0; b < rows; b++) {
    const order = Array.from({ length: dSae }, (_, j) => j).filter((j) => dead[j]).sort((p, q) => pre[b * dSae + q]! - pre[b * dSae + p]! || p - q);
    for (const j of order.slice(0, kAux)) acts[b * dSae + j] = Math.max(pre[b * dSae + j]!, 0);
  }
  return acts;
}

/** aux-K's selection: a workgroup per row picks, in kAux rounds, the largest pre-activation among the
 *  dead latents (those that fired on none of the last `window` tokens: since[j] >= window) not yet
 *  chosen; a round with none left writes dSae (none). */
/** @kernel @workgroupSize 256 */
export function saeAuxKernel(id: Invocation, pre: In<f32>, since: In<f32>, actsAux: Out<f32>, chosenAux: Out<u32>, dSae: u32, kAux: u32, window: f32) {
  const vals = sharedF32(256);
  const idxs = sharedU32(256);
  const row: u32 = id.group;
  for (let j: u32 = id.local; j < dSae; j += id.size) {
    actsAux[row * dSae + j] = 0;
  }
  storageBarrier();
  for (let t: u32 = 0; t < kAux; t++) {
    let best: f32 = -3.4e38;
    let at: u32 = dSae;
    for (let j: u32 = id.local; j < dSae; j += id.size) {
      let taken: u32 = 0;
      for (let u: u32 = 0; u < t; u++) {
        if (chosenAux[row * kAux + u] === j) {
          taken = 1;
        }
      }
      const v: f32 = pre[row * dSae + j];
      if (taken === 0 && since[j] >= window && v > best) {
        best = v;
        at = j;
      }
    }
    keepLargest(vals, idxs, best, at, id);
    if (id.local === 0) {
      const j: u32 = idxs[0];
      chosenAux[row * kAux + t] = j;
      if (j < dSae) {
        actsAux[row * dSae + j] = Math.max(vals[0], 0);
      }
    }
    storageBarrier();
  }
}

/** Tokens since each latent last fired, after this batch: an invocation per latent. */
/** @kernel @workgroupSize 64 */
export function saeSinceKernel(id: Invocation, acts: In<f32>, since: Out<f32>, rows: u32, dSae: u32) {
  const j: u32 = id.global;
  if (j >= dSae) {
    return;
  }
  let fired: u32 = 0;
  for (let b: u32 = 0; b < rows; b++) {
    if (acts[b * dSae + j] > 0) {
      fired = 1;
    }
  }
  since[j] = fired === 1 ? 0 : since[j] + f32(rows);
}
