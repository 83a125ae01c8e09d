// Fusion, as rewrite rules: each names a pattern in the graph and what replaces it. A rule returns
// the replacement node, or undefined when it does not match. They run until none fires (rewrite.ts).
import type { Node } from '../compiler/ir/op.js';
import type { Rule, RuleCtx } from '../compiler/rewrite.js';
import { epilogueAttr, epilogueUse, epiloguesOf, sameEpilogues, storeCount, type EpilogueName } from './epilogues.js';
import { matvec, type MatvecAttr } from './matvec.js';
import { attention, attentionGrad, type AttentionAttr, type AttentionGradAttr } from './attention.js';
import { ffnGateUp } from './ffn_gate_up.js';
import { kvWrite } from './kv_write.js';
import { QKV_BIAS, qkvMatvec } from './qkv_matvec.js';
import { qkvRopeKv } from './qkv_rope_kv.js';
import { rmsnorm } from './rmsnorm.js';
import { rope } from './rope.js';
import { ropeKv, type RopeKvAttr } from './rope_kv.js';
import { slice } from './slice.js';
import { stored } from './stored.js';

const is = (n: Node | undefined, name: string): n is Node => n?.op.name === name;
const mv = (n: Node) => n.attr as MatvecAttr;
/** elements per position (the last dimension; over several positions there is a leading [T]) */
const width = (n: Node) => n.shape[n.shape.length - 1]!;
/** a matvec with nothing fused into it yet */
const plainMatvec = (n: Node | undefined): n is Node => is(n, 'matvec') && !mv(n).norm && epiloguesOf(n).length === 0;
/** a matvec whose only fusion is the norm prologue */
const normedMatvec = (n: Node | undefined): n is Node => is(n, 'matvec') && mv(n).norm === true && epiloguesOf(n).length === 0;
const sameInput = (a: Node, b: Node) => a.srcs[1] === b.srcs[1] && a.srcs[2] === b.srcs[2] && mv(a).eps === mv(b).eps;
/** a normed matvec whose only epilogue is a bias read at `offset` (Qwen2's q, k, v) */
const biasedMatvec = (n: Node | undefined, offset: number): n is Node => is(n, 'matvec') && mv(n).norm === true && sameEpilogues(epiloguesOf(n), [epilogueUse('bias', offset)]);
/** A layer's attention as the model writes it: attention(rope(q), kv_write(kc, rope(k), pos),
 *  kv_write(vc, v, pos), pos). Returns its parts, or undefined if `n` is not that shape. */
function attentionParts(n: Node) {
  if (!is(n, 'attention')) return undefined;
  const [rq, kw, vw, pos] = n.srcs;
  if (!is(rq, 'rope') || !is(kw, 'kv_write') || !is(vw, 'kv_write') || !is(kw.srcs[1], 'rope')) return undefined;
  const rk = kw.srcs[1];
  return { rq, rk, kw, vw, pos: pos!, q: rq.srcs[0]!, k: rk.srcs[0]!, v: vw.srcs[1]! };
}

/** Qwen3's per-head norm: rmsnorm(x, w) with w one head wide. Its parts, or undefined. */
function headNorm(n: Node | undefined) {
  if (!is(n, 'rmsnorm') || width(n.srcs[1]!) === width(n)) return undefined;
  return { x: n.srcs[0]!, w: n.srcs[1]!, eps: n.attr.eps as number };
}
/** q's and k's head norms (both or neither, one eps, no other reader of the normed values): their
 *  weights and eps; `false` when they do not pair up. */
function headNorms(q: Node, k: Node, c: RuleCtx) {
  const [nq, nk] = [headNorm(q), headNorm(k)];
  if (!nq && !nk) return undefined;
  if (!nq || !nk || nq.eps !== nk.eps || c.uses(q) > 1 || c.uses(k) > 1) return false;
  return { qn: nq.w, kn: nk.w, eps: nq.eps, q: nq.x, k: nk.x };
}

/** whether `x` reads `m`, directly or through other nodes */
function dependsOn(x: Node, m: Node): boolean {
  const seen = new Set<Node>();
  const walk = (n: Node): boolean => n === m || (!seen.has(n) && (seen.add(n), n.srcs.some(walk)));
  return walk(x);
}

/** matvec binds W, x, nw, out and one buffer per added vector or store: 6 sources + out leave one spare */
const MAX_MATVEC_SOURCES = 6;

/** `n` with one more epilogue; a tap on `n` itself (another reader) becomes a store just before it,
 *  and those readers read the stored value. Undefined when `n` cannot take it. */
