// Interventions and activation patching, against exact identities and a brute-force float64 CPU
// reference that re-runs the whole model for every site.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError } from '../compiler/errors.js';
import { ivName, withInterventions } from '../ops/intervene.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { activationPatching, activationPatchingNaive, metricOf, SITES } from '../runtime/interp/patching.js';
import { GGUF } from './helpers/models.js';
import { type PlanVariant, variantKey } from '../runtime/variant.js';
import { relErr } from './helpers/numeric.js';

let model: Model;
beforeAll(async () => { model = await Model.create(loadModelSource(GGUF), { contextLength: 32 }); });
afterAll(() => model?.dispose());

const CLEAN = 'Lily and Ben went to the park. Lily';
const CORRUPT = 'Tim and Ben went to the park. Tim'; // the same number of tokens

describe('interventions', () => {
  it('replacing resid_pre of layer 0 at every position turns the corrupted logits into the clean ones', async () => {
    const clean = model.tokenizer.encode(CLEAN), corrupt = model.tokenizer.encode(CORRUPT);
    expect(clean.length).toBe(corrupt.length);
    const { cache, logits: cleanLogits } = await model.runWithCache(clean, { hooks: 'blocks.0.hook_resid_pre' });
    const { logits } = await model.runWithHooks(corrupt, { interventions: [{ hook: 'blocks.0.hook_resid_pre', replace: cache.get('blocks.0.hook_resid_pre')!.data }] });
    logits.forEach((row, p) => expect(relErr(row, cleanLogits[p]!)).toBeLessThanOrEqual(1e-6));
  });

  it('zero-ablating a head, scaling, and adding a steering vector match the CPU reference', async () => {
    const tokens = model.tokenizer.encode('Once upon a time');
    const steer = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const interventions = [
      { hook: 'blocks.1.attn.hook_z[head=3]', zero: true as const },
      { hook: 'blocks.2.hook_resid_mid[pos=2]', scale: 0.5 },
      { hook: 'blocks.3.hook_resid_post', add: steer },
    ];
    const { logits, cache } = await model.runWithHooks(tokens, { interventions, hooks: 'blocks.1.attn.hook_z' });
    const z = cache.get('blocks.1.attn.hook_z')!.data;
    for (let p = 0; p < tokens.length; p++) expect(Array.from(z.subarray(p * 64 + 24, p * 64 + 32))).toEqual(new Array(8).fill(0)); // the cache holds the edited value
    // CPU: the same edits, as tables, through the float64 reference of the intervened graph
    const rows = tokens.length;
    const g = withInterventions(model.graph, ['blocks.1.attn.hook_z', 'blocks.2.hook_resid_mid', 'blocks.3.hook_resid_post'].map((hook) => ({ hook, rows })));
    const table = (size: number, f: (p: number, e: number) => [number, number]) => {
      const a = new Float64Array(rows * size), b = new Float64Array(rows * size);
      for (let p = 0; p < rows; p++) for (let e = 0; e < size; e++) [a[p * size + e], b[p * size + e]] = f(p, e);
      return [a, b] as const;
    };
    const [za, zb] = table(64, (_, e) => (e >= 24 && e < 32 ? [0, 0] : [1, 0]));
    const [ma, mb] = table(64, (p) => (p === 2 ? [0.5, 0] : [1, 0]));
    const [sa, sb] = table(64, (_, e) => [1, steer[e]!]);
    const ref = new ReferenceRunner(g, (model as unknown as { weights: never }).weights);
    tokens.forEach((token, pos) => {
      const want = ref.output({ token, pos, [ivName('blocks.1.attn.hook_z', 'a')]: za, [ivName('blocks.1.attn.hook_z', 'b')]: zb,
        [ivName('blocks.2.hook_resid_mid', 'a')]: ma, [ivName('blocks.2.hook_resid_mid', 'b')]: mb, [ivName('blocks.3.hook_resid_post', 'a')]: sa, [ivName('blocks.3.hook_resid_post', 'b')]: sb }, 'logits');
      expect(relErr(logits[pos]!, want)).toBeLessThanOrEqual(1e-5);
    });
  });
});

