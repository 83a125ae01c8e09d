// Paths to the shared trained models and their published output.
import fs from 'node:fs';
import path from 'node:path';
import { modelsDir } from '../../runtime/node/load.js';

export const GGUF = path.join(modelsDir(), 'stories260K.gguf');
export const BIN = path.join(modelsDir(), 'stories260K.bin');
export const TOK = path.join(modelsDir(), 'tok512.bin');

/** llama2.c's published greedy output for stories260K (`./run stories260K.bin -z tok512.bin -t 0.0`). */
export function publishedOutput(): string {
  const md = fs.readFileSync(path.join(modelsDir(), 'SOURCES.md'), 'utf8');
  const m = /### Published reference output[\s\S]*?```\n([\s\S]*?)```/.exec(md);
  if (!m) throw new Error('SOURCES.md has no published output block');
  return m[1]!;
}
