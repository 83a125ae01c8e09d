// Progress of long CLI work: a bar on a terminal; elsewhere a line every few seconds and one at the end
// (a job that runs for minutes in a log or under a parent process is never silent).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { progressBar } from '../cli/progress.js';

describe('progress', () => {
  it('off a terminal: a line when the interval has passed, and a last one when done', async () => {
    const lines: string[] = [];
    const bar = progressBar('patch', 80, { tty: false, everyMs: 30, write: (s) => lines.push(s) });
    bar.update(1);
    expect(lines).toEqual([]); // not yet: the interval has not passed
    await new Promise((r) => setTimeout(r, 40));
    bar.update(20);
    bar.update(21);
    expect(lines).toEqual(['patch: 25% (20 of 80)\n']);
    bar.update(80, 80);
    bar.done();
    expect(lines.at(-1)).toBe('patch: done (80 of 80)\n');
  });

  it('on a terminal: the bar redrawn in place, once a percent', () => {
    const out: string[] = [];
    const bar = progressBar('train', 200, { tty: true, write: (s) => out.push(s) });
    bar.update(1);
    bar.update(1); // the same percent: not redrawn
    bar.update(100);
    bar.done();
    expect(out).toEqual([`\rtrain [${' '.repeat(30)}] 0%`, `\rtrain [${'#'.repeat(15)}${' '.repeat(15)}] 50%`, '\n']);
  });

  it('tapir patch reports its progress in a pipe', () => {
    const bin = path.resolve(import.meta.dirname, '..', 'bin', 'tapir.js');
    const r = spawnSync(bin, ['patch', '--clean', 'Lily and Ben went to the park. Lily', '--corrupt', 'Tim and Ben went to the park. Tim', '--target', ' and', '--json'],
      { encoding: 'utf8', timeout: 90_000, env: { ...process.env, TAPIR_PROGRESS_EVERY_MS: '0' } });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('patch:'));
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.at(-1)).toMatch(/^patch: done \((\d+) of \1\)$/);
  });

  it('tapir lens reports its progress in a pipe (each pass of the lens head; one pass: its end)', () => {
    const bin = path.resolve(import.meta.dirname, '..', 'bin', 'tapir.js');
    const r = spawnSync(bin, ['lens', '-p', 'Once upon a time, there was a little girl named', '--json'], { encoding: 'utf8', timeout: 90_000, env: { ...process.env, TAPIR_PROGRESS_EVERY_MS: '0' } });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('lens:'));
    expect(lines.at(-1)).toMatch(/^lens: done \((\d+) of \1\)$/);
  });
});
