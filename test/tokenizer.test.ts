import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { parseGGUF } from '../runtime/formats/gguf.js';
import { llamaFromGGUF } from '../runtime/formats/llama_gguf.js';
import { parseLlama2cTokenizer } from '../runtime/formats/llama2c.js';
import { makeTokenizer } from '../runtime/tokenizer.js';
import { GGUF, TOK } from './helpers/models.js';

const bytes = new Uint8Array(fs.readFileSync(GGUF));
const fromGGUF = makeTokenizer(llamaFromGGUF(parseGGUF(bytes, GGUF), bytes, GGUF).vocab);
const fromBin = makeTokenizer(parseLlama2cTokenizer(new Uint8Array(fs.readFileSync(TOK)), TOK, 512));

const TEXTS = ['Once upon a time', 'Hello, world!', '  two  spaces ', 'line one\nline two\n', 'émigré café — 你好 🦙', 'a', 'x'.repeat(300), 'Lily\'s "ball"'];

describe('SentencePiece tokenizer', () => {
  it('encodes a known prompt to the ids llama2.c gives', () => {
    expect(fromBin.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
    expect(fromGGUF.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it('GGUF metadata and tok512.bin tokenize identically', () => {
    for (const t of TEXTS) expect(fromGGUF.encode(t), t).toEqual(fromBin.encode(t));
  });

  it('round-trips text, including characters only byte fallback can spell', () => {
    for (const tok of [fromGGUF, fromBin]) for (const t of TEXTS) expect(tok.decode(tok.encode(t))).toBe(t);
  });

  it('uses byte tokens for characters outside the vocabulary', () => {
    const ids = fromBin.encode('你', { bos: false });
    // the dummy-prefix space, then the three UTF-8 bytes of 你 (byte token = byte + 3)
    expect(ids.slice(-3)).toEqual([...new TextEncoder().encode('你')].map((b) => b + 3));
  });

  it('empty text is just BOS', () => {
    expect(fromGGUF.encode('')).toEqual([1]);
    expect(fromGGUF.decode([1])).toBe('');
  });
});
