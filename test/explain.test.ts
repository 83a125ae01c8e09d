// tapir explain on stories260K: occlusion scores against the float64 reference re-running each
// ablated prompt from scratch, direct logit attribution per layer and head against the reference's
// activations, a seeded (repeatable) deletion curve, the HTML report in headless Chromium with the
// network closed, and the CLI's errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { explain, type Explanation } from '../runtime/interp/explain.js';
import { explanationHtml } from '../runtime/interp/explain_html.js';
import { GGUF } from './helpers/models.js';
import { launchChromium } from './helpers/browser.js';

const root = path.resolve(import.meta.dirname, '..');
const PROMPT = 'Lily and Ben went to the park. Lily saw a big dog. She was';
let model: Model, tokens: number[], e: Explanation;
beforeAll(async () => {
  model = await Model.create(loadModelSource(GGUF), { contextLength: 64 });
  tokens = model.tokenizer.encode(PROMPT);
  const last = (await model.logits(tokens))[tokens.length - 1]!;
  const answer = last.indexOf(Math.max(...last));
  e = await explain(model, tokens, { answer, draws: 4, seed: 1 });
}, 120_000);
afterAll(() => model?.dispose());

describe('tapir explain', () => {
  it('occlusion equals the decision change of each ablated prompt run from scratch (float64 reference), for every token and word', () => {
    const ref = model.reference();
    const metric = (toks: number[]) => {
      ref.reset();
      let l: Float64Array = new Float64Array();
      toks.forEach((token, pos) => { l = ref.output({ token, pos }, 'logits') as Float64Array; });
      return l[e.answer.id]! - l[e.alternative.id]!;
    };
    const m0 = metric(tokens);
    const tol = 1e-4 * Math.max(1, Math.abs(m0));
    expect(Math.abs(e.logitDiff - m0)).toBeLessThanOrEqual(tol);
    const occluded = (positions: number[]) => m0 - metric(tokens.map((t, i) => (positions.includes(i) ? e.baseline.id : t)));
    expect(e.tokenOcclusion).toHaveLength(tokens.length - 1);
    for (const t of e.tokenOcclusion) expect(Math.abs(t.occlusion - occluded([t.position])), `token ${t.position}`).toBeLessThanOrEqual(tol);
    for (const w of e.words) expect(Math.abs(w.occlusion - occluded(w.positions)), JSON.stringify(w.text)).toBeLessThanOrEqual(tol);
    expect(e.words.map((w) => w.text).join('')).toBe(' ' + PROMPT); // the words cover the prompt (SentencePiece's leading space)
  });

  it('direct logit attribution per layer and head matches the float64 reference; the terms and the embedding sum to the decision', () => {
    const sum = e.components.reduce((s, c) => s + c.value, 0);
    const tol = 1e-4 * Math.max(1, Math.abs(e.logitDiff));
    expect(Math.abs(sum - e.logitDiff)).toBeLessThanOrEqual(tol);
    const ref = model.reference();
    let values = new Map();
    tokens.forEach((token, pos) => { values = ref.step({ token, pos }); });
    const h = (name: string) => values.get(model.graph.hooks[name]!.node)! as Float64Array;
    const c = model.config, dim = c.dim, hs = dim / c.nHeads;
    const U = model.weightValues(c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight'), wf = model.weightValues('output_norm.weight');
    const s = h('ln_final.hook_scale')[0]!; // the final norm's scale at the decision position, frozen
    const dir = Float64Array.from({ length: dim }, (_, d) => ((U[e.answer.id * dim + d]! - U[e.alternative.id * dim + d]!) * wf[d]!) / s);
    const read = (v: ArrayLike<number>) => { let x = 0; for (let d = 0; d < dim; d++) x += dir[d]! * v[d]!; return x; };
    const term = (name: string) => e.components.find((x) => x.name === name)!.value;
    expect(Math.abs(term('embed') - read(h('hook_embed')))).toBeLessThanOrEqual(tol);
    for (let l = 0; l < c.nLayers; l++) {
      expect(Math.abs(term(`blocks.${l}.attn`) - read(h(`blocks.${l}.hook_attn_out`))), `layer ${l} attn`).toBeLessThanOrEqual(tol);
      expect(Math.abs(term(`blocks.${l}.mlp`) - read(h(`blocks.${l}.hook_mlp_out`))), `layer ${l} mlp`).toBeLessThanOrEqual(tol);
      const WO = model.weightValues(`blk.${l}.attn_output.weight`), z = h(`blocks.${l}.attn.hook_z`);
      for (let head = 0; head < c.nHeads; head++) {
        const out = Float64Array.from({ length: dim }, (_, d) => { let x = 0; for (let i = head * hs; i < (head + 1) * hs; i++) x += WO[d * dim + i]! * z[i]!; return x; });
        expect(Math.abs(e.heads[l]![head]! - read(out)), `L${l}H${head}`).toBeLessThanOrEqual(tol);
      }
    }
  });

  it('the faithfulness check is seeded: the same report twice, and a curve for k = 1.. words', async () => {
    const again = await explain(model, tokens, { answer: e.answer.id, draws: 4, seed: 1 });
    expect(again.faithfulness).toEqual(e.faithfulness);
    expect(again.words).toEqual(e.words);
    expect(e.faithfulness.k[0]).toBe(1);
    expect(e.faithfulness.top).toHaveLength(Math.min(10, e.words.length));
    expect(e.faithfulness.top[0]).toBeCloseTo(Math.max(...e.words.map((w) => w.occlusion)), 5); // k = 1 is the top word
    expect(e.sentences.join(' ')).toMatch(/driven mostly by|does not rest on one word/);
  });

  it('the HTML report renders in headless Chromium with the network closed', async () => {
    const out = path.join(root, 'test-output');
    fs.mkdirSync(out, { recursive: true });
    const file = path.join(out, 'explain.html');
    fs.writeFileSync(file, explanationHtml(e));
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1400 } });
      const requests: string[] = [];
      await page.route('**/*', (r) => { if (!r.request().url().startsWith('file:')) { requests.push(r.request().url()); return r.abort(); } return r.continue(); });
      await page.goto('file://' + file);
      expect(await page.locator('svg').count()).toBeGreaterThanOrEqual(3); // curve, layer bars, heads
      expect(await page.locator('span.w').count()).toBe(e.words.length);
      expect(await page.locator('span.w').first().getAttribute('title')).toMatch(/occlusion .* erasure/);
      expect(await page.textContent('h1')).toContain(e.answer.piece.trim());
      await page.screenshot({ path: path.join(out, 'explain.png'), fullPage: true });
      expect(requests).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);

  it('tapir explain prints JSON and writes the report; bad input is exit code 2', () => {
    const bin = path.join(root, 'bin', 'tapir.js');
    const run = (...args: string[]) => spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });
    const html = path.join(root, 'test-output', 'explain-cli.html');
    const ok = run('explain', '-p', 'Once upon a time, there was a little girl named', '--answer', ' Lily', '--draws', '3', '--html', html, '--json');
    expect(ok.status, ok.stderr).toBe(0);
    const o = JSON.parse(ok.stdout) as Explanation;
    expect(o.answer.piece).toBe(' Lily');
    expect(o.words.length).toBeGreaterThan(5);
    expect(fs.readFileSync(html, 'utf8')).toMatch(/^<!doctype html>/);
    for (const args of [['-p', 'Once upon a time', '--answer', ' Lilyy'], ['-p', '', '--answer', ' Lily'], ['-p', 'Once upon a time there was a girl', '--answer', ' Lily', '--context', '4'], ['--answer', ' Lily']]) {
      const bad = run('explain', ...args);
      expect(bad.status, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(/^tapir: error: /m);
    }
  }, 180_000);
});
