// Every WGSL module the runtime dispatches comes from the TypeScript kernels in ops/: the generated
// kernel module is what translating ops/ gives today, and each shader the GPU context compiled is the
// rendering of one of those kernels. No WGSL is written by hand anywhere else.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { renderModule, translateOps } from '../compiler/kernelc/ops.js';
import { toWGSL } from '../compiler/kernel/wgsl.js';
import { getGpu } from '../runtime/gpu.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { GGUF } from './helpers/models.js';

const root = path.resolve(import.meta.dirname, '..');

describe('WGSL provenance', () => {
  const fresh = translateOps(root);

  it('ops/kernels.gen.ts is the translation of ops/ as it is now', () => {
    expect(fs.readFileSync(path.join(root, 'ops/kernels.gen.ts'), 'utf8')).toBe(renderModule(fresh));
  });

  it('every shader module the runtime created renders a kernel translated from ops/', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
    await model.generate({ maxNewTokens: 3 });
    model.dispose();
    const allowed = new Set(fresh.map(toWGSL));
    const gpu = await getGpu();
    expect(gpu.modules.length).toBeGreaterThanOrEqual(8);
    for (const code of gpu.modules) expect(allowed.has(code), code.split('\n')[0]).toBe(true);
  });

  it('no source file outside the WGSL renderer writes WGSL', () => {
    const dirs = ['compiler', 'runtime', 'ops', 'models', 'cli', 'examples'];
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
