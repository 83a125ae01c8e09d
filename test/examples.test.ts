// Every script in examples/ runs to the end (from its build in dist/examples).
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const root = path.resolve(import.meta.dirname, '..');
const examples = fs.readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.ts')).sort();

describe('examples', () => {
  it.each(examples)('%s runs', (file) => {
    const js = path.join(root, 'dist', 'examples', file.replace(/\.ts$/, '.js'));
    const r = spawnSync(process.execPath, ['--no-concurrent-recompilation', js], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
  });
});
