// Llama as an op graph for one decode step: the token at position `pos` goes in, its next-token
// logits come out, and the KV cache (state) keeps what came before. With `positions: T` the same
// graph takes T tokens at positions pos..pos+T-1 in one pass (a prefill): every activation gets a
// leading [T], the projections become matrix products, attention is causal within the block.
import { GraphBuilder, type Graph, type Hook, type Node } from '../compiler/ir/graph.js';
import { ops } from '../ops/index.js';
import { ShapeError } from '../compiler/errors.js';
import type { DType } from '../compiler/ir/dtype.js';

/** The numbers that define a Llama model (llama2.c's Config, GGUF's `llama.*` keys). */
export interface LlamaConfig {
  dim: number; // d_model, the residual stream width
  hiddenDim: number; // FFN inner width
  nLayers: number;
  nHeads: number; // query heads
  nKvHeads: number; // key/value heads (GQA when fewer than nHeads)
  vocabSize: number;
  contextLength: number; // positions the KV cache holds
  ropeTheta: number; // RoPE base frequency
  rotDim: number; // dimensions of each head that RoPE turns (= head size for Llama)
  /** per-pair RoPE frequency divisors (Llama 3 scaling); absent = unscaled */
  ropeFactors?: readonly number[];
  rmsEps: number;
  /** whether the unembedding is the token embedding (no separate output.weight) */
  tiedEmbeddings: boolean;
  // What the families that share this graph change (models/families.ts says which family sets what):
  /** a head's width where it is not dim / nHeads (some Qwen3 sizes; GGUF attention.key_length) */
  headDim?: number;
  /** Qwen2: the q, k and v projections add a bias (blk.N.attn_{q,k,v}.bias) */
  qkvBias?: boolean;
  /** Qwen3: each head of q and k is RMS-normed (blk.N.attn_{q,k}_norm.weight, [headSize]) before RoPE */
  qkNorm?: boolean;
  /** Granite: the embedding times this */
  embeddingScale?: number;
  /** Granite: each block's attention and MLP output times this before it joins the residual stream */
  residualScale?: number;
  /** Granite: the factor on q·k (else 1/√headSize) */
  attentionScale?: number;
  /** Granite: the logits divided by this */
  logitScale?: number;
}

export const headSize = (c: Pick<LlamaConfig, 'dim' | 'nHeads' | 'headDim'>) => c.headDim ?? c.dim / c.nHeads;
/** the width of q (and of attention's output): nHeads heads */
export const qWidth = (c: Pick<LlamaConfig, 'dim' | 'nHeads' | 'headDim'>) => c.nHeads * headSize(c);

/** `dtypeOf` says how each weight is stored (f32, f16, bf16, q8_0, q4_0); kernels read it as stored.
 *  `startLayer` builds only the layers from there on, reading the residual stream from an input
 *  `resid` instead of the embedding (re-running the tail of the model, as patching sweeps do).
 *  `positions`: a block of that many tokens per pass (a prefill); without it, one (a decode step).
 *  `batch`: that many sequences at once, each with its own KV cache (several prompts of one length).
 *  `head: 'last'`: the final norm and unembedding of each sequence's last position only (a prefill that
 *  wants the next token); `pick: k` adds an output `picked`, those logits at k token ids (an input
 *  `pick`), e.g. a patching metric's target and distractor; `headRow`: the head reads that position's
 *  row instead of the last (a gradient's metric at an earlier position). */
