import { TokenType, decodeWith, splitAtSpecials, type EncodeOptions, type Tokenizer, type Vocab } from './common.js';

// The SentencePiece-style BPE tokenizer of llama2.c and GGUF's `tokenizer.ggml.model = llama`:
// pieces with scores, merged greedily by best score, with byte fallback (<0xXX> tokens) for
// characters the vocabulary lacks. Spaces are stored as ' ' (GGUF's '▁' is mapped on load).

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

export class SentencePieceTokenizer implements Tokenizer {
  private lookup = new Map<string, number>();
  private byteId = new Int32Array(256).fill(-1);
  private pieceBytes: Uint8Array[];
  /** what `special: true` matches in the text, as llama.cpp does: control and unknown tokens, longest first */
  private specials: { text: string; id: number }[];

  constructor(readonly vocab: Vocab) {
    const enc = new TextEncoder();
    this.specials = vocab.pieces.map((text, id) => ({ text, id }))
      .filter(({ text, id }) => text.length > 0 && (vocab.types[id] === TokenType.Control || vocab.types[id] === TokenType.Unknown))
      .sort((a, b) => b.text.length - a.text.length);
    this.pieceBytes = vocab.pieces.map((p, id) => {
      const t = vocab.types[id];
      const m = BYTE_PIECE.exec(p);
      if (t === TokenType.Byte && m) {
        const b = parseInt(m[1]!, 16);
        if (this.byteId[b] === -1) this.byteId[b] = id;
        return Uint8Array.of(b);
      }
      if (t === TokenType.Normal || t === TokenType.UserDefined) {
        if (!this.lookup.has(p)) this.lookup.set(p, id);
        return enc.encode(p);
      }
      return new Uint8Array(0); // control, unknown, unused: nothing in the text
    });
  }

  get size() { return this.vocab.pieces.length; }

  /** Text to ids: BOS (unless bos=false), then pieces merged by best score. */
  idOf(text: string): number | undefined { return this.lookup.get(text); }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    // text after a special token (or at the start) gets SentencePiece's space prefix, as in llama.cpp
    let afterSpecial = true;
    for (const part of opts.special ? splitAtSpecials(text, this.specials) : [text]) {
      if (typeof part === 'number') { ids.push(part); afterSpecial = true; continue; }
      if (part.length === 0) continue;
      ids.push(...this.pieces(afterSpecial && this.vocab.addSpacePrefix ? ` ${part}` : part));
      afterSpecial = false;
    }
    return opts.bos ?? this.vocab.addBos ? [this.vocab.bos, ...ids] : ids;
  }

  /** One stretch of text: characters (or their bytes), then merged by best score. */
  private pieces(src: string): number[] {
    const ids: number[] = [];
    for (const ch of src) {
      const id = this.lookup.get(ch);
      if (id !== undefined) ids.push(id);
      else for (const b of new TextEncoder().encode(ch)) ids.push(this.byteId[b]! >= 0 ? this.byteId[b]! : this.vocab.unk);
    }
    // merge the adjacent pair whose union scores best, until none is in the vocabulary
    for (;;) {
      let best = -Infinity, at = -1, merged = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const id = this.lookup.get(this.vocab.pieces[ids[i]!]! + this.vocab.pieces[ids[i + 1]!]!);
        if (id !== undefined && this.vocab.scores[id]! > best && this.isText(ids[i]!) && this.isText(ids[i + 1]!)) {
          best = this.vocab.scores[id]!; at = i; merged = id;
        }
      }
      if (at < 0) break;
      ids.splice(at, 2, merged);
    }
    return ids;
  }

  private isText(id: number) {
    const t = this.vocab.types[id];
    return t === TokenType.Normal || t === TokenType.UserDefined;
  }

  /** The bytes token `id` adds after token `prev` (the space SentencePiece put after BOS is dropped). */
  tokenBytes(id: number, prev: number): Uint8Array {
    const b = this.pieceBytes[id] ?? new Uint8Array(0);
    const first = prev === this.vocab.bos || prev < 0;
    return first && this.vocab.addSpacePrefix && b[0] === 0x20 ? b.subarray(1) : b;
  }

  /** Ids to text; control tokens (BOS/EOS) produce nothing. */
  decode(ids: readonly number[]): string { return decodeWith(this, ids); }

  /** The vocabulary entry as written (for display). */
  piece(id: number): string { return this.vocab.pieces[id] ?? `<${id}?>`; }
}
