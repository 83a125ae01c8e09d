// JavaScript hook functions (TransformerLens's `(act, hook) => act'`): against the float64 reference run
// of the same edits (the reference graph with intervention tables, each function applied to the
// reference's own values in graph order), equal to the built-in edit they mimic, and refused where no
// edit can go.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { ivName, withInterventions } from '../ops/intervene.js';
import { GGUF } from './helpers/models.js';
import { relErr } from './helpers/numeric.js';

let model: Model;
beforeAll(async () => { model = await Model.create(loadModelSource(GGUF), { contextLength: 32 }); });
afterAll(() => model.dispose());

const Z = 'blocks.1.attn.hook_z', R = 'blocks.2.hook_resid_post';
/** zero head 3 of z in place; clamp the residual stream at ±0.5 (nonlinear: no built-in edit does it) */
const zeroHead3 = (act: Float32Array) => { for (let p = 0; p < act.length / 64; p++) act.fill(0, p * 64 + 24, p * 64 + 32); };
const clamp = (act: Float32Array) => act.map((v) => Math.max(-0.5, Math.min(0.5, v)));

describe('hook functions', () => {
  it('equal the float64 reference run of the same edits, applied in graph order', async () => {
    const tokens = model.tokenizer.encode('Lily and Ben went to the park');
    const n = tokens.length, seen: string[] = [];
    // given out of order: they run in graph order, each seeing the edits before it
    const { logits, cache } = await model.runWithHooks(tokens, { hooks: R, interventions: [
      { hook: R, fn: (a, h) => { seen.push(h); return clamp(a); } },
      { hook: Z, fn: (a, h) => { seen.push(h); zeroHead3(a); } },
    ] });
    expect(seen).toEqual([Z, R]);
    // the reference: the graph with tables at both hooks, run position by position in float64
    const graph = withInterventions(model.graph, [{ hook: Z, rows: n }, { hook: R, rows: n }]);
    const ref = new ReferenceRunner(graph, loadModelSource(GGUF).weights);
    const identity = (size: number) => ({ a: new Float64Array(n * size).fill(1), b: new Float64Array(n * size) });
    const tables: Record<string, { a: Float64Array; b: Float64Array }> = { [Z]: identity(64), [R]: identity(64) };
    const run = () => {
      ref.reset();
      const inputs = Object.fromEntries(Object.entries(tables).flatMap(([h, t]) => [[ivName(h, 'a'), t.a], [ivName(h, 'b'), t.b]]));
      return tokens.map((token, pos) => ref.step({ token, pos, ...inputs }));
    };
    const valuesAt = (steps: ReturnType<typeof run>, hook: string) => {
      const node = graph.hooks[hook]!.node;
      return Float32Array.from(steps.flatMap((v) => Array.from(v.get(node)!)));
    };
    const replaceWith = (hook: string, v: Float32Array) => { tables[hook] = { a: new Float64Array(v.length), b: Float64Array.from(v) }; };
    const z = valuesAt(run(), Z);
    zeroHead3(z);
    replaceWith(Z, z);
    const steps = run();
    replaceWith(R, clamp(valuesAt(steps, R)));
    const final = run();
    const refLogits = final.map((v) => v.get(graph.outputs.logits!)!);
    tokens.forEach((_, p) => expect(relErr(logits[p]!, refLogits[p]!), `position ${p}`).toBeLessThanOrEqual(1e-4));
    // the cache holds the edited value, as in TransformerLens
    expect(relErr(cache.get(R)!.data, valuesAt(final, R))).toBeLessThanOrEqual(1e-4);
    expect(Math.max(...cache.get(R)!.data.map(Math.abs))).toBeLessThanOrEqual(0.5);
  });

  it('a function that doubles the stream gives what scale: 2 gives, to the bit', async () => {
    const tokens = model.tokenizer.encode('Once upon a time');
    const [viaFn, builtIn] = [
      await model.runWithHooks(tokens, { interventions: [{ hook: R, fn: (a) => a.map((v) => 2 * v) }] }),
      await model.runWithHooks(tokens, { interventions: [{ hook: R, scale: 2 }] }),
    ];
    viaFn.logits.forEach((row, p) => expect(Array.from(row)).toEqual(Array.from(builtIn.logits[p]!)));
  });

  it('is refused where no edit can go, with filters, in batches, or returning the wrong size', async () => {
    const tokens = model.tokenizer.encode('Once upon a time');
    const id = (a: Float32Array) => a;
    await expect(model.runWithHooks(tokens, { interventions: [{ hook: 'blocks.0.attn.hook_pattern', fn: id }] })).rejects.toThrow(/'blocks\.0\.attn\.hook_pattern' can be read but not edited.*the nearest hooks that take an edit: blocks\.0\.attn\./);
    await expect(model.runWithHooks(tokens, { interventions: [{ hook: `${R}[pos=1]`, fn: id }] })).rejects.toThrow(/takes one whole hook .*with a filter/);
    await expect(model.runWithHooks(tokens, { interventions: [{ hook: 'blocks.*.hook_resid_post', fn: id }] })).rejects.toThrow(/takes one whole hook \(5 hooks selected/);
    await expect(model.runBatchWithHooks([tokens, tokens], { interventions: [{ hook: R, fn: id }] })).rejects.toThrow(/one prompt at a time/);
    await expect(model.runWithHooks(tokens, { interventions: [{ hook: R, fn: () => new Float32Array(3) }] })).rejects.toThrow(/returned 3 values: it must return a Float32Array of 320/);
    await expect(model.generate({ prompt: 'Lily', interventions: [{ hook: R, fn: id }] })).rejects.toThrow(/not generation/);
  });

  it("tapir hooks marks the hooks that take an edit", () => {
    const r = spawnSync(path.resolve(import.meta.dirname, '..', 'bin', 'tapir.js'), ['hooks', '--json'], { encoding: 'utf8', timeout: 60_000 });
    const list = JSON.parse(r.stdout) as { name: string; edit: boolean }[];
    const edit = Object.fromEntries(list.map((h) => [h.name, h.edit]));
    expect([edit['blocks.2.hook_resid_post'], edit['blocks.1.attn.hook_z'], edit['blocks.0.attn.hook_pattern'], edit['blocks.0.attn.hook_attn_scores'], edit['blocks.0.ln1.hook_scale']]).toEqual([true, true, false, false, false]);
  });
});
