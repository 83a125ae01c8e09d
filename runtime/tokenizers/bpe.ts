// Byte-level BPE (GGUF `tokenizer.ggml.model = gpt2`; Hugging Face `tokenizer.json` with a ByteLevel
// pre-tokenizer): special tokens are split out first, the rest is cut into words by the
// pre-tokenizer regex the model names, each word's UTF-8 bytes are spelled in GPT-2's byte alphabet
// and merged pair by pair in merge-rank order.
import { FormatError } from '../../compiler/errors.js';
import { TokenType, decodeWith, splitAtSpecials, type EncodeOptions, type Tokenizer, type Vocab } from './common.js';

/** GPT-2's map from bytes to printable characters (so every byte is a visible symbol). */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++));
})();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** Pre-tokenizer patterns by the name GGUF gives them (`tokenizer.ggml.pre`). */
const GPT2 = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
// Llama 3: case-insensitive contractions, digits in runs of at most three, newlines kept with punctuation
const LLAMA3 = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
// Qwen2 (and Qwen3): Llama 3's pattern with every digit on its own
const QWEN2 = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
/** The patterns as text (what a tokenizer.json's Split pre-tokenizer holds). */
export const PRE_TOKENIZER_SOURCES: Readonly<Record<string, string>> = { default: GPT2.source, gpt2: GPT2.source, 'llama-bpe': LLAMA3.source, llama3: LLAMA3.source, qwen2: QWEN2.source };
export const PRE_TOKENIZERS: Readonly<Record<string, RegExp>> = {
  default: GPT2, gpt2: GPT2, 'llama-bpe': LLAMA3, llama3: LLAMA3, 'smaug-bpe': LLAMA3, qwen2: QWEN2,
};

export class ByteLevelBpeTokenizer implements Tokenizer {
  private ids = new Map<string, number>();
  private ranks = new Map<string, number>();
  private specials: { text: string; id: number }[] = [];
  private pre: RegExp;
  private cache = new Map<string, number[]>();
  private bytesOf: (Uint8Array | undefined)[] = [];

  constructor(readonly vocab: Vocab) {
    const pre = PRE_TOKENIZERS[vocab.pre ?? 'default'];
    if (!pre) throw new FormatError('tokenizer', `pre-tokenizer '${vocab.pre}' is not supported (known: ${Object.keys(PRE_TOKENIZERS).join(', ')})`);
    this.pre = pre;
    vocab.pieces.forEach((p, id) => { if (!this.ids.has(p)) this.ids.set(p, id); });
    (vocab.merges ?? []).forEach((m, rank) => {
      const sp = m.indexOf(' ', 1);
      if (sp > 0 && !this.ranks.has(m)) this.ranks.set(m.slice(0, sp) + ' ' + m.slice(sp + 1), rank);
    });
    vocab.pieces.forEach((p, id) => {
      const t = vocab.types[id];
      if ((t === TokenType.Control || t === TokenType.UserDefined) && p.length > 0) this.specials.push({ text: p, id });
    });
    this.specials.sort((a, b) => b.text.length - a.text.length);
  }

  /** A piece's bytes, worked out when first asked for (a vocabulary of 128k pieces took a third of a
   *  second to convert at load, and a run decodes only the pieces it meets). */
  private bytesOfPiece(id: number): Uint8Array {
    let b = this.bytesOf[id];
    if (b) return b;
    const p = this.vocab.pieces[id], t = this.vocab.types[id];
    if (p === undefined) return new Uint8Array(0);
    if (t === TokenType.Control) b = new Uint8Array(0);
    else if (t === TokenType.UserDefined) b = new TextEncoder().encode(p);
    else {
      const chars = Array.from(p);
      b = chars.every((c) => CHAR_TO_BYTE.has(c)) ? Uint8Array.from(chars, (c) => CHAR_TO_BYTE.get(c)!) : new TextEncoder().encode(p);
    }
    this.bytesOf[id] = b;
    return b;
  }

  get size() { return this.vocab.pieces.length; }
  piece(id: number) { return this.vocab.pieces[id] ?? `<${id}?>`; }
  idOf(text: string) {
    const spelled = Array.from(new TextEncoder().encode(text), (b) => BYTE_TO_CHAR[b]).join('');
    return this.ids.get(spelled) ?? this.ids.get(text);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = opts.bos ?? this.vocab.addBos ? [this.vocab.bos] : [];
    for (const part of opts.special ? splitAtSpecials(text, this.specials) : [text]) {
      if (typeof part === 'number') out.push(part);
      else for (const m of part.matchAll(this.pre)) out.push(...this.word(m[0]));
    }
    return out;
  }

  private word(w: string): number[] {
    const hit = this.cache.get(w);
    if (hit) return hit;
    let syms = Array.from(new TextEncoder().encode(w), (b) => BYTE_TO_CHAR[b]!);
    // merge the lowest-ranked adjacent pair, every occurrence left to right, until none is a merge
    for (;;) {
      let best = Infinity, pair = '';
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.ranks.get(syms[i] + ' ' + syms[i + 1]);
        if (r !== undefined && r < best) { best = r; pair = syms[i] + ' ' + syms[i + 1]; }
      }
      if (best === Infinity) break;
      const next: string[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] + ' ' + syms[i + 1] === pair) { next.push(syms[i]! + syms[i + 1]!); i++; }
        else next.push(syms[i]!);
      }
      syms = next;
    }
    const ids: number[] = [];
    for (const s of syms) {
      const id = this.ids.get(s);
      if (id !== undefined) ids.push(id);
      else for (const ch of s) ids.push(this.ids.get(ch) ?? this.vocab.unk); // bytes the merges never joined
    }
    if (this.cache.size < 50_000) this.cache.set(w, ids);
    return ids;
  }

  tokenBytes(id: number, _prev: number): Uint8Array { return this.bytesOfPiece(id); }
  decode(ids: readonly number[]): string { return decodeWith(this, ids); }
}
