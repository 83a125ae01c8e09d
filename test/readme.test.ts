// The README's command lines run as written: every `npx tapir ...` line of its "Command line" and
// "Looking inside" blocks, from a fresh folder beside ../shared (as a checkout's), with the files they
// name made first (a steering vector, an SAE). Each must exit 0.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { modelsDir } from '../runtime/node/load.js';
import { writeSafetensors } from '../runtime/formats/safetensors.js';
import { initSae } from '../runtime/sae/sae.js';
import { saveSaeLens } from '../runtime/sae/files.js';
import { runProcess } from './helpers/process.js';

const root = path.resolve(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-readme-'));
const cwd = path.join(tmp, 'checkout');
fs.mkdirSync(cwd);
fs.symlinkSync(path.dirname(modelsDir()), path.join(tmp, 'shared'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The `npx tapir` lines of the README's code block under `heading` (continuations joined, comments cut). */
function commands(heading: string): string[] {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = new RegExp(`${heading}[\\s\\S]*?\`\`\`sh\\n([\\s\\S]*?)\`\`\``).exec(readme)![1]!;
  return block.replace(/\\\n\s*/g, '').split('\n').filter((l) => l.startsWith('npx tapir ')).map((l) => l.replace(/\s{2,}#.*$/, '').trim());
}

const lines = [...commands('## Command line'), ...commands('## Looking inside: hooks, lens, patching')];

describe('README commands', () => {
  // what the lines name: a steering vector and an SAE (blocks.2.hook_resid_post of stories260K)
  fs.writeFileSync(path.join(cwd, 'lily.safetensors'), writeSafetensors([{ name: 'lily', dtype: 'f32', shape: [64], bytes: new Uint8Array(new Float32Array(64).fill(0.1).buffer) }]));
  const dims = { dIn: 64, dSae: 128, arch: 'relu' as const, k: 0 };
  saveSaeLens(path.join(cwd, 'sae'), { dims, params: initSae(dims, 1), inputScale: 1, hook: 'blocks.2.hook_resid_post' });

  it('finds them', () => expect(lines.length).toBeGreaterThanOrEqual(15));
  it.each(lines)('%s', async (line) => {
    const cmd = line.replace(/^npx tapir /, `node --no-concurrent-recompilation ${JSON.stringify(path.join(root, 'bin', 'tapir.js'))} `);
    const r = await runProcess('bash', ['-c', `${cmd} > /dev/null`], { cwd });
    expect(r.code, r.stderr).toBe(0);
  }, 150_000);
});
