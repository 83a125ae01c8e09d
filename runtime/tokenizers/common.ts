// What both tokenizers share: the vocabulary, the Tokenizer interface, special-token splitting and
// byte-level decoding. The two kinds (tokenizers/spm.ts, tokenizers/bpe.ts) build on it, and
// runtime/tokenizer.ts picks one, so nothing here imports a tokenizer.
import { UsageError } from '../../compiler/errors.js';

export const enum TokenType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

export interface Vocab {
  model: 'llama' | 'gpt2';
  /** token texts; for 'llama' with spaces as ' ', for 'gpt2' in GPT-2's byte-to-unicode alphabet */
  pieces: string[];
  /** SentencePiece merge priorities ('llama') */
  scores: Float32Array;
  types: Uint8Array;
  /** ranked merges "a b" ('gpt2') */
  merges?: string[];
  /** the pre-tokenizer's name (GGUF `tokenizer.ggml.pre`), for 'gpt2' */
  pre?: string;
  bos: number;
  eos: number;
  unk: number;
  addBos: boolean;
  /** prepend a space to non-empty text, as SentencePiece does ('llama') */
  addSpacePrefix: boolean;
  /** the Jinja chat template the file carries (GGUF `tokenizer.chat_template`) */
  chatTemplate?: string;
}

/** Text cut at special tokens (`specials` longest first): the strings between them, and the specials' ids. */
export function splitAtSpecials(text: string, specials: readonly { text: string; id: number }[]): (string | number)[] {
  const parts: (string | number)[] = [];
  let at = 0, start = 0;
  while (at < text.length) {
    const s = specials.find((sp) => text.startsWith(sp.text, at));
    if (s) {
      if (at > start) parts.push(text.slice(start, at));
      parts.push(s.id);
      at += s.text.length;
      start = at;
    } else at++;
  }
  if (start < text.length) parts.push(text.slice(start));
  return parts;
}

export interface EncodeOptions {
  /** add BOS first (default: the vocabulary's add_bos setting) */
  bos?: boolean;
  /** match special tokens (e.g. `<|eot_id|>`) written in the text (default: false) */
  special?: boolean;
}

export interface Tokenizer {
  readonly vocab: Vocab;
  readonly size: number;
  encode(text: string, opts?: EncodeOptions): number[];
  /** the bytes token `id` adds to the text after token `prev` (-1 at the start) */
  tokenBytes(id: number, prev: number): Uint8Array;
  decode(ids: readonly number[]): string;
  /** the vocabulary entry as written (for display) */
  piece(id: number): string;
  /** the id of a vocabulary entry written as text (`" Lily"`), if there is one */
  idOf(text: string): number | undefined;
}

/** Concatenates token bytes and decodes them as UTF-8 (shared by both kinds). */
export function decodeWith(tok: Pick<Tokenizer, 'tokenBytes'>, ids: readonly number[]): string {
  const parts: Uint8Array[] = [];
  let prev = -1;
  for (const id of ids) { parts.push(tok.tokenBytes(id, prev)); prev = id; }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { all.set(p, o); o += p.length; }
  return new TextDecoder().decode(all);
}

/** A decoder for streaming output: feeds token bytes, returns whole characters as they complete. */
export class StreamDecoder {
  private dec = new TextDecoder();
  constructor(private tok: Tokenizer, private prev = -1) {}
  push(id: number): string {
    const s = this.dec.decode(this.tok.tokenBytes(id, this.prev), { stream: true });
    this.prev = id;
    return s;
  }
}

/** A PIECE the user wrote (exactly as in the vocabulary, e.g. " Lily") as its id; `what` names it in the error. */
export function pieceId(tok: Tokenizer, piece: string, what: string): number {
  const id = tok.idOf(piece);
  if (id === undefined) {
    // say how the text tokenizes instead, as `tapir tokenize` would
    const ids = tok.encode(piece, { bos: false });
    const parts = ids.map((i) => `${JSON.stringify(tok.piece(i))} (${i})`).join(' + ');
    throw new UsageError(`${what} '${piece}' is not a vocabulary entry; it tokenizes as ${parts || 'nothing'} (write one piece exactly as in the vocabulary, e.g. " Lily", or give its id)`);
  }
  return id;
}
