// Llama as an op graph for one decode step: the token at position `pos` goes in, its next-token
// logits come out, and the KV cache (state) keeps what came before.
import { GraphBuilder, type DType, type Graph } from '../compiler/graph.js';
import { ops } from '../ops/index.js';

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
}

export const headSize = (c: LlamaConfig) => c.dim / c.nHeads;

/** `dtypeOf` says how each weight is stored (f32, f16, bf16, q8_0, q4_0); kernels read it as stored. */
export function llama(c: LlamaConfig, dtypeOf: (name: string) => DType = () => 'f32'): Graph {
  const g = new GraphBuilder();
  const o = ops(g);
  const weight = (name: string, shape: number[]) => o.weight(name, shape, dtypeOf(name));
  const { input, state, ropeTable, embedding, rmsnorm, matvec, rope, kvWrite, attention, add, siluMul, argmax } = o;
  const hs = headSize(c);
  const kvDim = c.nKvHeads * hs;
  const token = input('token', [1]); // i32[1]
  const pos = input('pos', [1]); // i32[1], the only other thing written per step
  const freqs = ropeTable(c.contextLength, c.rotDim, c.ropeTheta, c.ropeFactors); // [context, rotDim/2, 2]
  const tokenEmbd = weight('token_embd.weight', [c.vocabSize, c.dim]); // [vocab, dim]

  let x = embedding(tokenEmbd, token); // [dim], the residual stream
  for (let l = 0; l < c.nLayers; l++) {
    const w = (name: string, shape: number[]) => weight(`blk.${l}.${name}.weight`, shape);
    // attention
    const h = rmsnorm(x, w('attn_norm', [c.dim]), c.rmsEps); // [dim]
    const q = rope(matvec(w('attn_q', [c.dim, c.dim]), h), pos, freqs, hs); // [nHeads*hs]
    const k = rope(matvec(w('attn_k', [kvDim, c.dim]), h), pos, freqs, hs); // [kvDim]
    const v = matvec(w('attn_v', [kvDim, c.dim]), h); // [kvDim]
    const kCache = kvWrite(state(`cache.k.${l}`, [c.contextLength, kvDim]), k, pos); // [context, kvDim]
    const vCache = kvWrite(state(`cache.v.${l}`, [c.contextLength, kvDim]), v, pos); // [context, kvDim]
    const z = attention(q, kCache, vCache, pos, { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: hs }); // [nHeads*hs]
    x = add(x, matvec(w('attn_output', [c.dim, c.dim]), z)); // [dim]
    // feed-forward (SwiGLU)
    const h2 = rmsnorm(x, w('ffn_norm', [c.dim]), c.rmsEps); // [dim]
    const gate = matvec(w('ffn_gate', [c.hiddenDim, c.dim]), h2); // [hiddenDim]
    const up = matvec(w('ffn_up', [c.hiddenDim, c.dim]), h2); // [hiddenDim]
    x = add(x, matvec(w('ffn_down', [c.dim, c.hiddenDim]), siluMul(gate, up))); // [dim]
  }
  const xf = rmsnorm(x, weight('output_norm.weight', [c.dim]), c.rmsEps); // [dim]
  const unembed = c.tiedEmbeddings ? tokenEmbd : weight('output.weight', [c.vocabSize, c.dim]); // [vocab, dim]
  const logits = matvec(unembed, xf); // [vocab]
  const next = argmax(logits); // i32[1], the greedy choice, so greedy decoding reads back 4 bytes
  return g.finish({ logits, next });
}