function withEpilogue(n: Node, c: RuleCtx, name: EpilogueName, srcs: Node[], value = 0): Node | undefined {
  const a = mv(n);
  const tapped = c.uses(n) > 1;
  // a node that already stores is read by its `stored` nodes; fusing further would orphan them
  if (storeCount(epiloguesOf(n)) > 0 || c.aliased(n)) return undefined;
  // W, x, out and each vector or store bind one storage buffer: keep within WebGPU's default 8
  if (n.srcs.length + srcs.length + (tapped ? 1 : 0) > MAX_MATVEC_SOURCES) return undefined;
  const uses = [...epiloguesOf(n), ...(tapped ? [epilogueUse('store')] : []), epilogueUse(name, value)];
  const f = c.g.apply(matvec, [...n.srcs, ...srcs], { ...a, epilogues: uses });
  if (tapped) c.alias(n, storedOf(c, f, 0, n));
  return f;
}
/** the value `f`'s k-th store writes, standing in for `was` */
const storedOf = (c: RuleCtx, f: Node, k: number, was: Node) => c.g.apply(stored, [f], { n: k, shape: was.shape });

export const RULES: readonly Rule[] = [
  {
    name: 'norm_into_matvec', why: 'RMSNorm folded into the matvecs that read it (the seed reduces it in separate kernels)',
    // matvec(W, rmsnorm(x, nw)) -> matvec{norm}(W, x, nw)
    rewrite: (n, c) => (plainMatvec(n) && is(n.srcs[1], 'rmsnorm') && width(n.srcs[1].srcs[1]!) === width(n.srcs[1])
      ? c.g.apply(matvec, [n.srcs[0]!, n.srcs[1].srcs[0]!, n.srcs[1].srcs[1]!], { norm: true, eps: n.srcs[1].attr.eps as number })
      : undefined),
  },
  {
    name: 'qkv', why: 'fusedQKVMatmulX: the Q, K and V projections of one normed vector in one kernel',
    // attention(rope(Q), kv_write(kc, rope(K), pos), kv_write(vc, V, pos), pos), Q/K/V normed matvecs of one x
    //   -> the same with Q, K, V slices of qkv_matvec(x, nw, Wq, Wk, Wv)
    rewrite(n, c) {
      const a = attentionParts(n);
      if (!a) return undefined;
      const { rq, rk, kw, vw, pos, v } = a;
      // Qwen3: q and k are head-normed projections; the norms stay on the slices, for rope_kv to take
      const norms = headNorms(a.q, a.k, c);
      if (norms === false) return undefined;
      const [q, k] = norms ? [norms.q, norms.k] : [a.q, a.k];
      const [dq, dk] = [width(q), width(k)];
      // all three plain, or all three with biases from one [q; k; v] vector: the kernel adds it at its store
      const plain = normedMatvec(q) && normedMatvec(k) && normedMatvec(v);
      const biased = biasedMatvec(q, 0) && biasedMatvec(k, dq) && biasedMatvec(v, dq + dk) && q.srcs[3] === k.srcs[3] && q.srcs[3] === v.srcs[3];
      if ((!plain && !biased) || !sameInput(q, k) || !sameInput(q, v)) return undefined;
      const qkv = c.g.apply(qkvMatvec, [q.srcs[1]!, q.srcs[2]!, q.srcs[0]!, k.srcs[0]!, v.srcs[0]!, ...(biased ? [q.srcs[3]!] : [])],
        { eps: mv(q).eps!, ...(biased ? { epilogues: QKV_BIAS } : {}) });
      const part = (offset: number, length: number) => c.g.apply(slice, [qkv], { offset, length });
      const ropeOf = (r: Node, x: Node) => c.g.apply(rope, [x, r.srcs[1]!, r.srcs[2]!], r.attr);
      // (the head norms, if any, stay on the slices; their readers read the new norms)
      const normed = (x: Node, w: 'qn' | 'kn', was: Node) => {
        if (!norms) return x;
        const m = c.g.apply(rmsnorm, [x, norms[w]], { eps: norms.eps });
        c.alias(was, m);
        return m;
      };
      const [rq2, rk2] = [ropeOf(rq, normed(part(0, dq), 'qn', a.q)), ropeOf(rk, normed(part(dq, dk), 'kn', a.k))];
      const kw2 = c.g.apply(kvWrite, [kw.srcs[0]!, rk2, kw.srcs[2]!], {});
      const vw2 = c.g.apply(kvWrite, [vw.srcs[0]!, part(dq + dk, width(v)), vw.srcs[2]!], {});
      // taps on the projections read slices of the fused output
      [[q, part(0, dq)], [k, part(dq, dk)], [v, part(dq + dk, width(v))], [rq, rq2], [rk, rk2], [kw, kw2], [vw, vw2]].forEach(([a, b]) => c.alias(a!, b!));
      return c.g.apply(attention, [rq2, kw2, vw2, pos], n.attr);
    },
  },
  {
    name: 'rope_kv', why: 'ropeRotationWithCacheCopy: RoPE on q and k with the KV-cache write, reading the position buffer',
    // attention(rope(slice(QKV)), kv_write(kc, rope(slice(QKV)), pos), kv_write(vc, slice(QKV), pos), pos)
    //   -> attention(rope_kv(QKV, pos, table, kc, vc), kc, vc, pos)
    rewrite(n, c) {
      const a = attentionParts(n);
      if (!a) return undefined;
      const { rq, rk, kw, vw, pos, v: sv } = a;
      const norms = headNorms(a.q, a.k, c);
      if (norms === false) return undefined;
      const [sq, sk] = norms ? [norms.q, norms.k] : [a.q, a.k];
      if (!is(sq, 'slice') || !is(sk, 'slice') || !is(sv, 'slice')) return undefined;
      const qkv = sq.srcs[0]!;
      const [dq, dk] = [width(sq), width(sk)];
      if (!is(qkv, 'qkv_matvec') || sk.srcs[0] !== qkv || sv.srcs[0] !== qkv || sq.attr.offset !== 0 || sk.attr.offset !== dq || sv.attr.offset !== dq + dk) return undefined;
      if (rq.srcs[2] !== rk.srcs[2] || rq.attr.headSize !== rk.attr.headSize || [rq.srcs[1], kw.srcs[2], vw.srcs[2]].some((p) => p !== pos)) return undefined;
      const [kc, vc] = [kw.srcs[0]!, vw.srcs[0]!];
      // a tap on the rotated k (which goes only to the cache) is a store in the kernel
      const tapK = c.uses(rk) > 1;
      const q = c.g.apply(ropeKv, [qkv, pos!, rq.srcs[2]!, kc, vc, ...(norms ? [norms.qn, norms.kn] : [])],
        { headSize: rq.attr.headSize as number, qDim: dq, kvDim: dk, ...(tapK ? { epilogues: [epilogueUse('store', 0, 'k')] } : {}), ...(norms ? { normEps: norms.eps } : {}) });
      if (tapK) c.alias(rk, storedOf(c, q, 0, rk));
      // readers of the rotated q read rope_kv's output; readers of the written caches (the attention
      // pattern) read the caches, ordered after the write because they read that q too
      c.alias(rq, q); c.alias(kw, kc); c.alias(vw, vc);
      return c.g.apply(attention, [q, kc, vc, pos!], n.attr);
    },
  },
  {
    name: 'qkv_rope_kv', why: 'the QKV projections with RoPE and the KV-cache write at their store: a RoPE pair is two adjacent rows, computed in one workgroup',
    // rope_kv(qkv_matvec(x, nw, Wq, Wk, Wv), pos, table, kc, vc) -> qkv_rope_kv(x, nw, Wq, Wk, Wv, pos, table, kc, vc)
    rewrite(n, c) {
      const qkv = n.srcs[0];
      // taps on q, k or v read the unrotated projections: then they stay apart
      // (a head's norm needs all its rows, which the fused kernel spreads over workgroups)
      if (!is(n, 'rope_kv') || n.attr.normEps !== undefined || !is(qkv, 'qkv_matvec') || c.uses(qkv) > 1 || c.aliased(qkv)) return undefined;
      // sources: the projections', rope_kv's, then the bias (if any); epilogues: the bias's, then the k tap's
      const epilogues = [...epiloguesOf(qkv), ...epiloguesOf(n)];
      return c.g.apply(qkvRopeKv, [...qkv.srcs.slice(0, 5), ...n.srcs.slice(1), ...qkv.srcs.slice(5)], { ...(n.attr as RopeKvAttr), eps: qkv.attr.eps as number, ...epilogueAttr(epilogues) });
    },
  },
  {
    name: 'flash_attention', why: 'processHeadsFlashAttention: one pass over the cache with an online softmax',
    rewrite: (n, c) => (is(n, 'attention') && !n.attr.flash ? c.g.apply(attention, n.srcs, { ...(n.attr as AttentionAttr), flash: true }) : undefined),
  },
  {
    name: 'attention_grad_rows', why: "a backward's key and value gradients for the block's own rows (what kv_write's backward reads), not the whole cache's",
    // kv_rows(attention_grad{of k|v}(..), pos) -> attention_grad{of, rows}(..) when nothing else reads the cache's gradient
    rewrite(n, c) {
      const [dc, pos] = n.srcs;
      if (!is(n, 'kv_rows') || !is(dc, 'attention_grad') || dc.attr.of === 'q' || dc.attr.rows || dc.srcs[3] !== pos || c.uses(dc) > 1) return undefined;
      return c.g.apply(attentionGrad, dc.srcs, { ...(dc.attr as AttentionGradAttr), rows: true });
    },
  },
  {
    name: 'gate_up', why: 'fusedRmsNormFFNGateUp: the gate and up projections of one normed vector, with SiLU·mul',
    // silu_mul(matvec{norm}(Wg, x, nw), matvec{norm}(Wu, x, nw)) -> ffn_gate_up(x, nw, Wg, Wu)
    rewrite(n, c) {
      const [g, u] = n.srcs;
      if (!is(n, 'silu_mul') || !normedMatvec(g) || !normedMatvec(u) || !sameInput(g, u)) return undefined;
      // taps on the projections (mlp.hook_pre, hook_pre_linear) are stores in the kernel
      const taps = [[g, 'gate'], [u, 'up']].filter(([m]) => c.uses(m as Node) > 1) as [Node, string][];
      const f = c.g.apply(ffnGateUp, [g.srcs[1]!, g.srcs[2]!, g.srcs[0]!, u.srcs[0]!],
        { eps: mv(g).eps!, ...epilogueAttr(taps.map(([, h]) => epilogueUse('store', 0, h))) });
      taps.forEach(([m], k) => c.alias(m, storedOf(c, f, k, m)));
      return f;
    },
  },
  {
    name: 'add_into_matvec', why: 'matrixVectorGenericWithResidual: a residual (or bias) add in the matvec epilogue',
    // add(y, matvec(...)) or add(matvec(...), y) -> matvec{epilogues += add}(..., y)
    rewrite(n, c) {
      if (!is(n, 'add')) return undefined;
      const [a, b] = n.srcs;
      // the matvec must not feed the other operand (that would be a cycle); prefer one no one else reads
      // (a vector added to every row of a block is not an epilogue: the epilogue reads y at the output index)
      const ok = ([m, y]: Node[]) => is(m, 'matvec') && y!.shape.join() === m!.shape.join() && !dependsOn(y!, m!);
      const options = [[a!, b!], [b!, a!]].filter(ok).sort(([m1], [m2]) => Number(c.uses(m1!) > 1) - Number(c.uses(m2!) > 1));
      const [m, y] = options[0] ?? [];
      return m ? withEpilogue(m, c, 'add', [y!]) : undefined;
    },
  },
  {
    name: 'add_into_grad', why: "a backward's sum of two gradients (a value read twice: the residual stream, the normed input of q, k and v or of gate and up) made by the kernel that makes one of them",
    // add(y, matvec_t(W, dy)) -> matvec_t{acc}(W, dy, y); add(y, rmsnorm_grad(x, w, dy)) -> rmsnorm_grad{acc}(x, w, dy, y) (either order)
    rewrite(n, c) {
      if (!is(n, 'add')) return undefined;
      const [a, b] = n.srcs;
      for (const [m, y] of [[a!, b!], [b!, a!]])
        if ((is(m, 'matvec_t') || is(m, 'rmsnorm_grad')) && !m.attr.acc && c.uses(m) === 1 && y.shape.join() === m.shape.join() && !dependsOn(y, m))
          return c.g.apply(m.op, [...m.srcs, y], { ...m.attr, acc: true });
      return undefined;
    },
  },
  {
    name: 'bias_into_matvec', why: 'a bias (Qwen2\'s q, k, v) in the matvec epilogue, read from its offset in [q; k; v]',
    // bias(matvec(...), b){offset} -> matvec{epilogues += bias=offset}(..., b), for one position (the epilogue reads b at the output index)
    rewrite: (n, c) => (is(n, 'bias') && is(n.srcs[0], 'matvec') && n.shape.length === 1 ? withEpilogue(n.srcs[0], c, 'bias', [n.srcs[1]!], n.attr.offset as number) : undefined),
  },
  {
    name: 'scale_into_matvec', why: 'a constant multiplier (logit or residual scaling) in the matvec epilogue',
    // scale(matvec(...), f) -> matvec{epilogues += scale=f}(...)
    rewrite: (n, c) => (is(n, 'scale') && is(n.srcs[0], 'matvec') ? withEpilogue(n.srcs[0], c, 'scale', [], n.attr.factor as number) : undefined),
  },
];
