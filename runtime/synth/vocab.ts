// Tokenizer vocabularies for synthetic models, learned from a small corpus: byte-level BPE
// (Llama 3 style: 256 byte tokens, ranked merges, special tokens) or SentencePiece-style pieces with
// scores and byte fallback (llama2.c / Llama 2 style). Deterministic: same corpus, same vocabulary.
import { TokenType, type Vocab } from '../tokenizers/common.js';
import { BYTE_TO_CHAR, PRE_TOKENIZERS } from '../tokenizers/bpe.js';
import { CORPUS } from './corpus.js';

/** Learn up to `maxMerges` merges over the words of `text` (most frequent pair first, ties by text). */
function learnMerges(words: string[][], maxMerges: number): string[][] {
  const counts = new Map<string, { syms: string[]; n: number }>();
  for (const w of words) {
    const key = w.join('\u0000');
    const e = counts.get(key);
    if (e) e.n++; else counts.set(key, { syms: [...w], n: 1 });
  }
  const entries = [...counts.values()];
  const merges: string[][] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const { syms, n } of entries)
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = syms[i] + '\u0000' + syms[i + 1];
        pairs.set(k, (pairs.get(k) ?? 0) + n);
      }
    let best = '', bestN = 1;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== '' && k < best)) { best = k; bestN = n; }
    if (!best) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    for (const e of entries) {
      const next: string[] = [];
      for (let i = 0; i < e.syms.length; i++) {
        if (i + 1 < e.syms.length && e.syms[i] === a && e.syms[i + 1] === b) { next.push(a + b); i++; } else next.push(e.syms[i]!);
      }
      e.syms = next;
    }
  }
  return merges;
}

const LLAMA3_SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|reserved_special_token_0|>', '<|reserved_special_token_1|>',
  '<|start_header_id|>', '<|end_header_id|>', '<|reserved_special_token_2|>', '<|reserved_special_token_3|>', '<|eot_id|>'];

/** Qwen2's: no BOS; <|endoftext|> ends a text, the chat turns are <|im_start|> .. <|im_end|> */
const QWEN_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

/** Byte-level BPE with Llama 3's pre-tokenizer (or Qwen2's, with its special tokens). `size` counts
 *  everything, specials included. */
export function byteLevelVocab(size: number, nSpecials = size >= 100_000 ? 256 : LLAMA3_SPECIALS.length, preName: 'llama-bpe' | 'qwen2' = 'llama-bpe'): Vocab {
  const pre = PRE_TOKENIZERS[preName]!;
  const named = preName === 'qwen2' ? QWEN_SPECIALS : LLAMA3_SPECIALS;
  const words = [...CORPUS.matchAll(pre)].map((m) => Array.from(new TextEncoder().encode(m[0]), (b) => BYTE_TO_CHAR[b]!));
  const regular = size - nSpecials;
  if (regular < 256) throw new Error(`internal: a byte-level vocabulary needs more than ${256 + nSpecials} entries`);
  const merges = learnMerges(words, regular - 256);
  const pieces = [...BYTE_TO_CHAR, ...merges.map(([a, b]) => a + b)];
  const types: number[] = pieces.map(() => TokenType.Normal);
  // fill the rest of the regular range with entries no merge reaches (like unused slots)
  for (let i = 0; pieces.length < regular; i++) { pieces.push(`<|unused_${i}|>`); types.push(TokenType.Unused); }
  const specials = Array.from({ length: nSpecials }, (_, i) => named[i] ?? `<|reserved_special_token_${i - 5}|>`);
  for (const s of specials) { pieces.push(s); types.push(TokenType.Control); }
  const qwen = preName === 'qwen2';
  return {
    model: 'gpt2', pre: preName, pieces, types: Uint8Array.from(types), scores: new Float32Array(pieces.length),
    merges: merges.map(([a, b]) => `${a} ${b}`), bos: regular, eos: qwen ? regular + 2 : regular + 1, unk: regular + 1, addBos: !qwen, addSpacePrefix: false,
  };
}

/** SentencePiece-style: <unk>, <s>, </s>, 256 byte pieces, the corpus's characters, then merged pieces. */
export function sentencePieceVocab(size: number): Vocab {
  const words = [...(' ' + CORPUS.replace(/\s+/g, ' ')).matchAll(/ ?[^ ]+/g)].map((m) => Array.from(m[0]));
  const chars = [...new Set(words.flat())].sort();
  const pieces = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)];
  const types = [TokenType.Unknown, TokenType.Control, TokenType.Control, ...new Array(256).fill(TokenType.Byte)];
  const room = size - pieces.length;
  const singles = chars.slice(0, room);
  const merges = learnMerges(words.map((w) => w.filter((c) => singles.includes(c))), Math.max(0, room - singles.length));
  const learned = [...merges.map(([a, b]) => a + b), ...singles];
  const scores: number[] = [0, 0, 0, ...new Array(256).fill(0)];
  learned.forEach((p, i) => { pieces.push(p); types.push(TokenType.Normal); scores.push(-i); });
  for (let i = 0; pieces.length < size; i++) { pieces.push(`<unused${i}>`); types.push(TokenType.Unused); scores.push(-1e9); }
  return { model: 'llama', pieces, types: Uint8Array.from(types), scores: Float32Array.from(scores), bos: 1, eos: 2, unk: 0, addBos: true, addSpacePrefix: true };
}
