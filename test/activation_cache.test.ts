// The typed activation cache and TransformerLens's residual-stream helpers, each against the float64
// reference forward pass of stories260K (the same graph, op by op, never the kernels).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import type { ActivationCache } from '../runtime/interp/activation_cache.js';
import { UsageError } from '../compiler/errors.js';
import { GGUF } from './helpers/models.js';
import { relErr } from './helpers/numeric.js';

let model: Model;
let cache: ActivationCache;
let logits: Float32Array[];
let tokens: number[];
/** the reference's value of a hook at each position (float64) */
let ref: (hook: string) => Float64Array[];
const HOOKS = 'hook_embed,resid_pre,resid_mid,resid_post,attn_out,mlp_out,ln_final.hook_scale,blocks.*.ln1.hook_scale,blocks.*.ln2.hook_scale,blocks.*.ln1.hook_normalized,blocks.*.attn.hook_result';

beforeAll(async () => {
  model = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
  tokens = model.tokenizer.encode('Lily and Ben went to the park. Lily');
  ({ cache, logits } = await model.runWithCache(tokens, { hooks: HOOKS }));
  const r = model.reference();
  const steps = tokens.map((token, pos) => r.step({ token, pos }));
  ref = (hook) => steps.map((v) => v.get(model.graph.hooks[hook]!.node)!);
});
afterAll(() => model.dispose());

const L = 5, d = 64, H = 8;
/** component c, position t of a [C, 1, n, d] stack */
const row = (data: Float32Array, n: number, c: number, t: number) => data.subarray((c * n + t) * d, (c * n + t + 1) * d);

