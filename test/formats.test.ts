// Loaders against real files and against files that are truncated, lie about sizes, or attack.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { FormatError, TapirError } from '../compiler/errors.js';
import { parseGGUF } from '../runtime/formats/gguf.js';
import { writeGGUF, type GGUFWriteValue } from '../runtime/formats/gguf_write.js';
import { llamaFromGGUF } from '../runtime/formats/llama_gguf.js';
import { writeLlamaGGUF } from '../runtime/formats/llama_gguf_write.js';
import { parseLlama2c, parseLlama2cTokenizer } from '../runtime/formats/llama2c.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { BIN, GGUF, TOK } from './helpers/models.js';
import { maxAbsDiff } from './helpers/numeric.js';

const gguf = new Uint8Array(fs.readFileSync(GGUF));
const bin = new Uint8Array(fs.readFileSync(BIN));
const f32data = (n: number) => new Uint8Array(new Float32Array(n).buffer);
const str = (value: string): GGUFWriteValue => ({ type: 'string', value });

describe('GGUF reader', () => {
  it('reads stories260K.gguf as SOURCES.md describes it', () => {
    const g = parseGGUF(gguf, 'stories260K.gguf');
    expect(g.version).toBe(3);
    expect(g.tensors.size).toBe(48);
    expect(g.alignment).toBe(32);
    expect(g.dataOffset).toBe(14176);
    expect(g.metadata.get('llama.context_length')).toBe(2048);
    expect(g.metadata.get('llama.attention.head_count_kv')).toBe(4);
    expect(g.tensors.get('token_embd.weight')!.dims).toEqual([64, 512]);
  });

  it('GGUF and .bin hold the same weights', () => {
    const a = llamaFromGGUF(parseGGUF(gguf, 'g'), gguf, 'g');
    const b = parseLlama2c(bin, 'b');
    for (const [name, w] of b.weights) expect(Array.from(a.weights.get(name)!.bytes), name).toEqual(Array.from(w.bytes));
    expect({ ...a.config, contextLength: 0, rmsEps: 0 }).toEqual({ ...b.config, contextLength: 0, rmsEps: 0, tiedEmbeddings: false });
  });

  it('a truncated file fails with a FormatError wherever it is cut', () => {
    const cuts = [0, 3, 4, 8, 16, 24, 100, 1000, 5000, 14000, 14176, 20000, 600000, gguf.length - 1];
    for (const n of cuts) {
      const err = (() => { try { parseGGUF(gguf.subarray(0, n), 'cut.gguf'); } catch (e) { return e; } })();
      expect(err, `cut at ${n}`).toBeInstanceOf(FormatError);
    }
  });

  const bad: [string, () => Uint8Array, RegExp][] = [
    ['wrong magic', () => Uint8Array.from([0x47, 0x47, 0x55, 0x58, ...gguf.subarray(4, 64)]), /not a GGUF file/],
    ['version 1', () => { const b = gguf.slice(0, 64); b[4] = 1; return b; }, /version 1 is not supported/],
    ['tensor data past the end', () => writeGGUF([], [{ name: 't', dims: [16], type: 0, data: f32data(4) }]).subarray(0, 64 + 32), /past the end|truncated/],
    ['dims whose product overflows', () => writeGGUF([], [{ name: 't', dims: [2n ** 40n, 2n ** 40n], type: 0, data: f32data(1) }]), /more elements than the file can hold/],
    ['unknown dtype', () => writeGGUF([], [{ name: 't', dims: [4], type: 99, data: f32data(4) }]), /unknown type 99/],
    ['a __proto__ metadata key', () => writeGGUF([['__proto__', str('x')]], []), /'__proto__' is not allowed/],
    ['a nested prototype key', () => writeGGUF([['general.constructor.name', str('x')]], []), /not allowed/],
    ['duplicate metadata keys', () => writeGGUF([['a', str('x')], ['a', str('y')]], []), /appears twice/],
    ['duplicate tensor names', () => writeGGUF([], [{ name: 't', dims: [4], type: 0, data: f32data(4) }, { name: 't', dims: [4], type: 0, data: f32data(4) }]), /appears twice/],
    ['an absurd string length', () => { const b = writeGGUF([['key', str('value')]], []); new DataView(b.buffer).setBigUint64(24 + 8 + 3 + 4, 2n ** 50n, true); return b; }, /truncated|too large/],
    ['an absurd tensor count', () => { const b = writeGGUF([], []); new DataView(b.buffer).setBigUint64(8, 2n ** 40n, true); return b; }, /more than the file can hold/],
    ['an absurd array length', () => { const b = writeGGUF([['a', { type: 'array', elem: 'u8', value: [1] }]], []); new DataView(b.buffer).setBigUint64(24 + 8 + 1 + 4 + 4, 2n ** 40n, true); return b; }, /claims \d+ elements/],
    ['a misaligned tensor offset', () => { const b = writeGGUF([], [{ name: 't', dims: [4], type: 0, data: f32data(4) }]); new DataView(b.buffer).setBigUint64(24 + 8 + 1 + 4 + 8 + 4, 3n, true); return b; }, /not aligned/],
  ];
  it.each(bad)('rejects %s', (_, make, msg) => {
    expect(() => parseGGUF(make(), 'bad.gguf')).toThrow(msg);
    expect(() => parseGGUF(make(), 'bad.gguf')).toThrow(FormatError);
  });

  it('never writes to Object.prototype, whatever the keys', () => {
    try { parseGGUF(writeGGUF([['__proto__', str('polluted')]], []), 'x'); } catch { /* rejected */ }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects non-F32 tensors and other architectures with a sentence', () => {
    const src = loadModelSource(GGUF);
    const g = writeLlamaGGUF(src);
    const withArch = writeGGUF([['general.architecture', str('gpt2')]], []);
    expect(() => llamaFromGGUF(parseGGUF(withArch, 'a'), withArch, 'a')).toThrow(/architecture 'gpt2' is not supported/);
    expect(parseGGUF(g, 'g').tensors.size).toBe(48);
  });
});

