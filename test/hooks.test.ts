// Hooks: TransformerLens names, values through the fused plan equal to the float64 reference at the
// same point, selectors, and the guarantees that taps change nothing they should not.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hookNamesOf, selectHooks } from '../compiler/hooks.js';
import { compile } from '../compiler/passes.js';
import { llama } from '../models/llama.js';
import { fragments, kernels } from '../ops/kernels.gen.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { synthModel } from '../runtime/synth/synth.js';
import { GGUF } from './helpers/models.js';
import { relErr } from './helpers/numeric.js';
import { writeSynth } from './helpers/synth.js';
import { target } from '../compiler/target.js';
import { OPSET } from '../ops/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-hooks-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function everyHookMatches(file: string, prompt: string) {
  const model = await Model.create(loadModelSource(file), { contextLength: 64 });
  try {
    const tokens = model.tokenizer.encode(prompt);
    const { logits, cache } = await model.runWithCache(tokens, { hooks: '*,*.*,blocks.*.*,blocks.*.attn.*,blocks.*.mlp.*,blocks.*.ln1.*,blocks.*.ln2.*' });
    expect([...cache.keys()].sort()).toEqual([...model.hookNames].sort());
    const ref = model.reference();
    const plain = await model.logits(tokens);
    tokens.forEach((token, pos) => {
      const values = ref.step({ token, pos });
      for (const [name, hook] of Object.entries(model.graph.hooks)) {
        const want = values.get(hook.node)!;
        if (hook.layout === 'pattern') {
          // [1, head, query, key]: this query's row of every head, keys so far; scores are −∞ past the query
          const [heads, ctx] = hook.shape as [number, number], n = tokens.length, data = cache.get(name)!.data;
          const got = Float64Array.from({ length: heads * (pos + 1) }, (_, i) => data[(Math.floor(i / (pos + 1)) * n + pos) * n + (i % (pos + 1))]!);
          const ref = Float64Array.from({ length: heads * (pos + 1) }, (_, i) => want[Math.floor(i / (pos + 1)) * ctx + (i % (pos + 1))]!);
          expect(relErr(got, ref), `${name} @ ${pos}`).toBeLessThanOrEqual(1e-4);
          for (let h = 0; h < heads; h++) for (let k = pos + 1; k < n; k++) expect(data[(h * n + pos) * n + k], `${name} masked`).toBe(name.endsWith('scores') ? -Infinity : 0);
          continue;
        }
        const per = hook.node.size;
        const got = cache.get(name)!.data.subarray(pos * per, (pos + 1) * per);
        expect(relErr(got, want), `${name} @ ${pos}`).toBeLessThanOrEqual(1e-4);
      }
      // tapping changes no logit (the same kernels compute them)
      expect(relErr(logits[pos]!, plain[pos]!)).toBeLessThanOrEqual(1e-6);
    });
  } finally {
    model.dispose();
  }
}

