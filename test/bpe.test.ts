// Byte-level BPE against llama.cpp reading the same GGUF (a synthetic Llama-3-style vocabulary:
// 256 byte tokens, learned merges, Llama 3's special tokens and its `llama-bpe` pre-tokenizer).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModelSource } from '../runtime/node/load.js';
import { makeTokenizer } from '../runtime/tokenizer.js';
import { type Tokenizer } from '../runtime/tokenizers/common.js';
import { synthModel } from '../runtime/synth/synth.js';
import { writeSynth } from './helpers/synth.js';
import { llamaCpp } from './helpers/oracle.js';

const TRICKY = [
  'Hello world!', ' leading space', 'trailing space ', '  two  spaces  ', '\ttabs\tand\nnewlines\n\n\nthree',
  'line\r\nwindows', "don't can't I'M we'LL she's", '12345 1234567 3.14159 1e-5 2026-11-27', 'x=1+2*3/4;',
  'emoji 🙂🚀🦙 and flags 🇫🇷', '日本語のテキスト 中文文本 한국어', 'русский язык Ελληνικά', 'עברית العربية हिन्दी',
  'café naïve Straße', '<|begin_of_text|>Hello<|eot_id|>', 'a<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>',
  '<|not_special|>', '   ', '\n', '', 'ab'.repeat(200), 'Once upon a time, there was a tapir who lived near a river.',
  'for (let i = 0; i < n; i++) { sum += x[i] * w[i]; }', '!!!???...', "''''", 'ÿþ\u0000\u0001 control',
];

let dir = '', file = '', tok: Tokenizer;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-bpe-'));
  file = writeSynth(synthModel('tiny', 'q8_0'), path.join(dir, 'tiny.gguf'));
  tok = makeTokenizer(loadModelSource(file).vocab);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('byte-level BPE', () => {
  it.each([[false], [true]])('gives llama.cpp\'s ids on tricky strings (special tokens parsed: %s)', (special) => {
    const want = llamaCpp({ model: file, tokenize: TRICKY.map((text) => ({ text, special })) }).tokens as number[][];
    TRICKY.forEach((text, i) => expect(tok.encode(text, { bos: false, special }), JSON.stringify(text)).toEqual(want[i]));
  });

  it('round-trips text (special tokens off)', () => {
    for (const t of TRICKY) expect(tok.decode(tok.encode(t, { bos: false }))).toBe(t);
  });

  it('adds BOS as the GGUF says, and finds vocabulary entries by their text', () => {
    expect(tok.encode('hi')[0]).toBe(tok.vocab.bos);
    expect(tok.piece(tok.idOf(' the')!)).toBe('Ġthe');
  });
});