export interface LlamaGraphOptions {
  startLayer?: number; positions?: number; batch?: number; head?: 'all' | 'last'; headRow?: number; pick?: number;
  /** layers whose attention runs through its scores and pattern (scores -> softmax -> pattern · V), so
   *  that a gradient reaches hook_attn_scores and hook_pattern: one sequence only, and it makes
   *  [T, nHeads, context] matrices flash attention never makes */
  explicitAttention?: readonly number[];
}
export function llama(c: LlamaConfig, dtypeOf: (name: string) => DType = () => 'f32', opts: LlamaGraphOptions = {}): Graph {
  const g = new GraphBuilder();
  const o = ops(g);
  const weight = (name: string, shape: number[]) => o.weight(name, shape, dtypeOf(name));
  const { input, state, ropeTable, embedding, rmsnorm, matvec, rope, kvWrite, attention, add, bias, siluMul, argmax, attentionScores, patternSoftmax, patternApply, rmsParts, headResult, scale, lastRow, pick } = o;
  const times = (x: Node, f: number | undefined) => (f === undefined || f === 1 ? x : scale(x, f));
  const hs = headSize(c), qDim = qWidth(c);
  const kvDim = c.nKvHeads * hs;
  const block = opts.positions !== undefined, T = opts.positions ?? 1, B = opts.batch ?? 1;
  if (B > 1 && !block) throw new ShapeError('a batch of sequences runs as a block of positions: give positions too');
  const lead = B > 1 ? [B, T] : block ? [T] : []; // [B, T] sequences × positions, [T], or one position
  const rows = (shape: number[]) => [...lead, ...shape]; // a block's activations
  const token = input('token', rows([1])); // i32[1], i32[T, 1] or i32[B, T, 1]
  const pos = input('pos', [1]); // i32[1], the first position; the only other thing written per step
  const freqs = ropeTable(c.contextLength, c.rotDim, c.ropeTheta, c.ropeFactors); // [context, rotDim/2, 2]
  const tokenEmbd = weight('token_embd.weight', [c.vocabSize, c.dim]); // [vocab, dim]

  // hook points, named as TransformerLens names them (values as TL gives them for an unprocessed model)
  const hooks: Record<string, Hook> = {};
  const hook = (name: string, node: Node, shape: number[] = [...node.shape].slice(lead.length)) => ((hooks[name] = { node, shape }), node);
  const heads = (n: number) => [n, hs];
  // a norm's scale and normalized input, as their own nodes: computed only when a hook asks for them
  const normHooks = (prefix: string, x: Node) => {
    hooks[`${prefix}.hook_scale`] = { node: rmsParts(x, c.rmsEps, 'scale'), shape: [1] };
    hooks[`${prefix}.hook_normalized`] = { node: rmsParts(x, c.rmsEps, 'normalized'), shape: [c.dim] };
  };

  const start = opts.startLayer ?? 0;
  const cacheShape = B > 1 ? [B, c.contextLength, kvDim] : [c.contextLength, kvDim];
  let x = start > 0 ? input('resid', rows([c.dim]), 'f32') : hook('hook_embed', times(embedding(tokenEmbd, token), c.embeddingScale)); // [dim], the residual stream
  for (let l = start; l < c.nLayers; l++) {
    const w = (name: string, shape: number[]) => weight(`blk.${l}.${name}.weight`, shape);
    const b = `blocks.${l}.`;
    hook(`${b}hook_resid_pre`, x);
    // attention
    normHooks(`${b}ln1`, x);
    const h = rmsnorm(x, w('attn_norm', [c.dim]), c.rmsEps); // [dim]
    // a projection, with Qwen2's bias ([q; k; v] in one vector) and Qwen3's per-head norm where the family has them
    const qkvBias = c.qkvBias ? weight(`blk.${l}.attn_qkv.bias`, [qDim + 2 * kvDim]) : undefined;
    const project = (name: string, rowsOut: number, headNorm: boolean) => {
      const y = matvec(w(name, [rowsOut, c.dim]), h);
      const biased = qkvBias ? bias(y, qkvBias, { attn_q: 0, attn_k: qDim, attn_v: qDim + kvDim }[name]!) : y;
      return headNorm && c.qkNorm ? rmsnorm(biased, w(`${name}_norm`, [hs]), c.rmsEps) : biased;
    };
    const q = rope(hook(`${b}attn.hook_q`, project('attn_q', qDim, true), heads(c.nHeads)), pos, freqs, hs); // [nHeads*hs]
    const k = rope(hook(`${b}attn.hook_k`, project('attn_k', kvDim, true), heads(c.nKvHeads)), pos, freqs, hs); // [kvDim]
    const v = hook(`${b}attn.hook_v`, project('attn_v', kvDim, false), heads(c.nKvHeads)); // [kvDim]
    hook(`${b}attn.hook_rot_q`, q, heads(c.nHeads));
    hook(`${b}attn.hook_rot_k`, k, heads(c.nKvHeads));
    const kCache = kvWrite(state(`cache.k.${l}`, cacheShape), k, pos); // [context, kvDim] (per sequence)
    const vCache = kvWrite(state(`cache.v.${l}`, cacheShape), v, pos); // [context, kvDim]
    // the scores and pattern as their own nodes: reachable (and computed) only when a hook asks for them
    const pa = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs, ...(c.attentionScale !== undefined ? { scale: c.attentionScale } : {}) };
    const scores = attentionScores(q, kCache, pos, pa); // [nHeads, context]
    const pattern = patternSoftmax(scores, pos, c.nHeads); // [nHeads, context]
    const explicit = opts.explicitAttention?.includes(l) === true;
    hooks[`${b}attn.hook_attn_scores`] = { node: scores, shape: [c.nHeads, c.contextLength], layout: 'pattern' };
    hooks[`${b}attn.hook_pattern`] = { node: pattern, shape: [c.nHeads, c.contextLength], layout: 'pattern' };
    const z = hook(`${b}attn.hook_z`, explicit ? patternApply(pattern, vCache, pos, { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs }) : attention(q, kCache, vCache, pos, pa), heads(c.nHeads)); // [nHeads*hs]
    const wo = w('attn_output', [c.dim, qDim]); // [dim, nHeads*hs]
    hooks[`${b}attn.hook_result`] = { node: headResult(z, wo, { nHeads: c.nHeads, headSize: hs }), shape: [c.nHeads, c.dim] }; // opt-in: computed only when tapped
    x = hook(`${b}hook_resid_mid`, add(x, hook(`${b}hook_attn_out`, times(matvec(wo, z), c.residualScale)))); // [dim]
    // feed-forward (SwiGLU)
    normHooks(`${b}ln2`, x);
    const h2 = rmsnorm(x, w('ffn_norm', [c.dim]), c.rmsEps); // [dim]
    const gate = hook(`${b}mlp.hook_pre`, matvec(w('ffn_gate', [c.hiddenDim, c.dim]), h2)); // [hiddenDim]
    const up = hook(`${b}mlp.hook_pre_linear`, matvec(w('ffn_up', [c.hiddenDim, c.dim]), h2)); // [hiddenDim]
    const act = hook(`${b}mlp.hook_post`, siluMul(gate, up)); // [hiddenDim]
    x = hook(`${b}hook_resid_post`, add(x, hook(`${b}hook_mlp_out`, times(matvec(w('ffn_down', [c.dim, c.hiddenDim]), act), c.residualScale)))); // [dim]
  }
  if (opts.head === 'last' && block) x = lastRow(x, opts.headRow); // [B, 1, dim]: from here on, the last position only
  normHooks('ln_final', x);
  const logits = hook('hook_logits', unembedding(c, o, x, weight, tokenEmbd)); // [vocab]
  const next = argmax(logits); // i32[1], the greedy choice, so greedy decoding reads back 4 bytes
  if (opts.pick) return g.finish({ picked: pick(logits, input('pick', [opts.pick])) }, hooks); // [..., k]
  return g.finish({ logits, next }, hooks);
}

