// Every WGSL module the runtime dispatches comes from the TypeScript kernels in ops/: the generated
// kernel module is what translating ops/ gives today, and each shader the GPU context compiled is the
// rendering of one of those kernels. No WGSL is written by hand anywhere else.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { renderModule, translateOpsAll } from '../compiler/kernelc/ops.js';
import { toWGSL } from '../compiler/kernel/wgsl.js';
import { withEpilogues } from '../compiler/kernel/compose.js';
import { getGpu } from '../runtime/gpu.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { GGUF } from './helpers/models.js';

const root = path.resolve(import.meta.dirname, '..');

describe('WGSL provenance', () => {
  const all = translateOpsAll(root);
  const fresh = all.kernels;

  it('ops/kernels.gen.ts is the translation of ops/ as it is now', () => {
    expect(fs.readFileSync(path.join(root, 'ops/kernels.gen.ts'), 'utf8')).toBe(renderModule(all.kernels, all.fragments));
  });

  it('every shader module the runtime created renders a kernel translated from ops/', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
    await model.generate({ maxNewTokens: 3 });
    model.dispose();
    // a fused kernel is a base kernel with @epilogue fragments spliced in: rebuild it from the fresh
    // translation, by the name its first line gives ("matvecKernel+addEpilogue"), and compare
    const base = new Map(fresh.map((k) => [k.name, k]));
    const frags = new Map(all.fragments.map((f) => [f.name, f]));
    const rebuild = (code: string) => {
      const [kernel, ...parts] = /^\/\/ (\S+) /.exec(code)![1]!.split('+');
      const k = base.get(kernel!);
      const uses = parts.map((p) => (p.includes(':') ? { hole: p.split(':')[0], frag: frags.get(p.split(':')[1]!) } : { frag: frags.get(p) })); // "k:storeEpilogue": a named hole
      // modules made for a device without subgroups (kernels.test runs some) do not enable them
      const target = { subgroups: code.includes('enable subgroups;') };
      return k && uses.every((u) => u.frag) ? toWGSL(withEpilogues(k, uses.map((u) => ({ ...u, frag: u.frag! }))), target) : undefined;
    };
    const gpu = await getGpu();
    expect(gpu.modules.length).toBeGreaterThanOrEqual(8);
    for (const code of gpu.modules) expect(rebuild(code), code.split('\n')[0]).toBe(code);
  });

  it('no source file outside the WGSL renderer writes WGSL', () => {
    const dirs = ['api', 'compiler', 'runtime', 'ops', 'models', 'cli', 'examples'];
    const offenders: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|js)$/.test(e.name) && !p.endsWith(path.join('compiler', 'kernel', 'wgsl.ts')) && !e.name.endsWith('.gen.ts')) {
          const text = fs.readFileSync(p, 'utf8');
          if (/@compute|var<storage|@workgroup_size|@builtin\(/.test(text)) offenders.push(path.relative(root, p));
        }
      }
    };
    dirs.forEach((d) => fs.existsSync(path.join(root, d)) && walk(path.join(root, d)));
    expect(offenders).toEqual([]);
  });
});