describe('activation patching', () => {
  it('identical clean and corrupted prompts: every raw effect is exactly 0', async () => {
    const t = model.tokenizer.encode('Lily saw a dog');
    const r = await activationPatching(model, t, t, { target: model.tokenizer.idOf(' Lily')!, sites: ['resid_pre', 'z'] });
    for (const s of r.sites) expect(s.effects.flat().every((e) => e === 0)).toBe(true);
    expect(r.sites[0]!.scores.flat().every((x) => x === null)).toBe(true); // undefined, never NaN
  });

  it('patching resid_post of the last layer at the last position scores 1', async () => {
    const clean = model.tokenizer.encode(CLEAN), corrupt = model.tokenizer.encode(CORRUPT);
    const r = await activationPatching(model, clean, corrupt, { target: model.tokenizer.idOf(' and')!, distractor: model.tokenizer.idOf(' was')!, sites: ['resid_post'] });
    expect(Math.abs(r.sites[0]!.scores.at(-1)!.at(-1)! - 1)).toBeLessThanOrEqual(1e-6);
  });

  it('every patching matrix equals a brute-force float64 CPU reference that re-runs the model per site', async () => {
    const clean = model.tokenizer.encode('Lily saw a dog'), corrupt = model.tokenizer.encode('Tim saw a dog');
    expect(clean.length).toBe(corrupt.length);
    const o = { target: model.tokenizer.idOf(' and')!, distractor: model.tokenizer.idOf('.')! };
    const weights = (model as unknown as { weights: never }).weights;
    for (const site of Object.keys(SITES)) {
      const gpu = (await activationPatching(model, clean, corrupt, { ...o, sites: [site] })).sites[0]!;
      for (let l = 0; l < model.config.nLayers; l++) {
        const hook = `blocks.${l}.${SITES[site]}`;
        const size = model.graph.hooks[hook]!.node.size, rows = clean.length;
        const g = withInterventions(model.graph, [{ hook, rows }]);
        const ref = new ReferenceRunner(g, weights);
        const run = (tokens: number[], a: Float64Array, b: Float64Array) => {
          ref.reset();
          let last: Float64Array = new Float64Array();
          tokens.forEach((token, pos) => { last = ref.output({ token, pos, [ivName(hook, 'a')]: a, [ivName(hook, 'b')]: b }, 'logits'); });
          return metricOf(last, o);
        };
        const ones = new Float64Array(rows * size).fill(1), zeros = new Float64Array(rows * size);
        // clean activations on the CPU, through the plain (identity) intervention
        ref.reset();
        const cleanAct = new Float64Array(rows * size);
        clean.forEach((token, pos) => {
          const vals = ref.step({ token, pos, [ivName(hook, 'a')]: ones, [ivName(hook, 'b')]: zeros });
          cleanAct.set(vals.get(g.hooks[hook]!.node)!, pos * size);
        });
        const top = run(clean, ones, zeros), base = run(corrupt, ones, zeros);
        const cols = site === 'z' ? model.config.nHeads : rows;
        for (let c = 0; c < cols; c++) {
          const a = ones.slice(), b = zeros.slice();
          for (let p = 0; p < rows; p++) for (let e = 0; e < size; e++) {
            const hit = site === 'z' ? e >= c * 8 && e < (c + 1) * 8 : p === c;
            if (hit) { a[p * size + e] = 0; b[p * size + e] = cleanAct[p * size + e]!; }
          }
          const cpu = (run(corrupt, a, b) - base) / (top - base);
          expect(Math.abs(gpu.scores[l]![c]! - cpu), `${site} layer ${l} column ${c}`).toBeLessThanOrEqual(2e-3);
        }
      }
    }
  });

  it('the reactive sweep gives the naive sweep\'s scores with at most half its work', async () => {
    const clean = model.tokenizer.encode('Lily saw a dog'), corrupt = model.tokenizer.encode('Tim saw a dog');
    const o = { target: model.tokenizer.idOf(' and')!, distractor: model.tokenizer.idOf('.')!, sites: ['resid_pre', 'attn_out'] };
    // one site a pass: purely reactive; the default: sites batched into passes of about PATCH_ROWS rows
    const reactive = await activationPatching(model, clean, corrupt, { ...o, rows: 1 });
    const batched = await activationPatching(model, clean, corrupt, o);
    const slow = await activationPatchingNaive(model, clean, corrupt, o);
    for (const fast of [reactive, batched])
      fast.sites.forEach((s, i) => s.scores.forEach((row, l) => row.forEach((v, c) => expect(Math.abs(v! - slow.sites[i]!.scores[l]![c]!)).toBeLessThanOrEqual(1e-5))));
    expect(reactive.work.layerSteps).toBeLessThanOrEqual(0.5 * reactive.work.naiveLayerSteps);
    expect(batched.work.layerSteps).toBeLessThanOrEqual(batched.work.naiveLayerSteps);
  });

  it('a resid_pre sweep runs one plan for every layer: as many plans as batch shapes, none built from a layer on', async () => {
    const clean = model.tokenizer.encode(CLEAN), corrupt = model.tokenizer.encode(CORRUPT);
    const asked: PlanVariant[] = [];
    const variant = model.variant.bind(model);
    model.variant = (v, t) => { if (v.pick) asked.push(v); return variant(v, t); };
    try {
      await activationPatching(model, clean, corrupt, { target: model.tokenizer.idOf(' and')!, distractor: model.tokenizer.idOf(' was')! });
    } finally {
      model.variant = variant;
    }
    expect(asked.length).toBeGreaterThanOrEqual(model.config.nLayers);
    expect(asked.every((v) => !v.startLayer && !v.interventions?.length)).toBe(true);
    expect(new Set(asked.map(variantKey)).size).toBe(new Set(asked.map((v) => `${v.batch}x${v.positions}`)).size);
  });

  it('batches of patched runs over positions p0.. reuse the corrupted KV rows below p0: every grouping gives the same scores', async () => {
    const clean = model.tokenizer.encode(CLEAN), corrupt = model.tokenizer.encode(CORRUPT);
    const o = { target: model.tokenizer.idOf(' and')!, distractor: model.tokenizer.idOf(' was')!, sites: ['resid_pre', 'z'] };
    const one = await activationPatching(model, clean, corrupt, { ...o, rows: 1 });
    for (const rows of [20, 64, 10_000]) {
      const r = await activationPatching(model, clean, corrupt, { ...o, rows });
      r.sites.forEach((s, i) => expect(s.effects, `rows ${rows} ${s.site}`).toEqual(one.sites[i]!.effects)); // to the bit
    }
  });

  it('prompts that differ from their first token on: one site a pass and batches agree with the naive sweep, and WebGPU reports nothing', async () => {
    const clean = model.tokenizer.encode('Lily saw a dog').slice(1), corrupt = model.tokenizer.encode('Tim saw a dog').slice(1); // no BOS: position 0 differs
    expect(clean[0]).not.toBe(corrupt[0]);
    const o = { target: model.tokenizer.idOf(' and')!, distractor: model.tokenizer.idOf('.')!, sites: ['resid_pre', 'attn_out'] };
    const d = model.executor.gpu.device;
    d.pushErrorScope('validation');
    const single = await activationPatching(model, clean, corrupt, { ...o, rows: 1 });
    const batched = await activationPatching(model, clean, corrupt, { ...o, rows: 6 });
    expect(await d.popErrorScope()).toBeNull();
    const slow = await activationPatchingNaive(model, clean, corrupt, o);
    for (const fast of [single, batched])
      fast.sites.forEach((s, i) => s.scores.forEach((row, l) => row.forEach((v, c) => expect(Math.abs(v! - slow.sites[i]!.scores[l]![c]!), `${s.site} ${l} ${c}`).toBeLessThanOrEqual(1e-5))));
  });

  it('reports progress up to every run, in order, and stops when asked, leaving the model usable', async () => {
    const clean = model.tokenizer.encode(CLEAN), corrupt = model.tokenizer.encode(CORRUPT);
    const o = { target: model.tokenizer.idOf(' and')!, distractor: model.tokenizer.idOf(' was')!, sites: ['resid_pre', 'z'] };
    const seen: [number, number][] = [];
    const full = await activationPatching(model, clean, corrupt, { ...o, onProgress: (d, t) => seen.push([d, t]) });
    const total = model.config.nLayers * (clean.length + model.config.nHeads);
    expect(seen.at(-1)).toEqual([total, total]);
    expect(seen.every(([d], i) => i === 0 || d > seen[i - 1]![0])).toBe(true);
    // results arrive a layer behind the submissions: stopping after the first report ends the sweep early
    const stop = { aborted: false };
    const stopped: number[] = [];
    await expect(activationPatching(model, clean, corrupt, { ...o, stop, onProgress: (d) => { stopped.push(d); stop.aborted = true; } })).rejects.toBeInstanceOf(CancelledError);
    expect(stopped.length).toBeGreaterThan(0);
    expect(stopped.at(-1)!).toBeLessThan(total);
    const again = await activationPatching(model, clean, corrupt, o);
    expect(JSON.stringify(again.sites)).toBe(JSON.stringify(full.sites));
  });

  it('rejects prompts of different lengths', async () => {
    await expect(activationPatching(model, model.tokenizer.encode('Lily'), model.tokenizer.encode('Lily and Ben'), { target: 1 })).rejects.toThrow(/same length/);
  });
});
