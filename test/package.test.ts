// The package as a user gets it: `npm pack`, the tarball installed into a fresh project, then used there
// from Node (loading stories260K and running a cache, a hook edit and the logit lens through
// `import ... from 'tapir'`), type-checked under `strict` against the declarations the build emits, and
// 'tapir/browser' bundled into a page by vite (no Node module in the bundle).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GGUF } from './helpers/models.js';
import { modelsDir } from '../runtime/node/load.js';
import { runProcess } from './helpers/process.js';

const root = path.resolve(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-package-'));
const app = path.join(tmp, 'app');

/** A process's stdout, or an error with its output (npm install takes a while: never blocking the worker). */
async function sh(cmd: string, args: string[], cwd: string, timeout = 300_000): Promise<string> {
  const r = await runProcess(cmd, args, { cwd, timeout, env: { ...process.env, npm_config_loglevel: 'error' } });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const USE = `import { loadModel, logitLens, releaseGpu } from 'tapir';
const model = await loadModel(process.argv[2], { contextLength: 32 });
const tokens = model.tokenizer.encode('Once upon a time, there was a little girl named');
const { cache } = await model.runWithCache(tokens, { hooks: 'blocks.2.hook_resid_post' });
const clean = cache.get('blocks.2.hook_resid_post');
const zeroed = await model.runWithHooks(tokens, { interventions: [{ hook: 'blocks.2.hook_resid_post', zero: true }], hooks: 'blocks.2.hook_resid_post' });
const lens = await logitLens(model, tokens, { target: model.tokenizer.idOf(' Lily') });
console.log(JSON.stringify({
  shape: clean.shape,
  cleanNorm: Math.hypot(...clean.data),
  zeroedNorm: Math.hypot(...zeroed.cache.get('blocks.2.hook_resid_post').data),
  lastLayerTop: lens.layers.at(-1).cells.at(-1).top[0].piece,
}));
model.dispose();
await releaseGpu();
process.exit(0);
`;

// strict TypeScript against the emitted declarations: wrong uses must not type-check either
const TYPED = `import { loadModel, logitLens, activationPatching, releaseGpu, UsageError, type LensResult, type Model } from 'tapir';
export async function lensOf(file: string): Promise<LensResult> {
  const model: Model = await loadModel(file, { contextLength: 64 });
  try {
    const tokens: number[] = model.tokenizer.encode('Lily and Ben');
    const sweep = await activationPatching(model, tokens, tokens, { target: 1, distractor: 2, sites: ['resid_pre'] });
    const first: number = sweep.sites[0]!.scores[0]![0]!;
    if (Number.isNaN(first)) throw new UsageError('no score');
    return await logitLens(model, tokens, { top: 3 });
  } finally {
    model.dispose();
    await releaseGpu();
  }
}
`;
const MISTYPED = `import { loadModel } from 'tapir';
const model = await loadModel(42);
`;

const PAGE = `import { loadModel, logitLens } from 'tapir/browser';
const model = await loadModel('./stories260K.gguf', { contextLength: 32 });
const lens = await logitLens(model, model.tokenizer.encode('Once upon a time'));
document.body.textContent = lens.layers.map((l) => l.cells.at(-1)!.top[0]!.piece).join(' ');
`;

describe('the npm package', () => {
  let tarball = '';
  beforeAll(async () => {
    // the build in dist/ is what is packed (setup builds it)
    const packed = JSON.parse(await sh('npm', ['pack', '--json', '--pack-destination', tmp], root)) as { filename: string; files: { path: string }[] }[];
    tarball = path.join(tmp, packed[0]!.filename);
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'uses-tapir', private: true, type: 'module' }));
    // its dependencies from npm's cache where setup put them (the network only for what is missing)
    await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], app);
  }, 600_000);
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('packs what a user needs and nothing from the repository\'s tests or sources', () => {
    const pkg = path.join(app, 'node_modules', 'tapir');
    for (const f of ['package.json', 'bin/tapir.js', 'dist/api/index.js', 'dist/api/index.d.ts', 'dist/api/browser.js', 'dist/cli/main.js', 'dist/page/index.html'])
      expect(fs.existsSync(path.join(pkg, f)), f).toBe(true);
    for (const f of ['test', 'ops/matvec.ts', 'dist/benchmarks']) expect(fs.existsSync(path.join(pkg, f)), f).toBe(false);
    expect(fs.existsSync(path.join(app, 'node_modules', 'ts-morph')), 'ts-morph (the build\'s, not the runtime\'s)').toBe(false);
    const meta = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(meta.private).toBeUndefined(); // publishable (publishing stays a person's decision)
  });

  it('runs from Node: load, cache, a hook edit, the lens', async () => {
    fs.writeFileSync(path.join(app, 'use.mjs'), USE);
    const r = JSON.parse((await sh(process.execPath, ['--no-concurrent-recompilation', 'use.mjs', GGUF], app, 120_000)).trim().split('\n').pop()!) as { shape: number[]; cleanNorm: number; zeroedNorm: number; lastLayerTop: string };
    expect(r.shape).toEqual([1, 14, 64]); // BOS and 13 pieces
    expect(r.cleanNorm).toBeGreaterThan(1);
    expect(r.zeroedNorm).toBe(0);
    expect(r.lastLayerTop).toBe(' Lily');
  }, 180_000);

  it("runs the README's first example as written (beside the model file it names)", async () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const code = /## From TypeScript[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)![1]!;
    expect(code).toContain("from 'tapir'");
    fs.writeFileSync(path.join(app, 'readme.mjs'), `${code}\nconsole.log(JSON.stringify({ text, logits: logits.length }));\nprocess.exit(0);\n`);
    const r = JSON.parse((await sh(process.execPath, ['--no-concurrent-recompilation', path.join(app, 'readme.mjs')], modelsDir(), 120_000)).trim().split('\n').pop()!) as { text: string; logits: number };
    expect(r.text.length).toBeGreaterThan(20);
    expect(r.logits).toBe(5); // BOS and 4 pieces
  }, 180_000);

  it('type-checks under strict against its declarations, and rejects a wrong use', async () => {
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const opts = ['--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types')];
    fs.writeFileSync(path.join(app, 'typed.ts'), TYPED);
    await sh(process.execPath, [tsc, ...opts, 'typed.ts'], app, 120_000);
    fs.writeFileSync(path.join(app, 'mistyped.ts'), MISTYPED);
    const bad = await sh(process.execPath, [tsc, ...opts, 'mistyped.ts'], app, 120_000).then(() => '', (e: Error) => e.message);
    expect(bad).toMatch(/mistyped\.ts.*number.*string/);
  }, 180_000);

  it("bundles 'tapir/browser' into a page with vite, without Node's modules", async () => {
    fs.mkdirSync(path.join(app, 'page'));
    fs.writeFileSync(path.join(app, 'page', 'index.html'), '<!doctype html><script type="module" src="./main.ts"></script>');
    fs.writeFileSync(path.join(app, 'page', 'main.ts'), PAGE);
    const vite = path.join(root, 'node_modules', 'vite', 'bin', 'vite.js');
    await sh(process.execPath, [vite, 'build', 'page', '--outDir', '../dist-page', '--emptyOutDir', '--logLevel', 'warn'], app, 180_000);
    const js = fs.readdirSync(path.join(app, 'dist-page', 'assets')).filter((f) => f.endsWith('.js'));
    expect(js.length).toBeGreaterThan(0);
    const code = js.map((f) => fs.readFileSync(path.join(app, 'dist-page', 'assets', f), 'utf8')).join('\n');
    expect(code).toContain('navigator.gpu');
    expect(code).not.toMatch(/from\s*["']node:|require\(["']node:|dawn\.node/);
  }, 240_000);
});
