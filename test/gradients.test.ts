// Gradients at hooks on the GPU (Model.runWithGradients): the compiler's backward of stories260K's
// graph, run on lavapipe, against the float64 reference evaluating the same differentiated graph
// (<= 1e-4 relative, vector norm, per hook); the metric against the forward's logits; the metrics
// (a logit difference, a log-probability at an earlier position, one the caller builds); the forward's
// activations beside the gradients; bad asks refused.
import { describe, expect, it, afterAll } from 'vitest';
import { Model, dtypesOf } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { gradientGraph, type MetricSpec } from '../runtime/interp/gradients.js';
import type { Ops } from '../ops/index.js';
import { interventionTables } from '../runtime/interp/cache.js';
import { saeSplicing } from '../runtime/sae/splice.js';
import type { SaeDims } from '../runtime/sae/gpu_sae.js';
import { ivName } from '../ops/intervene.js';
import type { Node } from '../compiler/ir/op.js';
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

  it('go through interventions in the forward (a zero-ablated head, a scaled position): equal the float64 reference', async () => {
    const interventions = [{ hook: 'blocks.1.attn.hook_z[head=2]', zero: true as const }, { hook: 'blocks.2.hook_resid_mid[pos=3]', scale: 0.5 }];
    const r = await model.runWithGradients(tokens, { target, distractor, hooks, interventions });
    const edited = (await model.runWithHooks(tokens, { interventions })).logits.at(-1)!;
    expect(Math.abs(r.metric - (edited[target]! - edited[distractor]!))).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(r.metric)));
    const plain = await model.runWithGradients(tokens, { target, distractor, hooks });
    expect(relErr(r.grads.get('hook_embed')!.data, plain.grads.get('hook_embed')!.data)).toBeGreaterThan(1e-3); // (the edits matter)
    const tables = interventionTables(interventions, model.graph.hooks, model.hookNames, tokens.length);
    const edits = [...tables.keys()].sort().map((hook) => ({ hook, rows: tokens.length }));
    const ref = new ReferenceRunner(gradientGraph({ ...src.config, contextLength: 64 }, dtypesOf(src.weights), tokens.length, hooks, undefined, edits), src.weights);
    const values = ref.step({ token: tokens, pos: 0, ids: [target, distractor], ...Object.fromEntries([...tables].flatMap(([hook, t]) => [[ivName(hook, 'a'), t.a], [ivName(hook, 'b'), t.b]])) });
    for (const h of hooks) expect(relErr(r.grads.get(h)!.data, values.get(ref.graph.outputs[`grad:${h}`]!)!), h).toBeLessThanOrEqual(1e-4);
    // the head zero-ablated at layer 1 passes nothing back to its query (its z's gradient is with respect
    // to the edited value, as TransformerLens's backward hooks give it, and is not 0)
    const q = (await model.runWithGradients(tokens, { target, distractor, hooks: 'blocks.1.attn.hook_q', interventions })).grads.get('blocks.1.attn.hook_q')!;
    const [H, hs] = [q.shape[2]!, q.shape[3]!];
    for (let p = 0; p < tokens.length; p++) {
      expect(Array.from(q.data.subarray((p * H + 2) * hs, (p * H + 3) * hs)).every((v) => v === 0)).toBe(true);
      expect(Array.from(q.data.subarray((p * H + 1) * hs, (p * H + 2) * hs)).some((v) => v !== 0) || p === 0).toBe(true);
    }
    await expect(model.runWithGradients(tokens, { target, distractor, hooks, interventions: [{ hook: 'blocks.0.hook_resid_post', fn: (a) => a }] })).rejects.toThrow(/not hook functions/);
  });

  it.each([['relu', false], ['topk', true]] as const)('go through a spliced %s SAE (error term %s): equal the float64 reference, latents a hook', async (arch, errorTerm) => {
    const hook = 'blocks.2.hook_resid_post', dims: SaeDims = { dIn: 64, dSae: 96, arch, k: arch === 'topk' ? 6 : 0 };
    const params = { W_enc: Float32Array.from({ length: 64 * 96 }, (_, i) => Math.sin(i * 0.37) * 0.3), b_enc: Float32Array.from({ length: 96 }, (_, i) => Math.cos(i) * 0.1),
      W_dec: Float32Array.from({ length: 96 * 64 }, (_, i) => Math.cos(i * 0.11) * 0.3), b_dec: Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 0.1) };
    const sae = { dims, params, inputScale: 1.5, hook };
    const asked = ['hook_embed', `${hook}.hook_sae_acts_post`, 'blocks.1.hook_resid_pre'];
    const r = await model.runWithGradients(tokens, { target, distractor, hooks: asked, saes: [{ sae, errorTerm }] });
    const spliced = (await model.runWithHooks(tokens, { interventions: [], saes: [{ sae, errorTerm }] })).logits.at(-1)!;
    expect(Math.abs(r.metric - (spliced[target]! - spliced[distractor]!))).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(r.metric)));
    expect(r.grads.get(`${hook}.hook_sae_acts_post`)!.shape).toEqual([1, tokens.length, 96]);
    const splice = saeSplicing(model.graph, [{ sae, errorTerm }]);
    const ref = new ReferenceRunner(gradientGraph({ ...src.config, contextLength: 64 }, dtypesOf(src.weights), tokens.length, asked, undefined, [], splice.specs), new Map([...src.weights, ...splice.tensors]));
    const values = ref.step({ token: tokens, pos: 0, ids: [target, distractor] });
    for (const h of asked) expect(relErr(r.grads.get(h)!.data, values.get(ref.graph.outputs[`grad:${h}`]!)!), h).toBeLessThanOrEqual(1e-4);
    // with the error term the hook's value is the model's whatever x is (SAELens's splice): upstream gradients
    // are the plain model's, while the latents' still reach the output through the decoder; without it the
    // reconstruction replaces the hook, and the gradients change
    const plain = await model.runWithGradients(tokens, { target, distractor, hooks: 'hook_embed' });
    const off = relErr(r.grads.get('hook_embed')!.data, plain.grads.get('hook_embed')!.data);
    if (errorTerm) expect(off).toBeLessThanOrEqual(1e-5);
    else expect(off).toBeGreaterThan(1e-3);
    expect(r.grads.get(`${hook}.hook_sae_acts_post`)!.data.some((v) => v !== 0)).toBe(true);
  });

  it('take a log-probability at an earlier position and a metric the caller builds, and give the forward\'s activations', async () => {
    const pos = 6, token = tokens[pos + 1]!;
    const lp = await model.runWithGradients(tokens, { metric: { kind: 'log_prob', token, pos }, hooks });
    const logits = (await model.logits(tokens))[pos]!;
    let m = -Infinity, sum = 0;
    for (const z of logits) m = Math.max(m, z);
    for (const z of logits) sum += Math.exp(z - m);
    expect(Math.abs(lp.metric - (logits[token]! - m - Math.log(sum)))).toBeLessThanOrEqual(1e-4);
    // a caller's metric: log p(target) − 0.5 · (logit[target] − logit[distractor]), at the last position
    const custom = { kind: 'custom' as const, name: 'mix', build: (o: Ops, z: Node) => o.add(o.logProb(z, o.input('t1', [1])), o.scale(o.logitDiff(z, o.input('t2', [2])), -0.5)), inputs: { t1: Int32Array.of(target), t2: Int32Array.of(target, distractor) } };
    const cu = await model.runWithGradients(tokens, { metric: custom, hooks });
    const cache = (await model.runWithCache(tokens, { hooks })).cache;
    for (const [r, spec, inputs] of [[lp, { kind: 'log_prob', row: pos }, { ids: [token] }], [cu, custom, { t1: [target], t2: [target, distractor] }]] as const) {
      const ref = new ReferenceRunner(gradientGraph({ ...src.config, contextLength: 64 }, dtypesOf(src.weights), tokens.length, hooks, spec as MetricSpec), src.weights);
      const values = ref.step({ token: tokens, pos: 0, ...inputs });
      expect(Math.abs(r.metric - values.get(ref.graph.outputs.metric!)![0]!)).toBeLessThanOrEqual(1e-4);
      for (const h of hooks) {
        expect(relErr(r.grads.get(h)!.data, values.get(ref.graph.outputs[`grad:${h}`]!)!), `${spec.kind} ${h}`).toBeLessThanOrEqual(1e-4);
        expect(Array.from(r.acts.get(h)!.data), h).toEqual(Array.from(cache.get(h)!.data));
      }
    }
    // the log-probability at position 6 does not depend on later positions: their gradients are 0
    const g = lp.grads.get('blocks.0.hook_resid_pre')!, width = g.data.length / tokens.length;
    expect(Array.from(g.data.subarray((pos + 1) * width))).toEqual(new Array((tokens.length - pos - 1) * width).fill(0));
  });

  it('take a prompt of several prefill blocks as one backward, and refuse what they cannot give: a hook no backward reaches, a filtered hook, a token outside the vocabulary, a prompt past the bindings', async () => {
    // (each head's result is computed beside the attention output, only when read: the logits do not depend on it)
    await expect(model.runWithGradients(tokens, { target, distractor, hooks: 'blocks.0.attn.hook_result' })).rejects.toThrow(/no gradient at blocks\.0\.attn\.hook_result/);
    await expect(model.runWithGradients(tokens, { target, distractor, hooks: 'blocks.0.attn.hook_z[head=1]' })).rejects.toThrow(/whole hooks/);
    await expect(model.runWithGradients(tokens, { target: 100000, distractor, hooks })).rejects.toThrow(UsageError);
    await expect(model.runWithGradients(tokens, { target, distractor, hooks: 'blocks.9.hook_resid_pre' })).rejects.toThrow(/out of range/);
    await expect(model.runWithGradients(tokens, { metric: { kind: 'log_prob', token: target, pos: tokens.length }, hooks })).rejects.toThrow(new RegExp(`position ${tokens.length} is outside the prompt's ${tokens.length} positions`));
    await expect(model.runWithGradients(tokens, { hooks })).rejects.toThrow(/need a metric/);
    await expect(model.runWithGradients(tokens, { metric: { kind: 'custom', name: 'vector', build: (_o, z) => z }, hooks })).rejects.toThrow(/a metric is one number/);
    // a device of small bindings: prefill blocks of 8 positions (the vocabulary's logits), gradients of
    // up to 16 (the attention's scores over a 32-position cache): a 14-token prompt is one backward
    const small = await Model.create(src, { contextLength: 32, maxBindingBytes: 16 * 1024 + 16 });
    try {
      expect(small.blockSize).toBe(8);
      expect(tokens.length).toBeGreaterThan(small.blockSize);
      const r = await small.runWithGradients(tokens, { target, distractor, hooks });
      const big = await model.runWithGradients(tokens, { target, distractor, hooks });
      for (const h of hooks) expect(relErr(r.grads.get(h)!.data, big.grads.get(h)!.data), h).toBeLessThanOrEqual(1e-5);
      const long = [...tokens, ...tokens.slice(1, 4)];
      await expect(small.runWithGradients(long, { target, distractor, hooks })).rejects.toThrow(/at most 16 tokens on this device/);
    } finally {
      small.dispose();
    }
  });
});
