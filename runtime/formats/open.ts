// A model from bytes, wherever they live (a file read piece by piece in Node, a fetched buffer in the
// browser): the parts of loading that need no file system.
import { parseGGUF, type GGUFFile } from './gguf.js';
import { llamaFromGGUF } from './llama_gguf.js';
import { NeedMoreBytes } from './reader.js';
import type { ByteSource } from './source.js';
import type { ModelSource } from '../model.js';

/** A GGUF header, reading a growing prefix of the file until the header fits. */
export function readGGUFHeader(src: ByteSource, file: string): GGUFFile {
  for (let n = Math.min(src.size, 1 << 20); ; n = Math.min(src.size, n * 4)) {
    try {
      return parseGGUF(src.read(0, n), file, src.size);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes) || n >= src.size) throw e;
    }
  }
}

/** A Llama-family model in a GGUF file: config, tokenizer and weights (read when uploaded). */
export function ggufModelSource(src: ByteSource, file: string): ModelSource {
  return { ...llamaFromGGUF(readGGUFHeader(src, file), src, file), file };
}