/** The final norm and the unembedding: residual stream [.., dim] -> logits [.., vocab]. */
function unembedding(c: LlamaConfig, o: ReturnType<typeof ops>, x: Node, weight: (name: string, shape: number[]) => Node, tokenEmbd?: Node): Node {
  const xf = o.rmsnorm(x, weight('output_norm.weight', [c.dim]), c.rmsEps); // [dim]
  const unembed = c.tiedEmbeddings ? tokenEmbd ?? weight('token_embd.weight', [c.vocabSize, c.dim]) : weight('output.weight', [c.vocabSize, c.dim]); // [vocab, dim]
  const logits = o.matvec(unembed, xf);
  return c.logitScale === undefined || c.logitScale === 1 ? logits : o.scale(logits, 1 / c.logitScale);
}

/** The logit lens's head: the final norm and unembedding of residual-stream rows, on the model's own
 *  weights, then what the lens reports of each row (ops/lens_stats.ts). The rows are `layers` blocks of
 *  `positions` (layer-major: a position's final layer in the last block); `resid` [layers·positions, dim],
 *  `target` i32[1] (the vocabulary size for none). Outputs: `stats` [rows, 3 + 2·top], `logits`. */
export function lensHead(c: LlamaConfig, dtypeOf: (name: string) => DType, a: { layers: number; positions: number; top: number }): Graph {
  const g = new GraphBuilder();
  const o = ops(g);
  const weight = (name: string, shape: number[]) => o.weight(name, shape, dtypeOf(name));
  const rows = a.layers * a.positions;
  const logits = unembedding(c, o, o.input('resid', [rows, c.dim], 'f32'), weight); // [rows, vocab]
  const stats = o.lensStats(logits, o.input('target', [1]), { layers: a.layers, top: a.top }); // [rows, 3 + 2·top]
  return g.finish({ stats, logits });
}
