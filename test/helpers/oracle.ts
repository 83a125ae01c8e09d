// llama.cpp (node-llama-cpp 3.21.1, CPU) in its own process: see test/oracle/oracle.mjs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const dir = path.resolve(import.meta.dirname, '..', 'oracle');

export function llamaCpp(request: Record<string, unknown>): Record<string, unknown> {
  if (!fs.existsSync(path.join(dir, 'node_modules', 'node-llama-cpp')))
    throw new Error('the llama.cpp oracle is not installed: run `bash scripts/setup.sh --tests`');
  const r = spawnSync(process.execPath, [path.join(dir, 'oracle.mjs')], { input: JSON.stringify(request), encoding: 'utf8', timeout: 120_000, maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`llama.cpp oracle failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