describe('llama2.c reader', () => {
  it('rejects a truncated checkpoint and a garbage header', () => {
    expect(() => parseLlama2c(bin.subarray(0, 20), 'x.bin')).toThrow(FormatError);
    expect(() => parseLlama2c(bin.subarray(0, 5000), 'x.bin')).toThrow(/truncated/);
    const junk = bin.slice(0, 1000);
    new DataView(junk.buffer).setInt32(0, -5, true);
    expect(() => parseLlama2c(junk, 'x.bin')).toThrow(/not a plausible size/);
  });
  it('rejects a truncated tokenizer', () => {
    const tok = new Uint8Array(fs.readFileSync(TOK));
    expect(() => parseLlama2cTokenizer(tok.subarray(0, 3000), 't.bin', 512)).toThrow(TapirError);
  });
});

describe('GGUF writer round trip', () => {
  it('.bin converted to GGUF, and GGUF without output.weight (tied), give the same logits', async () => {
    const src = loadModelSource(BIN);
    const bytes = writeLlamaGGUF(src);
    const back = { ...llamaFromGGUF(parseGGUF(bytes, 'rt.gguf'), bytes, 'rt.gguf'), file: 'rt.gguf' };
    expect(back.config.tiedEmbeddings).toBe(true); // stories260K.bin shares its classifier
    const a = await Model.create(src, { contextLength: 16 });
    const b = await Model.create(back, { contextLength: 16 });
    try {
      const tokens = a.tokenizer.encode('Once upon a time');
      expect(b.tokenizer.encode('Once upon a time')).toEqual(tokens);
      const la = await a.logits(tokens), lb = await b.logits(tokens);
      la.forEach((row, i) => expect(maxAbsDiff(row, lb[i]!)).toBe(0));
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});
