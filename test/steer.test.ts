// Steering during generation: interventions (and SAE splices) at every position of the prompt and of
// the generated tokens. Checked against hooked runs of the whole generated sequence with the same edits
// (themselves checked against the float64 reference in hooks.test.ts): greedy steered text is what
// the steered model's argmax says at every position; a zero vector changes nothing; the CLI's --steer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { writeSafetensors } from '../runtime/formats/safetensors.js';
import type { Intervention } from '../runtime/interp/cache.js';
import { GGUF } from './helpers/models.js';
import { runProcess } from './helpers/process.js';

const hook = 'blocks.2.hook_resid_post';
let model: Model;
let direction: Float32Array;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-steer-'));

beforeAll(async () => {
  model = await Model.create(loadModelSource(GGUF), { contextLength: 128 });
  const last = async (text: string) => (await model.runWithCache(model.tokenizer.encode(text), { hooks: `${hook}[pos=-1]` })).cache.get(`${hook}[pos=-1]`)!.data;
  const [a, b] = [await last('Once upon a time there was a girl named Lily'), await last('Once upon a time there was a boy named Tom')];
  direction = a.map((v, i) => 2 * (v - b[i]!));
});
afterAll(() => { model.dispose(); fs.rmSync(dir, { recursive: true, force: true }); });

const argmax = (v: Float32Array) => v.indexOf(Math.max(...v));

describe('steered generation', () => {
  it('greedy: each generated token is the steered model\'s argmax at its position (prompt and generated positions edited)', async () => {
    const interventions: Intervention[] = [{ hook, add: direction }, { hook: 'blocks.4.attn.hook_z[head=3]', zero: true }];
    const plain = await model.generate({ prompt: 'Once upon a time there was a boy named', maxNewTokens: 30 });
    const steered = await model.generate({ prompt: 'Once upon a time there was a boy named', maxNewTokens: 30, interventions });
    expect(steered.text).not.toBe(plain.text);
    const check = await model.runWithHooks(steered.tokens, { interventions });
    for (let p = steered.promptTokens - 1; p < steered.tokens.length - 1; p++) expect(argmax(check.logits[p]!), `position ${p}`).toBe(steered.tokens[p + 1]);
    // the model itself is unchanged afterwards
    expect((await model.generate({ prompt: 'Once upon a time there was a boy named', maxNewTokens: 30 })).text).toBe(plain.text);
  });

  it('sampling: a zero vector changes nothing (same seed, same tokens); a scale is applied', async () => {
    const o = { prompt: 'Lily and Ben', maxNewTokens: 20, temperature: 0.8, seed: 3 };
    const plain = await model.generate(o);
    expect((await model.generate({ ...o, interventions: [{ hook, add: new Float32Array(64) }] })).tokens).toEqual(plain.tokens);
    expect((await model.generate({ ...o, interventions: [{ hook, scale: 1 }] })).tokens).toEqual(plain.tokens);
    const scaled = await model.generate({ ...o, temperature: 0, interventions: [{ hook: 'blocks.1.hook_resid_post', scale: 0.2 }] });
    const check = await model.runWithHooks(scaled.tokens, { interventions: [{ hook: 'blocks.1.hook_resid_post', scale: 0.2 }] });
    for (let p = scaled.promptTokens - 1; p < scaled.tokens.length - 1; p++) expect(argmax(check.logits[p]!)).toBe(scaled.tokens[p + 1]);
  });

  it('edits that name positions are refused', async () => {
    await expect(model.generate({ prompt: 'Lily', interventions: [{ hook: `${hook}[pos=-1]`, add: direction }] })).rejects.toThrow(/leave out \[pos=\.\.\.\]/);
    await expect(model.generate({ prompt: 'Lily', interventions: [{ hook, replace: new Float32Array(64) }] })).rejects.toThrow(/'replace' gives values per position/);
  });

  it('tapir generate --steer HOOK:add=FILE*SCALE', async () => {
    const file = path.join(dir, 'lily.safetensors');
    fs.writeFileSync(file, writeSafetensors([{ name: 'direction', dtype: 'f32', shape: [64], bytes: new Uint8Array(direction.buffer.slice(0)) }]));
    const tapir = (...args: string[]) => runProcess(path.resolve(import.meta.dirname, '..', 'bin', 'tapir.js'), args, { timeout: 60_000 });
    const base = ['generate', '-p', 'Once upon a time there was a boy named', '-n', '30', '--json'];
    const plain = JSON.parse((await tapir(...base)).stdout) as { text: string };
    const r = await tapir(...base, '--steer', `${hook}:add=${file}*0.5`);
    expect(r.code, r.stderr).toBe(0);
    const half = direction.map((v) => v * 0.5);
    const api = await model.generate({ prompt: 'Once upon a time there was a boy named', maxNewTokens: 30, interventions: [{ hook, add: half }] });
    expect((JSON.parse(r.stdout) as { text: string }).text).toBe(api.text);
    expect(api.text).not.toBe(plain.text);
    const bad = await tapir(...base, '--steer', `${hook}:add=${file}*x`);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--steer '.*': write HOOK:add=FILE/);
    const missing = await tapir(...base, '--steer', `${hook}:add=${path.join(dir, 'none.safetensors')}`);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/does not exist/);
    const wide = await tapir(...base, '--steer', `blocks.2.hook_mlp_out:add=${file}`, '--steer', 'blocks.0.mlp.hook_post:add=' + file);
    expect(wide.code).toBe(2);
    expect(wide.stderr).toMatch(/the added vector has 64 values, expected/);
  }, 120_000);
});
