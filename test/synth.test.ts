// Synthetic models: written as GGUF, read back, run on the GPU, and compared with the float64
// reference on the dequantized weights at every position — past 256, where Llama 3 RoPE scaling
// visibly changes the angles.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { synthModel } from '../runtime/synth/synth.js';
import { writeSynth } from './helpers/synth.js';
import { CORPUS } from '../runtime/synth/corpus.js';
import { relErr } from './helpers/numeric.js';
import type { DType } from '../compiler/ir/dtype.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-synth-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const TOL: Record<string, number> = { f32: 1e-5, f16: 1e-3, bf16: 1e-3, q8_0: 1e-3, q4_0: 1e-3 };

describe.each(['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as DType[])('synth tiny (%s)', (dtype) => {
  it('GPU logits match the float64 reference on the dequantized weights at every position up to 280', async () => {
    const file = writeSynth(synthModel('tiny', dtype, 1), path.join(dir, `tiny-${dtype}.gguf`));
    const model = await Model.create(loadModelSource(file), { contextLength: 320 });
    try {
      expect(model.config.ropeFactors?.length).toBe(16);
      const tokens = model.tokenizer.encode(CORPUS).slice(0, 280);
      expect(tokens.length).toBe(280);
      const gpu = await model.logits(tokens);
      const ref = model.reference();
      let worst = 0, spread = 0;
      tokens.forEach((token, pos) => {
        const want = ref.output({ token, pos }, 'logits');
        worst = Math.max(worst, relErr(gpu[pos]!, want));
        if (Number.isNaN(relErr(gpu[pos]!, want))) worst = NaN;
        spread = Math.max(spread, Math.max(...want) - Math.min(...want));
      });
      expect(worst).toBeLessThanOrEqual(TOL[dtype]!);
      expect(spread, 'synthetic logits should not be flat').toBeGreaterThan(5);
    } finally {
      model.dispose();
    }
  });
});

describe('synth presets', () => {
  it.each(['stories260K', 'stories15M', 'llama-3.2-1b'])('%s has the shapes of the real model', (name) => {
    const m = synthModel(name, 'q8_0');
    const params = m.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    const expected: Record<string, number> = { stories260K: 260_032 + 512 * 64, stories15M: 15_191_712 + 32000 * 288, 'llama-3.2-1b': 1_235_814_400 };
    expect(params).toBe(expected[name]);
    expect(m.vocab.pieces.length).toBe(m.config.vocabSize);
  });

  it('the same seed gives the same bytes, another seed others', () => {
    const a = synthModel('tiny', 'q4_0', 5).tensors[3]!.produce();
    const b = synthModel('tiny', 'q4_0', 5).tensors[3]!.produce();
    const c = synthModel('tiny', 'q4_0', 6).tensors[3]!.produce();
    expect(Buffer.compare(a, b)).toBe(0);
    expect(Buffer.compare(a, c)).not.toBe(0);
  });

  it('a SentencePiece preset generates through its own tokenizer', async () => {
    const file = writeSynth(synthModel('stories260K', 'f16'), path.join(dir, 's260.gguf'));
    const model = await Model.create(loadModelSource(file), { contextLength: 64 });
    try {
      const r = await model.generate({ prompt: 'Once upon a time', maxNewTokens: 10 });
      expect(r.text.startsWith('Once upon a time')).toBe(true);
      expect(model.tokenizer.decode(model.tokenizer.encode(CORPUS))).toBe(CORPUS);
    } finally {
      model.dispose();
    }
  });
});
