// Prefill: a prompt runs as blocks of positions, one pass each (matrix products, causal attention
// within the block), and gives what one position at a time gives.
import { describe, expect, it } from 'vitest';
import { compile } from '../compiler/passes.js';
import { llama } from '../models/llama.js';
import { fragments, kernels } from '../ops/kernels.gen.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { GGUF } from './helpers/models.js';
import { relErr } from './helpers/numeric.js';
import { target } from '../compiler/target.js';
import { OPSET } from '../ops/index.js';

const src = loadModelSource(GGUF);

describe('prefill', () => {
  it('a block pass gives the logits of one position at a time, and of the float64 reference over the block', async () => {
    const model = await Model.create(src, { contextLength: 64 });
    try {
      const tokens = model.tokenizer.encode('Lily and Ben went to the park. They saw a big dog');
      const block = await model.logits(tokens);
      model.reset();
      const V = model.config.vocabSize;
      const ref = new ReferenceRunner(llama(model.config, (n) => src.weights.get(n)!.dtype, { positions: tokens.length }), src.weights)
        .output({ token: tokens, pos: 0 }, 'logits');
      for (const [p, t] of tokens.entries()) {
        const one = await model.forward(t);
        expect(relErr(block[p]!, one), `position ${p}`).toBeLessThanOrEqual(1e-5);
        expect(relErr(block[p]!, ref.subarray(p * V, (p + 1) * V)), `position ${p} vs reference`).toBeLessThanOrEqual(1e-4);
      }
    } finally {
      model.dispose();
    }
  });

  it('splits long prompts into blocks that fit the binding limit, and the blocks agree with one pass', async () => {
    const small = await Model.create(src, { contextLength: 64, maxBindingBytes: 8 * 64 * 8 * 4 + 16 }); // 8 positions a block
    const big = await Model.create(src, { contextLength: 64 });
    try {
      expect(small.blockSize).toBe(8);
      const tokens = small.tokenizer.encode('Once upon a time, there was a little girl named Lily. She loved to play');
      expect(tokens.length).toBeGreaterThan(16);
      const [a, b] = [await small.runWithCache(tokens, { hooks: 'blocks.2.hook_resid_post' }), await big.runWithCache(tokens, { hooks: 'blocks.2.hook_resid_post' })];
      expect(relErr(a.cache.get('blocks.2.hook_resid_post')!.data, b.cache.get('blocks.2.hook_resid_post')!.data)).toBe(0);
      a.logits.forEach((l, p) => expect(relErr(l, b.logits[p]!), `position ${p}`).toBe(0)); // a row is computed alike in any block
    } finally {
      small.dispose();
      big.dispose();
    }
  });

  it('several prompts at once give what each gives alone: logits, hooks and patterns, [batch, pos, ...]', async () => {
    const model = await Model.create(src, { contextLength: 64, maxBindingBytes: 8 * 64 * 8 * 4 + 16 }); // blocks of 8 rows: 4 positions × 2 prompts
    try {
      const prompts = ['Tim had a red ball in the park', 'Ben saw a big cat in the park'].map((p) => model.tokenizer.encode(p));
      expect(prompts[0]!.length).toBe(prompts[1]!.length);
      const hooks = 'blocks.1.hook_resid_post,blocks.2.attn.hook_pattern,blocks.0.attn.hook_z[head=3]';
      const batch = await model.runBatchWithCache(prompts, { hooks });
      for (const [b, p] of prompts.entries()) {
        const one = await model.runWithCache(p, { hooks });
        one.logits.forEach((l, t) => expect(relErr(batch.logits[b]![t]!, l), `prompt ${b} position ${t}`).toBe(0)); // a row is computed alike in any block
        for (const [key, e] of one.cache) {
          const all = batch.cache.get(key)!;
          expect(all.shape).toEqual([2, ...e.shape.slice(1)]);
          expect(relErr(all.data.subarray(b * e.data.length, (b + 1) * e.data.length), e.data), key).toBe(0);
        }
      }
      await expect(model.runBatchWithCache([prompts[0]!, prompts[0]!.slice(1)], { hooks })).rejects.toThrow(/one token length/);
    } finally {
      model.dispose();
    }
  });

  it('whole hooks over several blocks, read back block by block as the GPU finishes each: the values of one buffer read at the end', async () => {
    const model = await Model.create(src, { contextLength: 64, maxBindingBytes: 8 * 64 * 8 * 4 + 16 }); // blocks of 8 rows: 4 positions × 2 prompts
    try {
      const prompts = ['Tim had a red ball in the park', 'Ben saw a big cat in the park'].map((p) => model.tokenizer.encode(p));
      const n = prompts[0]!.length;
      expect(model.blocks(n, 2).length).toBeGreaterThan(2);
      const hooks = 'blocks.*.hook_resid_post,blocks.0.attn.hook_z,blocks.3.mlp.hook_post';
      const [last, none, all] = [await model.runBatchWithCache(prompts, { hooks, logits: 'last' }), await model.runBatchWithCache(prompts, { hooks, logits: 'none' }), await model.runBatchWithCache(prompts, { hooks, logits: 'all' })];
      expect([...last.cache.keys()]).toEqual([...all.cache.keys()]);
      for (const [key, e] of all.cache) {
        for (const r of [last, none]) {
          expect(r.cache.get(key)!.shape, key).toEqual(e.shape);
          expect(relErr(r.cache.get(key)!.data, e.data), key).toBe(0);
        }
      }
      prompts.forEach((_, b) => {
        expect(last.logits[b]!.length).toBe(1);
        expect(relErr(last.logits[b]![0]!, all.logits[b]![n - 1]!), `prompt ${b}`).toBe(0);
        expect(none.logits[b]).toEqual([]);
      });
    } finally {
      model.dispose();
    }
  });

  it('greedy decoding with the token loop on the GPU gives the tokens of the host loop', async () => {
    const model = await Model.create(src, { contextLength: 64 });
    try {
      const host = await model.generate({ prompt: 'Lily and Ben', maxNewTokens: 24, stopAtEos: false });
      const prompt = host.tokens.slice(0, host.promptTokens);
      const next = await model.prefill(prompt, 'next');
      const first = new Int32Array(next.buffer, next.byteOffset, 1)[0]!;
      const gpu = await model.executor.greedyOnGpu(first, prompt.length, 23, true);
      expect([first, ...gpu.tokens]).toEqual(host.tokens.slice(host.promptTokens));
      expect(gpu.gpuNs!.every((t) => t > 0)).toBe(true); // timestamp queries, where offered (lavapipe offers them)
    } finally {
      model.dispose();
    }
  });

  it('generate (token loop on the GPU, read back in growing chunks) stops where the one-token-at-a-time loop stops', async () => {
    const model = await Model.create(src, { contextLength: 512 });
    try {
      const { bos, eos } = model.tokenizer.vocab;
      for (const maxNewTokens of [1, 2, 8, 9, 23, 400]) {
        const prompt = model.tokenizer.encode('Once upon a time');
        const got = await model.generate({ tokens: prompt, maxNewTokens });
        // the reference: one token per step, read back every time
        const want = [...prompt];
        let next = new Int32Array((await model.prefill(prompt, 'next')).buffer)[0]!;
        for (let i = 0; i < maxNewTokens && next !== eos && next !== bos; i++) {
          want.push(next);
          if (i + 1 < maxNewTokens) next = await model.forwardGreedy(next);
        }
        expect(got.tokens, `maxNewTokens ${maxNewTokens}`).toEqual(want);
      }
    } finally {
      model.dispose();
    }
  });

  it('stories sampled together (sampleBatch) are the stories sampled one at a time with the same seeds', async () => {
    const model = await Model.create(src, { contextLength: 512 });
    try {
      const seeds = [5, 17, 23, 99];
      const together = await model.sampleBatch(seeds, 60, 1);
      for (const [i, seed] of seeds.entries()) {
        const alone = await model.generate({ tokens: [model.tokenizer.vocab.bos], maxNewTokens: 59, temperature: 1, topP: 1, seed });
        expect(together[i], `seed ${seed}`).toEqual(alone.tokens);
      }
      expect(new Set(together.map((t) => t.join())).size).toBe(seeds.length);
    } finally {
      model.dispose();
    }
  });

  it('the block plan uses matrix-product kernels and keeps the per-layer fusion', () => {
    const c = { ...src.config, contextLength: 64 };
    const plan = compile(llama(c, () => 'f32', { positions: 16 }), OPSET, target({ maxBindingBytes: 1 << 27 })).plan!;
    const names = plan.dispatches.map((d) => d.kernel);
    expect(names.filter((k) => k.startsWith('matmulSmallKernel')).length).toBe(7 * c.nLayers + 1); // q, k, v, o, gate, up, down; + logits (16 positions: small tiles)
    expect(names.filter((k) => k.startsWith('matvecKernel'))).toEqual([]);
    expect(names).toContain('ropeKvKernel');
    // the block's query rows in tiles that read their KV head's keys once (ops/attention_block.ts)
    expect(names.filter((k) => k === 'attentionBlockKernel').length).toBe(c.nLayers);
    expect(names).not.toContain('attentionShortKernel');
    expect(plan.dispatches.length).toBeLessThanOrEqual(10 * c.nLayers + 3);
  });
});
