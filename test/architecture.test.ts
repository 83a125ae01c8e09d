// The shape of the code, kept by checks: no import cycles (type-only imports included) and a compiler
// that imports nothing built on it, judged by dependency-cruiser (.dependency-cruiser.cjs); the check is
// shown to fail on a planted cycle and a planted upward import.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const DIRS = ['api', 'compiler', 'ops', 'models', 'runtime', 'cli', 'viewer', 'examples', 'benchmarks', 'bin'];

/** depcruise over `dirs` in `cwd` with the repository's rules: its exit code and report. */
function cruise(cwd: string, dirs: string[]) {
  const bin = join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
  try {
    const out = execFileSync(process.execPath, [bin, ...dirs, '--config', join(cwd, '.dependency-cruiser.cjs'), '--output-type', 'err'], { cwd, encoding: 'utf8', stdio: 'pipe' });
    return { code: 0, out };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { code: err.status, out: err.stdout + err.stderr };
  }
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? (f === 'node_modules' || f === 'oracle' ? [] : files(p)) : [p];
  });
}
const sources = (dirs: string[]) => dirs.flatMap((d) => files(join(root, d))).filter((f) => /\.(ts|tsx)$/.test(f) && !/\.gen\.ts$/.test(f));

describe('architecture', () => {
  it('has no import cycles, and compiler/ imports nothing built on it', () => {
    const r = cruise(root, [...DIRS, 'test']);
    expect(r.out).toContain('no dependency violations');
    expect(r.code).toBe(0);
  }, 120_000);

  it('the check fails on a planted type-only cycle and on compiler/ importing ops/', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapir-arch-'));
    try {
      mkdirSync(join(dir, 'compiler')); mkdirSync(join(dir, 'ops'));
      copyFileSync(join(root, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
      copyFileSync(join(root, 'tsconfig.json'), join(dir, 'tsconfig.json'));
      writeFileSync(join(dir, 'compiler/a.ts'), "import type { B } from './b.js';\nexport interface A { b?: B }\n");
      writeFileSync(join(dir, 'compiler/b.ts'), "import type { A } from './a.js';\nexport interface B { a?: A }\n");
      writeFileSync(join(dir, 'compiler/c.ts'), "import { x } from '../ops/x.js';\nexport const y = x;\n");
      writeFileSync(join(dir, 'ops/x.ts'), 'export const x = 1;\n');
      const r = cruise(dir, ['compiler', 'ops']);
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/no-cycles: compiler\/a\.ts/);
      expect(r.out).toMatch(/compiler-stands-alone: compiler\/c\.ts → ops\/x\.ts/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('no forged nodes, and intervention input names spelled in one module', () => {
    const all = sources([...DIRS, 'test']);
    const cast = ['as', 'unknown', 'as', 'Node'].join(' '); // spelled apart, so this file does not match itself
    const forged = all.filter((f) => readFileSync(f, 'utf8').includes(cast));
    expect(forged.map((f) => relative(root, f))).toEqual([]);
    const iv = all.filter((f) => /[`'"]iv:/.test(readFileSync(f, 'utf8'))).map((f) => relative(root, f));
    expect(iv).toEqual(['ops/intervene.ts']);
  });

  it('no hand-written file over 400 lines in compiler/, runtime/ or cli/', () => {
    const long = sources(['compiler', 'runtime', 'cli'])
      .map((f) => ({ file: relative(root, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > 400);
    expect(long).toEqual([]);
  });
});
