// The viewer in a real headless Chromium: a prompt typed into the page gives the logit lens the CLI
// gives, a patching sweep the CLI's scores, the graph view the compiled graph; with ?client=1 the page
// runs stories260K on the browser's own WebGPU and generates the Node run's tokens. Screenshots go to
// test-output/viewer-*.png, to be looked at.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { Model } from '../runtime/model.js';
import { loadModelSource, repoRoot } from '../runtime/node/load.js';
import { initSae } from '../runtime/sae/sae.js';
import { loadSaeLens, saveSaeLens } from '../runtime/sae/files.js';
import { startServer, type Viewer } from '../viewer/server.js';
import { graphPictures } from '../viewer/graph.js';
import { launchChromium } from './helpers/browser.js';
import { GGUF } from './helpers/models.js';

const shots = path.join(repoRoot, 'test-output');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-viewer-'));
let browser: Browser, model: Model, viewer: Viewer;
const cli = (...args: string[]) => {
  const r = spawnSync(path.join(repoRoot, 'bin/tapir.js'), [...args, '--json'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
};

beforeAll(async () => {
  fs.mkdirSync(shots, { recursive: true });
  // a TopK SAE on layer 2's residual stream, in SAELens's layout (random: its latents still fire)
  const sae = path.join(dir, 'sae');
  saveSaeLens(sae, { dims: { dIn: 64, dSae: 128, arch: 'topk', k: 4 }, params: initSae({ dIn: 64, dSae: 128, arch: 'topk', k: 4 }, 3), inputScale: 1, hook: 'blocks.2.hook_resid_post' });
  model = await Model.create(loadModelSource(GGUF));
  viewer = await startServer({ model, modelFile: GGUF, host: '127.0.0.1', port: 0, assets: path.join(repoRoot, 'dist/page'), graphSvg: graphPictures(model, GGUF), sae: loadSaeLens(sae) });
  browser = await launchChromium({ webgpu: true });
});
afterAll(async () => {
  await browser?.close();
  await viewer?.close();
  model?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(query = ''): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${viewer.url}${query}`);
  await page.waitForSelector('body[data-ready]', { timeout: 120_000 });
  expect(errors).toEqual([]);
  return page;
}

describe('the viewer in Chromium', () => {
  it('a typed prompt gives the CLI\'s logit lens, cell by cell, and the target\'s rank across layers', async () => {
    const prompt = 'One day, Lily met a';
    const page = await open();
    try {
      await page.fill('#prompt', prompt);
      await page.fill('#n', '8');
      await page.fill('#lens-target', ' little');
      await page.click('#run');
      await page.waitForSelector('#lens td[data-layer], #lens .error', { timeout: 120_000 });
      expect(await page.$$eval('#lens .error', (e) => e.map((x) => x.textContent))).toEqual([]);
      const cells = await page.$$eval('#lens td[data-layer]', (tds) => tds.map((td) => ({ layer: Number(td.getAttribute('data-layer')), pos: Number(td.getAttribute('data-pos')), piece: td.getAttribute('data-piece'), prob: Number(td.getAttribute('data-prob')) })));
      const want = cli('lens', '-p', prompt, '--target', ' little');
      expect(cells).toHaveLength(want.layers.length * want.tokens.length);
      for (const c of cells) {
        const w = want.layers[c.layer].cells[c.pos];
        expect(c.piece, `layer ${c.layer} position ${c.pos}`).toBe(w.top[0].piece);
        expect(c.prob).toBeCloseTo(w.top[0].prob, 6);
      }
      const ranks = await page.$$eval('#lens-rank circle', (cs) => cs.map((c) => Number(c.getAttribute('data-rank'))));
      expect(ranks).toEqual(want.layers.map((l: { cells: { target: { rank: number } }[] }) => l.cells.at(-1)!.target.rank));
      // the streamed generation and the attention pattern are there too
      expect(await page.$$eval('#generation .tok', (ts) => ts.length)).toBe(8);
      await page.waitForSelector('#attn td[data-w]');
      await page.selectOption('#attn-head', '3');
      expect(await page.$$eval('#attn td.masked', (ts) => ts.length)).toBe((want.tokens.length * (want.tokens.length - 1)) / 2);
      await page.screenshot({ path: path.join(shots, 'viewer-lens.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  /** The patching tab with the clean/corrupted pair both patching tests sweep. */
  const patchForm = async (page: Awaited<ReturnType<typeof open>>) => {
    await page.click('nav button[data-tab=tab-patch]');
    await page.fill('#clean', 'Lily saw a dog');
    await page.fill('#corrupt', 'Tim saw a dog');
    await page.fill('#patch-target', ' and');
    await page.fill('#patch-distractor', '.');
  };

  it('runs a patching sweep with a progress bar; its cells are the CLI\'s scores', async () => {
    const page = await open();
    try {
      await patchForm(page);
      await page.check('input[name=site][value=attn_out]');
      await page.click('#patch-run');
      await page.waitForSelector('#patch-progress:not([hidden])');
      await page.waitForSelector('#patch-results td[data-score]', { timeout: 120_000 });
      const want = cli('patch', '--clean', 'Lily saw a dog', '--corrupt', 'Tim saw a dog', '--target', ' and', '--distractor', '.', '--sites', 'resid_pre,attn_out');
      const cells = await page.$$eval('#patch-results td[data-score]', (tds) => tds.map((td) => ({ site: td.getAttribute('data-site'), row: Number(td.getAttribute('data-row')), col: Number(td.getAttribute('data-col')), score: td.getAttribute('data-score') })));
      expect(cells).toHaveLength(2 * 5 * 6);
      for (const c of cells) {
        const w = want.sites.find((s: { site: string }) => s.site === c.site).scores[c.row][c.col];
        if (w === null) expect(c.score).toBe('null');
        else expect(Number(c.score), `${c.site} ${c.row} ${c.col}`).toBeCloseTo(w, 6);
      }
      expect(await page.textContent('#patch-count')).toBe('60 / 60 patched runs');
      await page.screenshot({ path: path.join(shots, 'viewer-patch.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it('offers attribution patching beside the exact sweep: its cells are the CLI\'s, with the correlation', async () => {
    const page = await open();
    try {
      await patchForm(page);
      await page.selectOption('#patch-method', 'compare');
      await page.click('#patch-run');
      await page.waitForSelector('#patch-results table[data-method=exact] td[data-score]', { timeout: 120_000 });
      const want = cli('patch', '--clean', 'Lily saw a dog', '--corrupt', 'Tim saw a dog', '--target', ' and', '--distractor', '.', '--method', 'attribution', '--compare-exact');
      for (const [method, sites] of [['attribution', want.sites], ['exact', want.exact]] as const) {
        const cells = await page.$$eval(`#patch-results table[data-method=${method}] td[data-score]`, (tds) => tds.map((td) => ({ row: Number(td.getAttribute('data-row')), col: Number(td.getAttribute('data-col')), score: td.getAttribute('data-score') })));
        expect(cells).toHaveLength(5 * 6);
        for (const c of cells) expect(Number(c.score), `${method} ${c.row} ${c.col}`).toBeCloseTo(sites[0].scores[c.row][c.col], 6);
      }
      expect(await page.textContent('#patch-results')).toContain(`correlation of attribution with exact patching: ${want.correlation.resid_pre.toFixed(4)}`);
      await page.screenshot({ path: path.join(shots, 'viewer-attribution.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it('shows the compiled graph, fused and not, and zooms', async () => {
    const page = await open();
    try {
      await page.click('nav button[data-tab=tab-graph]');
      await page.waitForSelector('#graph[data-fused=true] svg g.cluster', { timeout: 60_000 });
      const fused = await page.$$eval('#graph svg g.cluster', (g) => g.length);
      expect(fused).toBe(cli('compile').dispatchingNodes);
      const before = await page.$eval('#graph', (g) => g.style.transform);
      await page.click('#zoom-in');
      expect(await page.$eval('#graph', (g) => g.style.transform)).not.toBe(before);
      await page.screenshot({ path: path.join(shots, 'viewer-graph.png') });
      await page.uncheck('#graph-fused');
      await page.waitForSelector('#graph[data-fused=false] svg g.cluster', { timeout: 60_000 });
      expect(await page.$$eval('#graph svg g.cluster', (g) => g.length)).toBe(cli('compile', '--no-fuse').dispatchingNodes);
    } finally {
      await page.close();
    }
  });

  it('shows an SAE\'s latents token by token, a latent\'s dashboard, and an explain report', async () => {
    const page = await open();
    try {
      await page.fill('#prompt', 'Lily saw a dog');
      await page.fill('#n', '2');
      await page.click('#run');
      await page.click('nav button[data-tab=tab-sae]');
      await page.waitForSelector('button.latent', { timeout: 120_000 });
      expect(await page.$$eval('.sae-row', (r) => r.length)).toBe(model.tokenizer.encode('Lily saw a dog').length);
      await page.click('button.latent');
      const card = page.frameLocator('#sae-frame');
      await expect.poll(async () => card.locator('h2').textContent(), { timeout: 60_000 }).toMatch(/^latent \d+$/);
      await page.screenshot({ path: path.join(shots, 'viewer-sae.png') });
      await page.click('nav button[data-tab=tab-explain]');
      await page.fill('#explain-prompt', 'Once upon a time, there was a little girl named');
      await page.click('#explain-run');
      await page.waitForSelector('#explain-frame', { timeout: 120_000 });
      expect(await page.textContent('#explain-report .summary')).toMatch(/The model prefers " Lily"/);
      await page.screenshot({ path: path.join(shots, 'viewer-explain.png') });
    } finally {
      await page.close();
    }
  });

  it('with ?client=1 runs stories260K on the browser\'s WebGPU and generates the Node run\'s tokens', async () => {
    const prompt = 'Once upon a time, there was a little girl named';
    const page = await open('?client=1');
    try {
      expect(await page.getAttribute('body', 'data-ready')).toBe('client');
      expect(await page.textContent('#where')).toMatch(/this browser's WebGPU/);
      await page.fill('#prompt', prompt);
      await page.fill('#n', '32');
      await page.click('#run');
      await page.waitForSelector('#generation[data-tokens]', { timeout: 120_000 });
      const inPage = (await page.getAttribute('#generation', 'data-tokens'))!.split(',').map(Number);
      const node = cli('generate', '-p', prompt, '-n', '32');
      expect(inPage).toEqual(node.tokens.slice(node.promptTokens));
      await page.waitForSelector('#lens td[data-layer]', { timeout: 120_000 });
      await page.screenshot({ path: path.join(shots, 'viewer-client.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it('says so on the page when it listens beyond loopback', async () => {
    const open_ = await startServer({ model, modelFile: GGUF, host: '0.0.0.0', port: 0, assets: path.join(repoRoot, 'dist/page'), graphSvg: async () => '<svg/>' });
    const page = await browser.newPage();
    try {
      await page.goto(open_.url);
      await page.waitForSelector('#exposed:not([hidden])');
      expect(await page.textContent('#exposed')).toMatch(/listens on 0\.0\.0\.0: anyone who can reach this machine/);
      const local = await open(); // the loopback server's page has no such line
      expect(await local.$eval('#exposed', (e) => (e as HTMLElement).hidden)).toBe(true);
      await local.close();
    } finally {
      await page.close();
      await open_.close();
    }
  });
});
