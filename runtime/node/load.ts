// Loading models from disk (the only Node-specific part of the runtime besides the GPU import).
// Files are read piece by piece: headers first, each weight when it is uploaded.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError, UsageError } from '../../compiler/errors.js';
import { ggufModelSource } from '../formats/open.js';
import { parseLlama2c, parseLlama2cTokenizer } from '../formats/llama2c.js';
import { hfFromParts, parseJsonObject } from '../formats/hf_llama.js';
import type { ByteSource } from '../formats/source.js';
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

function stat(file: string, what: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch {
    throw new UsageError(`${what} '${file}' does not exist`);
  }
}

/** A file read on demand with positioned reads. */
export function fileSource(file: string, what = 'model file'): ByteSource {
  const st = stat(file, what);
  if (!st.isFile()) throw new UsageError(`${what} '${file}' is not a file`);
  const readInto = (offset: number, into: Uint8Array) => {
    const fd = fs.openSync(file, 'r');
    try {
      for (let done = 0; done < into.byteLength;) {
        const n = fs.readSync(fd, into, done, into.byteLength - done, offset + done);
        if (n === 0) throw new FormatError(file, `the file ended at byte ${offset + done} (it changed while being read?)`);
        done += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  };
  return {
    size: st.size,
    read(offset, length) {
      const out = new Uint8Array(length);
      readInto(offset, out);
      return out;
    },
    readInto,
  };
}

const isGGUF = (b: Uint8Array) => b.length >= 4 && b[0] === 0x47 && b[1] === 0x47 && b[2] === 0x55 && b[3] === 0x46;

/** Read a GGUF file, a llama2.c checkpoint (+ tokenizer.bin), or a Hugging Face folder. */
export function loadModelSource(file: string, opts: { tokenizer?: string } = {}): ModelSource {
  if (stat(file, 'model path').isDirectory()) return loadHFFolder(file);
  const src = fileSource(file);
  if (isGGUF(src.read(0, Math.min(4, src.size)))) {
    if (opts.tokenizer) throw new UsageError('--tokenizer is for llama2.c checkpoints; a GGUF file carries its own tokenizer');
    return ggufModelSource(src, file);
  }
  if (!file.endsWith('.bin') && !opts.tokenizer)
    throw new FormatError(file, 'not a GGUF file, and not a llama2.c checkpoint (.bin); pass --tokenizer for a llama2.c file with another name');
  const { config, weights } = parseLlama2c(src, file);
  const tokFile = opts.tokenizer ?? findTokenizer(file, config.vocabSize);
  const tok = fileSource(tokFile, 'tokenizer file');
  const vocab = parseLlama2cTokenizer(tok.read(0, tok.size), tokFile, config.vocabSize);
  return { config, weights, vocab, file };
}

/** llama2.c's conventions: tokenizer.bin beside the model, or tok{vocab}.bin for custom vocabularies. */
function findTokenizer(model: string, vocab: number): string {
  const dir = path.dirname(model);
  for (const name of ['tokenizer.bin', `tok${vocab}.bin`]) if (fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  throw new UsageError(`no tokenizer for the llama2.c checkpoint '${model}': pass --tokenizer PATH (looked for tokenizer.bin and tok${vocab}.bin beside it)`);
}

function readJson(file: string): Record<string, unknown> {
  const src = fileSource(file, 'file');
  return parseJsonObject(src.read(0, src.size), file);
}

/** A Hugging Face folder: config.json, tokenizer.json and one or more *.safetensors files. */
export function loadHFFolder(dir: string): ModelSource {
  const shards = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  const lacks = ['config.json', 'tokenizer.json'].filter((f) => !fs.existsSync(path.join(dir, f)));
  if (lacks.length === 2 || (lacks.length > 0 && shards.length === 0)) throw new UsageError(`${dir} is not a model folder: a Hugging Face folder has config.json, tokenizer.json and *.safetensors (give a GGUF or llama2.c file with -m, or such a folder)`);
  return hfFromParts({
    config: readJson(path.join(dir, 'config.json')), configFile: path.join(dir, 'config.json'),
    tokenizer: readJson(path.join(dir, 'tokenizer.json')), tokenizerFile: path.join(dir, 'tokenizer.json'),
    shards: shards.map((f) => ({ file: path.join(dir, f), src: fileSource(path.join(dir, f)) })),
    dir,
  });
}