describe('hooks through the fused plan', () => {
  it('every hook equals the float64 reference on stories260K', () => everyHookMatches(GGUF, 'Lily and Ben went to the park. They saw'));
  it('every hook equals the float64 reference on the tiny synth model (GQA, Llama 3 RoPE)', () =>
    everyHookMatches(writeSynth(synthModel('tiny', 'q8_0', 7), path.join(dir, 't.gguf')), 'Once upon a time, the tapir said hello.'));

  it('gives TransformerLens shapes, and narrows to a head or a position', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
    try {
      const tokens = model.tokenizer.encode('Once upon a time');
      const { cache } = await model.runWithCache(tokens, { hooks: ['blocks.2.attn.hook_z', 'blocks.2.attn.hook_z[head=5]', 'blocks.1-2.attn.hook_k', 'blocks.4.hook_resid_pre[pos=-1]'] });
      const z = cache.get('blocks.2.attn.hook_z')!;
      expect(z.shape).toEqual([1, 5, 8, 8]);
      expect(cache.get('blocks.1.attn.hook_k')!.shape).toEqual([1, 5, 4, 8]); // GQA keeps its 4 kv heads
      const z5 = cache.get('blocks.2.attn.hook_z[head=5]')!;
      expect(z5.shape).toEqual([1, 5, 8]);
      expect(Array.from(z5.data.subarray(8, 16))).toEqual(Array.from(z.data.subarray(64 + 40, 64 + 48)));
      const last = cache.get('blocks.4.hook_resid_pre[pos=-1]')!;
      expect(last.shape).toEqual([1, 1, 64]);
      await expect(model.runWithCache(tokens, { hooks: 'blocks.4.hook_resid_pre[pos=9]' })).rejects.toThrow(/position 9 is out of range/);
      await expect(model.runWithCache(tokens, { hooks: 'blocks.2.hook_resid_pre[head=1]' })).rejects.toThrow(/has no heads/);
    } finally {
      model.dispose();
    }
  });

  it('an edited run caches hooks that are computed only when tapped (patterns, norm scales), edited', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
    try {
      const tokens = model.tokenizer.encode('Once upon a time');
      const hooks = ['blocks.1.attn.hook_pattern', 'blocks.1.ln1.hook_scale'];
      const plain = await model.runWithCache(tokens, { hooks });
      const edited = await model.runWithHooks(tokens, { interventions: [{ hook: 'blocks.0.hook_resid_post', scale: 0.5 }], hooks });
      // RMSNorm's scale sees the halved residual stream: half as large (up to eps); the pattern changes
      const [s0, s1] = [plain.cache.get(hooks[1]!)!.data, edited.cache.get(hooks[1]!)!.data];
      s0.forEach((v, i) => expect(s1[i]! / v).toBeCloseTo(0.5, 3));
      expect(edited.cache.get(hooks[0]!)!.data).not.toEqual(plain.cache.get(hooks[0]!)!.data);
    } finally {
      model.dispose();
    }
  });

  it('tapping does not change the greedy tokens, and without taps the plan is the plain one', async () => {
    const src = loadModelSource(GGUF);
    const graph = llama({ ...src.config, contextLength: 64 });
    const t = target({ maxBindingBytes: 1 << 27 });
    const plain = compile(graph, OPSET, t).plan!, none = compile(graph, OPSET, t, { taps: [] }).plan!;
    expect(none.toString()).toBe(plain.toString());
    const model = await Model.create(src, { contextLength: 64 });
    try {
      const greedy = await model.generate({ maxNewTokens: 20 });
      const { logits } = await model.runWithCache(greedy.tokens, { hooks: 'blocks.*.hook_resid_mid,blocks.*.mlp.hook_post' });
      const argmax = (r: Float32Array) => r.indexOf(Math.max(...r));
      expect(logits.slice(0, -1).map(argmax)).toEqual(greedy.tokens.slice(1));
    } finally {
      model.dispose();
    }
  });
});

describe('taps survive fusion', () => {
  const src = loadModelSource(GGUF);
  const graph = llama({ ...src.config, contextLength: 64 });
  const t = target({ maxBindingBytes: 1 << 27 });
  const fusedKernels = (p: ReturnType<typeof compile>['plan']) =>
    p!.dispatches.filter((d) => !OWN_KERNEL.has(d.node.op.name)).map((d) => d.kernel.replace(/\+(\w+:)?storeEpilogue/g, ''));
  // hooks that no fused kernel computes get their own kernel, and only when tapped
  const OWN_KERNEL = new Set(['attention_scores', 'pattern_softmax', 'rms_parts', 'slice', 'head_result']);
  const plain = compile(graph, OPSET, t).plan!;
  it.each(Object.keys(graph.hooks).filter((h) => h.startsWith('blocks.1.') || !h.startsWith('blocks.')))('%s: the fused kernels stay, the value is stored by one of them or read from its output', (hook) => {
    const tapped = compile(graph, OPSET, t, { taps: [hook] }).plan!;
    expect(fusedKernels(tapped)).toEqual(fusedKernels(plain));
    const extra = tapped.dispatches.length - plain.dispatches.length;
    expect(extra).toBeLessThanOrEqual(hook.endsWith('attn.hook_pattern') ? 2 : 1); // (the pattern: the scores, then their softmax)
    expect(tapped.dispatches.filter((d) => OWN_KERNEL.has(d.node.op.name))).toHaveLength(extra);
  });
  it('a store appears exactly where an absorbed value is tapped', () => {
    const kernelsOf = (taps: string[]) => compile(graph, OPSET, t, { taps }).plan!.dispatches.map((d) => d.kernel).filter((k) => k.includes('store'));
    expect(kernelsOf(['blocks.1.hook_attn_out'])).toEqual(['matvecKernel+storeEpilogue+addEpilogue']);
    expect(kernelsOf(['blocks.1.hook_mlp_out'])).toEqual(['matvecKernel+storeEpilogue+addEpilogue']);
    expect(kernelsOf(['blocks.1.mlp.hook_pre', 'blocks.1.mlp.hook_pre_linear'])).toEqual(['ffnGateUpKernel+gate:storeEpilogue+up:storeEpilogue']);
    expect(kernelsOf(['blocks.1.attn.hook_rot_k'])).toEqual(['ropeKvKernel+k:storeEpilogue']);
    expect(kernelsOf(['blocks.1.hook_resid_post', 'blocks.1.attn.hook_z', 'blocks.1.attn.hook_rot_q'])).toEqual([]); // outputs of fused kernels already
  });
});

