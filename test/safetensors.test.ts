// Hugging Face folders: a synthetic model written as config.json + tokenizer.json + model.safetensors
// (Q/K rows in HF's rotate-half layout, RoPE scaling in config.json) runs exactly like its GGUF.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FormatError } from '../compiler/errors.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { writeHFFolder } from '../runtime/node/write_file.js';
import { parseSafetensors, writeSafetensors } from '../runtime/formats/safetensors.js';
import { PRESETS, synthModel, synthWeights } from '../runtime/synth/synth.js';
import { CORPUS } from '../runtime/synth/corpus.js';
import { writeSynth } from './helpers/synth.js';
import { relErr } from './helpers/numeric.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-st-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('safetensors folders', () => {
  it.each(['f32', 'f16'] as const)('a %s synth model as a folder gives the GGUF\'s logits, past position 256', async (dtype) => {
    const m = synthModel('tiny', dtype, 3);
    const gguf = writeSynth(m, path.join(dir, `tiny-${dtype}.gguf`));
    const folder = path.join(dir, `tiny-${dtype}`);
    const s = PRESETS.tiny!.llama3Scaling!;
    writeHFFolder({ config: m.config, vocab: m.vocab, weights: synthWeights(m), file: 'synth' }, folder,
      { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalContext });
    const a = await Model.create(loadModelSource(gguf), { contextLength: 300 });
    const b = await Model.create(loadModelSource(folder), { contextLength: 300 });
    try {
      // the GGUF stores the divisors as f32 (rope_freqs.weight); config.json gives them exactly
      expect(b.config.ropeFactors!.map(Math.fround)).toEqual(a.config.ropeFactors);
      const tokens = a.tokenizer.encode(CORPUS).slice(0, 270);
      expect(b.tokenizer.encode(CORPUS).slice(0, 270)).toEqual(tokens);
      const la = await a.logits(tokens), lb = await b.logits(tokens);
      // the same weights and kernels; only the f32 rounding of the RoPE divisors differs
      la.forEach((row, i) => expect(relErr(row, lb[i]!), `position ${i}`).toBeLessThanOrEqual(1e-6));
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

describe('safetensors reader', () => {
  const good = () => writeSafetensors([{ name: 'a', dtype: 'f32', shape: [2, 2], bytes: new Uint8Array(16) }, { name: 'b', dtype: 'f16', shape: [3], bytes: new Uint8Array(6) }]);
  it('reads what the writer wrote', () => {
    const st = parseSafetensors(good(), 'x');
    expect([...st.tensors.keys()]).toEqual(['a', 'b']);
    expect(st.tensors.get('b')!.shape).toEqual([3]);
  });
  const header = (h: unknown) => {
    const j = new TextEncoder().encode(JSON.stringify(h));
    const out = new Uint8Array(8 + j.length + 16);
    new DataView(out.buffer).setBigUint64(0, BigInt(j.length), true);
    out.set(j, 8);
    return out;
  };
  const bad: [string, () => Uint8Array, RegExp][] = [
    ['a truncated header', () => good().subarray(0, 20), /header length|truncated/],
    ['a header length past the end', () => { const b = good(); new DataView(b.buffer).setBigUint64(0, 2n ** 60n, true); return b; }, /larger than the file/],
    ['broken JSON', () => { const b = good(); b[9] = 0x7b; b[10] = 0x7b; return b; }, /not valid JSON/],
    ['offsets past the end', () => header({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 1600] } }), /past the end/],
    ['a size that does not match the shape', () => header({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }), /needs 12/],
    ['dims whose product overflows', () => header({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 16] } }), /more elements than the file/],
    ['an unknown dtype', () => header({ a: { dtype: 'Q9', shape: [4], data_offsets: [0, 16] } }), /unknown dtype 'Q9'/],
    ['a __proto__ tensor name', () => new TextEncoder().encode('\u0018\0\0\0\0\0\0\0{"__proto__":{"x":1}}   '), /not allowed/],
    ['overlapping tensors', () => header({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), /overlap/],
  ];
  it.each(bad)('rejects %s', (_, make, msg) => {
    expect(() => parseSafetensors(make(), 'bad.safetensors')).toThrow(msg);
    expect(() => parseSafetensors(make(), 'bad.safetensors')).toThrow(FormatError);
  });
});
