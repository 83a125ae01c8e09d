// Loading model files from disk (the only Node-specific part of the runtime besides the GPU import).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError, UsageError } from '../../compiler/errors.js';
import { parseGGUF } from '../formats/gguf.js';
import { llamaFromGGUF } from '../formats/llama_gguf.js';
import { parseLlama2c, parseLlama2cTokenizer } from '../formats/llama2c.js';
import type { ModelSource } from '../model.js';

/** The repository root: the nearest folder above this file with a package.json (from src or dist/). */
export const repoRoot = (() => {
  let d = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(d, 'package.json')) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
})();
/** The shared trained models beside the checkout (never copied into the repo). */
export const modelsDir = () => process.env.TAPIR_MODELS ?? path.resolve(repoRoot, '../shared/models');
export const defaultModel = () => path.join(modelsDir(), 'stories260K.gguf');

function readFile(file: string, what: string): Uint8Array {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new UsageError(`${what} '${file}' does not exist`);
  }
  if (!st.isFile()) throw new UsageError(`${what} '${file}' is not a file`);
  return new Uint8Array(fs.readFileSync(file));
}

const isGGUF = (b: Uint8Array) => b.length >= 4 && b[0] === 0x47 && b[1] === 0x47 && b[2] === 0x55 && b[3] === 0x46;

/** Read a GGUF file or a llama2.c checkpoint (+ tokenizer.bin). */
export function loadModelSource(file: string, opts: { tokenizer?: string } = {}): ModelSource {
  const bytes = readFile(file, 'model file');
  if (isGGUF(bytes)) {
    if (opts.tokenizer) throw new UsageError('--tokenizer is for llama2.c checkpoints; a GGUF file carries its own tokenizer');
    return { ...llamaFromGGUF(parseGGUF(bytes, file), bytes, file), file };
  }
  if (!file.endsWith('.bin') && !opts.tokenizer)
    throw new FormatError(file, 'not a GGUF file, and not a llama2.c checkpoint (.bin); pass --tokenizer for a llama2.c file with another name');
  const { config, weights } = parseLlama2c(bytes, file);
  const tokFile = opts.tokenizer ?? findTokenizer(file, config.vocabSize);
  const vocab = parseLlama2cTokenizer(readFile(tokFile, 'tokenizer file'), tokFile, config.vocabSize);
  return { config, weights, vocab, file };
}

/** llama2.c's conventions: tokenizer.bin beside the model, or tok{vocab}.bin for custom vocabularies. */
function findTokenizer(model: string, vocab: number): string {
  const dir = path.dirname(model);
  for (const name of ['tokenizer.bin', `tok${vocab}.bin`]) if (fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  throw new UsageError(`no tokenizer for the llama2.c checkpoint '${model}': pass --tokenizer PATH (looked for tokenizer.bin and tok${vocab}.bin beside it)`);
}
