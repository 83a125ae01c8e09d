// The loader fuzzer, small: a few hundred mutated files per format (the benchmark run does 10,000:
// `node --no-concurrent-recompilation dist/benchmarks/fuzz.js`). Every file must either load or be
// rejected with tapir's own typed error: no crash, no hang, no runaway memory.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { FuzzReport } from '../benchmarks/fuzz.js';

const root = path.resolve(import.meta.dirname, '..');
function fuzz(...args: string[]): FuzzReport[] {
  const r = spawnSync(process.execPath, ['--no-concurrent-recompilation', path.join(root, 'dist/benchmarks/fuzz.js'), '--json', ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.status === null) throw new Error(`fuzz run did not finish: ${r.signal}`);
  return JSON.parse(r.stdout) as FuzzReport[];
}

describe('loader fuzzing', () => {
  it('GGUF, llama2.c and safetensors loaders survive 300 mutated files each', () => {
    const seed = String(Date.now() % 100000); // a fresh seed each run; a failure names it for replay
    // a case that runs 20 s is a hang (cases take < 1 s; the bound leaves room for a loaded CI machine)
    const reports = fuzz('--cases', '300', '--seed', seed, '--timeout-ms', '20000');
    expect(reports.map((r) => r.format)).toEqual(['gguf', 'llama2c', 'safetensors']);
    for (const r of reports) {
      expect({ format: r.format, crashes: r.crashes, hangs: r.hangs, ooms: r.ooms, failures: r.failures },
        `replay: node --no-concurrent-recompilation dist/benchmarks/fuzz.js --formats ${r.format} --cases 300 --seed ${seed}`)
        .toEqual({ format: r.format, crashes: 0, hangs: 0, ooms: 0, failures: [] });
      expect(r.ok + r.rejected).toBe(300);
      expect(r.rejected, `${r.format}: the mutations should break most files`).toBeGreaterThan(150);
    }
  });

  it('the harness notices crashes, hangs and runaway memory', () => {
    const [r] = fuzz('--formats', 'selftest', '--cases', '20', '--seed', '1', '--timeout-ms', '1000', '--memory-mb', '256');
    expect(r!.crashes).toBeGreaterThan(0);
    expect(r!.hangs).toBeGreaterThan(0);
    expect(r!.ooms).toBeGreaterThan(0);
    expect(r!.crashes + r!.hangs + r!.ooms).toBe(20);
  });
});