describe('ActivationCache', () => {
  it("reads TL's cache[name, layer] and full keys alike", () => {
    expect(cache.get('resid_post', 3)).toBe(cache.get('blocks.3.hook_resid_post'));
    expect(cache.get('hook_resid_pre', 0)).toBe(cache.get('blocks.0.hook_resid_pre'));
    expect(cache.get('attn.hook_result', 1)).toBe(cache.get('blocks.1.attn.hook_result'));
    expect(cache.get('embed')).toBe(cache.get('hook_embed'));
    expect(cache.get('resid_post', 3)!.shape).toEqual([1, tokens.length, d]);
    expect(cache instanceof Map).toBe(true);
    const want = ref('blocks.3.hook_resid_post');
    tokens.forEach((_, t) => expect(relErr(cache.get('resid_post', 3)!.data.subarray(t * d, (t + 1) * d), want[t]!)).toBeLessThanOrEqual(1e-4));
  });

  it('accumulatedResid: resid_pre of each layer then final_post, normed by the scale where it is read', () => {
    const n = tokens.length;
    const s = cache.accumulatedResid();
    expect(s.labels).toEqual(['0_pre', '1_pre', '2_pre', '3_pre', '4_pre', 'final_post']);
    expect(s.shape).toEqual([6, 1, n, d]);
    const mid = cache.accumulatedResid(2, { inclMid: true });
    expect(mid.labels).toEqual(['0_pre', '0_mid', '1_pre', '1_mid', '2_pre']);
    // normed at layer 2: its last component is ln1's normalized input (x / scale, no weight) at layer 2
    const normed = cache.accumulatedResid(2, { applyLn: true });
    const want = ref('blocks.2.ln1.hook_normalized');
    for (let t = 0; t < n; t++) expect(relErr(row(normed.data, n, 2, t), want[t]!)).toBeLessThanOrEqual(1e-4);
    // one position, normed by the final scale
    const last = cache.accumulatedResid(L, { applyLn: true, pos: -1 });
    expect(last.shape).toEqual([6, 1, d]);
    const scale = ref('ln_final.hook_scale')[n - 1]![0]!, post = ref(`blocks.${L - 1}.hook_resid_post`)[n - 1]!;
    expect(relErr(last.data.subarray(5 * d, 6 * d), post.map((v) => v / scale))).toBeLessThanOrEqual(1e-4);
  });

  it("decomposeResid adds up to the residual stream, and logitAttrs of its normed parts to the logit difference", () => {
    const n = tokens.length;
    const parts = cache.decomposeResid();
    expect(parts.labels).toEqual(['embed', ...Array.from({ length: L }, (_, l) => [`${l}_attn_out`, `${l}_mlp_out`]).flat()]);
    const post = ref(`blocks.${L - 1}.hook_resid_post`);
    for (let t = 0; t < n; t++) {
      const sum = new Float64Array(d);
      for (let c = 0; c < parts.labels.length; c++) row(parts.data, n, c, t).forEach((v, i) => (sum[i]! += v));
      expect(relErr(sum, post[t]!)).toBeLessThanOrEqual(1e-4);
    }
    expect(cache.decomposeResid(2, { mode: 'attn', inclEmbeds: false }).labels).toEqual(['0_attn_out', '1_attn_out']);
    // attributions to " and" against "." at every position: they sum to the model's own logit difference
    const [good, bad] = [model.tokenizer.idOf(' and')!, model.tokenizer.idOf('.')!];
    const attrs = cache.logitAttrs(cache.decomposeResid(L, { applyLn: true }), good, bad);
    expect(attrs.shape).toEqual([1 + 2 * L, 1, n]);
    const refLogits = ref('hook_logits');
    for (let t = 0; t < n; t++) {
      let s = 0;
      for (let c = 0; c <= 2 * L; c++) s += attrs.data[c * n + t]!;
      const want = refLogits[t]![good]! - refLogits[t]![bad]!;
      expect(Math.abs(logits[t]![good]! - logits[t]![bad]! - want)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want)));
      expect(Math.abs(s - want)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want)));
    }
    // per position tokens, one position
    const one = cache.logitAttrs(cache.decomposeResid(L, { applyLn: true, pos: -1 }), [good]);
    expect(one.shape).toEqual([1 + 2 * L, 1]);
    expect(() => cache.logitAttrs(parts, [good, good])).toThrow(new RegExp(`2 tokens for ${n} positions`));
    expect(() => cache.logitAttrs(parts, 99999)).toThrow(/outside the vocabulary/);
  });

  it("stackHeadResults: each head's output, L{l}H{h}, adding up to the layer's attention output", () => {
    const n = tokens.length;
    const heads = cache.stackHeadResults();
    expect(heads.labels.slice(0, 3)).toEqual(['L0H0', 'L0H1', 'L0H2']);
    expect(heads.shape).toEqual([L * H, 1, n, d]);
    for (let l = 0; l < L; l++) {
      const attn = ref(`blocks.${l}.hook_attn_out`);
      for (let t = 0; t < n; t++) {
        const sum = new Float64Array(d);
        for (let h = 0; h < H; h++) row(heads.data, n, l * H + h, t).forEach((v, i) => (sum[i]! += v));
        expect(relErr(sum, attn[t]!)).toBeLessThanOrEqual(1e-4);
      }
    }
    const rest = cache.stackHeadResults(2, { inclRemainder: true, pos: 0 });
    expect(rest.labels.at(-1)).toBe('remainder');
    expect(rest.shape).toEqual([2 * H + 1, 1, d]);
  });

  it('applyLnToStack divides by ln2 scales for an MLP input, and helpers say what to cache', async () => {
    const n = tokens.length;
    const s = cache.applyLnToStack(cache.accumulatedResid(3, { mlpInput: true }), 3, { mlpInput: true });
    expect(s.labels.at(-1)).toBe('3_mid');
    const scale = ref('blocks.3.ln2.hook_scale'), mid = ref('blocks.3.hook_resid_mid');
    for (let t = 0; t < n; t++) expect(relErr(row(s.data, n, 4, t), mid[t]!.map((v) => v / scale[t]![0]!))).toBeLessThanOrEqual(1e-4);
    const { cache: small } = await model.runWithCache(tokens, { hooks: 'resid_post' });
    expect(() => small.accumulatedResid()).toThrow(UsageError);
    expect(() => small.accumulatedResid()).toThrow(/accumulatedResid needs blocks\.0\.hook_resid_pre in the cache/);
    expect(() => cache.accumulatedResid(9)).toThrow(/layer 9 is out of range/);
    expect(() => cache.accumulatedResid(L, { pos: 40 })).toThrow(/position 40 is out of range/);
  });
});
