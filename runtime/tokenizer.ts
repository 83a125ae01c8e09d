// Tokenizers: text <-> token ids. Two kinds, chosen by the vocabulary's `model`
// (GGUF `tokenizer.ggml.model`): SentencePiece-style BPE with scores ('llama': llama2.c, Llama 2,
// Mistral) and byte-level BPE with ranked merges ('gpt2': Llama 3, Qwen, GPT-2).
import { SentencePieceTokenizer } from './tokenizers/spm.js';
import { ByteLevelBpeTokenizer } from './tokenizers/bpe.js';
import type { Vocab, Tokenizer } from './tokenizers/common.js';

export function makeTokenizer(vocab: Vocab): Tokenizer {
  return vocab.model === 'gpt2' ? new ByteLevelBpeTokenizer(vocab) : new SentencePieceTokenizer(vocab);
}
