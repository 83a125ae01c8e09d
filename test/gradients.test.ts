// Gradients at hooks on the GPU (Model.runWithGradients): the compiler's backward of stories260K's
// graph, run on lavapipe, against the float64 reference evaluating the same differentiated graph
// (<= 1e-4 relative, vector norm, per hook); the metric against the forward's logits; bad asks refused.
import { describe, expect, it, afterAll } from 'vitest';
import { Model, dtypesOf } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { gradientGraph } from '../runtime/interp/gradients.js';
import { UsageError } from '../compiler/errors.js';
import { relErr } from './helpers/numeric.js';
import { GGUF } from './helpers/models.js';

const src = loadModelSource(GGUF);
const model = await Model.create(src, { contextLength: 64 });
afterAll(() => model.dispose());

describe('gradients at hooks (GPU)', () => {
  const tokens = model.tokenizer.encode('Once upon a time, there was a little girl named');
  const [target, distractor] = [model.tokenizer.encode(' Lily'), model.tokenizer.encode(' Tim')].map((t) => t[t.length - 1]!) as [number, number];
  const hooks = ['hook_embed', 'blocks.0.hook_resid_pre', 'blocks.2.hook_resid_mid', 'blocks.4.hook_resid_post', 'blocks.1.attn.hook_z', 'blocks.3.mlp.hook_post'];

  it('equal the float64 reference of the same backward, and the metric is the logit difference', async () => {
    const r = await model.runWithGradients(tokens, { target, distractor, hooks });
    const logits = (await model.logits(tokens)).at(-1)!;
    expect(Math.abs(r.metric - (logits[target]! - logits[distractor]!))).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(r.metric)));
    // the reference: the same graph, differentiated the same way, evaluated in float64
    const ref = new ReferenceRunner(gradientGraph({ ...src.config, contextLength: 64 }, dtypesOf(src.weights), tokens.length, hooks), src.weights);
    const values = ref.step({ token: tokens, pos: 0, ids: [target, distractor] });
    for (const h of hooks) {
      const got = r.grads.get(h)!;
      expect(got.shape.slice(0, 2)).toEqual([1, tokens.length]);
      const want = values.get(ref.graph.outputs[`grad:${h}`]!)!;
      expect(got.data.length).toBe(want.length);
      expect(relErr(got.data, want), h).toBeLessThanOrEqual(1e-4);
    }
  });

  it('refuse what they cannot give: a hook no backward reaches, a filtered hook, a token outside the vocabulary, a prompt of several blocks', async () => {
    await expect(model.runWithGradients(tokens, { target, distractor, hooks: 'blocks.0.attn.hook_pattern' })).rejects.toThrow(/no gradient at blocks\.0\.attn\.hook_pattern/);
    await expect(model.runWithGradients(tokens, { target, distractor, hooks: 'blocks.0.attn.hook_z[head=1]' })).rejects.toThrow(/whole hooks/);
    await expect(model.runWithGradients(tokens, { target: 100000, distractor, hooks })).rejects.toThrow(UsageError);
    await expect(model.runWithGradients(tokens, { target, distractor, hooks: 'blocks.9.hook_resid_pre' })).rejects.toThrow(/out of range/);
    const small = await Model.create(src, { contextLength: 64, maxBindingBytes: 8 * 64 * 8 * 4 + 16 }); // blocks of 8 positions
    try {
      expect(tokens.length).toBeGreaterThan(small.blockSize);
      await expect(small.runWithGradients(tokens, { target, distractor, hooks })).rejects.toThrow(/one block for now: at most 8 tokens/);
    } finally {
      small.dispose();
    }
  });
});
