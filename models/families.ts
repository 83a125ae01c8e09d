// The model families of the seed system, all run by the Llama graph (models/llama.ts). Each entry
// says what is not Llama; the graph takes the differences as config flags (a bias, a norm, a
// multiplier), and the file's layout differences are undone when the weights are read:
//  - GPT-NeoX RoPE turns dimension i with i + rotDim/2 where Llama turns neighbours 2i, 2i+1. The rows
//    of W_q and W_k (and their biases and q/k norm weights) are interleaved at load — the permutation
//    llama.cpp's converter applies to Llama — so one RoPE kernel (and its fusion with the QKV
//    projections and the cache write) serves both. q·k is unchanged; hook_q/hook_k hold the rows in the
//    interleaved order, as they do for a Llama GGUF.
//  - Phi-3 stores Q, K, V as one tensor and gate, up as one: they are split by rows at load.
import { type LlamaConfig, headSize, qWidth } from './llama.js';

export type FamilyName = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'phi3' | 'granite';

export interface Family {
  name: FamilyName;
  /** `general.architecture` of its GGUF files (Mistral 7B's are 'llama') */
  arch: string;
  /** what is not Llama */
  differs: string;
  /** RoPE pairs i with i + rotDim/2 (rows interleaved at load) */
  neoxRope: boolean;
  /** the graph's flags for this family, from the file's `<arch>.*` numbers */
  flags(num: (key: string, fallback?: number) => number): Partial<LlamaConfig>;
  /** fused tensors of each block split by rows: file name -> [graph name, rows as a function of the config] */
  fused?: Record<string, [string, (c: LlamaConfig) => number][]>;
}

export const FAMILIES: Readonly<Record<FamilyName, Family>> = {
  llama: { name: 'llama', arch: 'llama', neoxRope: false, flags: () => ({}), differs: 'the reference: RMSNorm, RoPE on neighbouring pairs, grouped-query attention, SwiGLU' },
  mistral: {
    name: 'mistral', arch: 'llama', neoxRope: false, flags: () => ({}),
    differs: "Llama's graph and GGUF architecture with a SentencePiece vocabulary; the sliding window of Mistral 7B v0.1 (4096) is not applied: llama.cpp does not apply it to 'llama' files either",
  },
  qwen2: { name: 'qwen2', arch: 'qwen2', neoxRope: true, flags: () => ({ qkvBias: true }), differs: 'biases on the q, k and v projections; NeoX RoPE' },
  qwen3: { name: 'qwen3', arch: 'qwen3', neoxRope: true, flags: () => ({ qkNorm: true }), differs: 'RMSNorm of each head of q and k before RoPE; NeoX RoPE' },
  phi3: {
    name: 'phi3', arch: 'phi3', neoxRope: true, flags: () => ({}),
    differs: 'Q, K, V in one tensor and gate, up in one (split at load); NeoX RoPE, partial where rope.dimension_count is less than the head size',
    fused: {
      attn_qkv: [['attn_q', (c) => qWidth(c)], ['attn_k', (c) => c.nKvHeads * headSize(c)], ['attn_v', (c) => c.nKvHeads * headSize(c)]],
      ffn_up: [['ffn_gate', (c) => c.hiddenDim], ['ffn_up', (c) => c.hiddenDim]],
    },
  },
  granite: {
    name: 'granite', arch: 'granite', neoxRope: false,
    flags: (num) => ({ embeddingScale: num('embedding_scale', 1), residualScale: num('residual_scale', 1), attentionScale: num('attention.scale', 0) || undefined, logitScale: num('logit_scale', 1) }),
    differs: 'multipliers on the embedding, on each block output before the residual add, on q·k (in place of 1/√d) and a divisor on the logits',
  },
};

/** The family that reads a GGUF architecture (Mistral's files read as Llama). */
export const familyOfArch = (arch: string): Family | undefined => Object.values(FAMILIES).find((f) => f.arch === arch);
