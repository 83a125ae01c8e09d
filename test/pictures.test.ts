// The compiled graph as pictures: valid SVG that headless Chromium renders, with one cluster per
// dispatched kernel after fusion. Screenshots go to test-output/ to be looked at.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Browser } from 'playwright-core';
import { launchChromium } from './helpers/browser.js';

const root = path.resolve(import.meta.dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-svg-'));
let browser: Browser;
beforeAll(async () => { browser = await launchChromium(); });
afterAll(async () => { await browser?.close(); fs.rmSync(dir, { recursive: true, force: true }); });

describe('tapir compile --svg', () => {
  it('draws the graph before and after fusion as SVG that Chromium parses and renders', async () => {
    const svg = path.join(dir, 'graph.svg');
    const r = spawnSync(path.join(root, 'bin/tapir.js'), ['compile', '--svg', svg, '--json'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    const unfused = JSON.parse(spawnSync(path.join(root, 'bin/tapir.js'), ['compile', '--no-fuse', '--json'], { cwd: root, encoding: 'utf8' }).stdout);
    fs.mkdirSync(path.join(root, 'test-output'), { recursive: true });
    // one cluster per node that dispatches kernels (split attention dispatches two for one node)
    for (const [file, clusters] of [[svg, report.dispatchingNodes], [svg.replace(/\.svg$/, '.before.svg'), unfused.dispatchingNodes]] as const) {
      const text = fs.readFileSync(file, 'utf8');
      const page = await browser.newPage();
      try {
        const parsed = await page.evaluate((t) => {
          const doc = new DOMParser().parseFromString(t, 'image/svg+xml');
          return { error: doc.getElementsByTagName('parsererror').length, root: doc.documentElement.nodeName, clusters: doc.querySelectorAll('g.cluster').length };
        }, text);
        expect(parsed).toEqual({ error: 0, root: 'svg', clusters });
        await page.goto(`file://${file}`);
        const box = await page.locator('svg').boundingBox();
        expect(box!.width).toBeGreaterThan(200);
        expect(box!.height).toBeGreaterThan(200);
        await page.screenshot({ path: path.join(root, 'test-output', path.basename(file).replace(/\.svg$/, '.png')), fullPage: false });
      } finally {
        await page.close();
      }
    }
    expect(fs.readFileSync(svg, 'utf8')).toContain('qkvKernel');
    expect(fs.readFileSync(svg, 'utf8')).toContain('rmsnorm + matvec (q) + matvec (k) + matvec (v)');
  });
});