describe('hook selectors', () => {
  const names = llama({ dim: 16, hiddenDim: 24, nLayers: 8, nHeads: 4, nKvHeads: 2, vocabSize: 12, contextLength: 8, ropeTheta: 1e4, rotDim: 4, rmsEps: 1e-5, tiedEmbeddings: true }).hooks;
  const all = Object.keys(names);
  it('expand wildcards, ranges and lists', () => {
    expect(selectHooks('blocks.*.hook_resid_post', all).map((s) => s.hook)).toEqual([...Array(8).keys()].map((l) => `blocks.${l}.hook_resid_post`));
    expect(selectHooks('blocks.3-5.attn.hook_z', all).map((s) => s.hook)).toEqual(['blocks.3.attn.hook_z', 'blocks.4.attn.hook_z', 'blocks.5.attn.hook_z']);
    expect(selectHooks('hook_embed, hook_logits', all).map((s) => s.key)).toEqual(['hook_embed', 'hook_logits']);
    expect(selectHooks('blocks.2.attn.hook_z[head=3]', all)).toEqual([{ hook: 'blocks.2.attn.hook_z', head: 3, key: 'blocks.2.attn.hook_z[head=3]' }]);
  });
  it('are matched once per names array; each caller gets its own selections', () => {
    const first = selectHooks('blocks.2-3.attn.hook_z[head=1]', all);
    first[0]!.pos = 5; // (a caller editing what it got)
    first.pop();
    expect(selectHooks('blocks.2-3.attn.hook_z[head=1]', all)).toEqual([2, 3].map((l) => ({ hook: `blocks.${l}.attn.hook_z`, head: 1, key: `blocks.${l}.attn.hook_z[head=1]` })));
    // another model's names: matched against those, not the first model's
    const fewer = all.filter((n) => !n.startsWith('blocks.3.'));
    expect(selectHooks('blocks.*.attn.hook_z', fewer).map((s) => s.hook)).toEqual([0, 1, 2, 4, 5, 6, 7].map((l) => `blocks.${l}.attn.hook_z`));
    expect(hookNamesOf(names)).toBe(hookNamesOf(names));
    expect(hookNamesOf(names)).toEqual(all);
  });
  it("take TransformerLens's short names (get_act_name) for a hook at every layer", () => {
    const every = (suffix: string) => [...Array(8).keys()].map((l) => `blocks.${l}.${suffix}`);
    expect(selectHooks('resid_post', all).map((s) => s.hook)).toEqual(every('hook_resid_post'));
    expect(selectHooks('pattern', all).map((s) => s.hook)).toEqual(every('attn.hook_pattern'));
    expect(selectHooks('z[head=1]', all)).toEqual(every('attn.hook_z').map((hook) => ({ hook, head: 1, key: `${hook}[head=1]` })));
    expect(selectHooks('embed, mlp_out', all).map((s) => s.hook)).toEqual(['hook_embed', ...every('hook_mlp_out')]);
    expect(() => selectHooks('resid_pst', all)).toThrow(/unknown hook 'resid_pst'/);
  });
  it('reject unknown names, listing the nearest real ones', () => {
    expect(() => selectHooks('blocks.2.hook_resid_psot', all)).toThrow(/unknown hook 'blocks.2.hook_resid_psot'; the nearest hooks are blocks.2.hook_resid_post/);
    expect(() => selectHooks('blocks.9.attn.hook_z', all)).toThrow(/'blocks.9.attn.hook_z': layer 9 is out of range: the model has 8 layers, blocks.0 .. blocks.7/);
    expect(() => selectHooks('blocks.6-9.attn.hook_z[head=1]', all).map((s) => s.hook)).not.toThrow(); // in range in part: those layers
    expect(() => selectHooks('blocks.2.attn.hook_z[layer=1]', all)).toThrow(/\[layer=\.\.\.\], which hooks do not take/);
    expect(() => selectHooks('blocks..x', all)).toThrow(/bad hook selector/);
  });
});
