// stories260K end to end: greedy text against llama2.c's published output, and every position's
// logits against the float64 reference forward pass (built from the ops' references, not kernels).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { BIN, GGUF, TOK, publishedOutput } from './helpers/models.js';
import { maxAbsDiff } from './helpers/numeric.js';

const PROMPTS = ['Once upon a time', 'Lily and Ben went to the park. They saw a big dog', 'The cat sat on the mat.\nThe dog', 'Tom was sad'];

describe.each([['gguf', GGUF], ['llama2.c .bin', BIN]])('stories260K from %s', (_, file) => {
  let model: Model;
  beforeAll(async () => { model = await Model.create(loadModelSource(file, file === BIN ? { tokenizer: TOK } : {})); });
  afterAll(() => model?.dispose());

  it('greedy decoding from BOS reproduces the published output byte for byte (256 tokens)', async () => {
    const r = await model.generate({ maxNewTokens: 256, temperature: 0 });
    expect(r.tokens.length).toBe(257);
    expect(r.tokens[0]).toBe(1);
    // llama2.c prints a newline after the last token
    expect(r.text + '\n').toBe(publishedOutput());
  });

  it('every position\'s logits match the float64 reference within 1e-4', async () => {
    const ref = model.reference();
    for (const prompt of PROMPTS) {
      const tokens = model.tokenizer.encode(prompt);
      const gpu = await model.logits(tokens);
      ref.reset();
      tokens.forEach((token, pos) => {
        const want = ref.output({ token, pos }, 'logits');
        expect(maxAbsDiff(gpu[pos]!, want), `${prompt} @ ${pos}`).toBeLessThanOrEqual(1e-4);
      });
    }
  });
});

describe('weights split to fit small bindings', () => {
  it('gives the same logits as unsplit weights', async () => {
    const src = loadModelSource(GGUF);
    const whole = await Model.create(src, { contextLength: 16 });
    // 4 KiB bindings: the embedding and every FFN matrix are cut into row pieces
    const split = await Model.create(src, { contextLength: 16, maxBindingBytes: 4096 });
    try {
      expect(split.plan.buffers.size).toBeGreaterThan(whole.plan.buffers.size);
      const tokens = whole.tokenizer.encode(PROMPTS[1]!).slice(0, 16);
      const a = await whole.logits(tokens), b = await split.logits(tokens);
      a.forEach((row, i) => expect(maxAbsDiff(row, b[i]!)).toBeLessThanOrEqual(1e-5));
    } finally {
      whole.dispose();
      split.dispose();
    }
  });
});
