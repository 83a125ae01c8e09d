// Writing large files without losing anything: data goes to `<file>.partial` and is renamed into
// place only when complete, so an interrupted write never leaves a truncated model behind.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../compiler/errors.js';
import { hfConfigFor, hfName, permuteRows, tokenizerJsonFor } from '../formats/hf_llama.js';
import { writeSafetensors } from '../formats/safetensors.js';
import type { ModelSource } from '../model.js';
import { ggufHeader, type GGUFWriteTensor, type GGUFWriteValue } from '../formats/gguf_write.js';
import { llamaMetadata, ropeFreqsTensor } from '../formats/llama_gguf_write.js';
import { GGML_TYPE_ID } from '../../ops/dequant.js';
import type { SynthModel } from '../synth/synth.js';
import type { WeightMap } from '../weights.js';

export function writeAtomically(file: string, write: (fd: number) => void) {
  const tmp = `${file}.partial`;
  const fd = fs.openSync(tmp, 'w');
  try {
    write(fd);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

export interface LazyTensor extends Omit<GGUFWriteTensor, 'data'> {
  bytes: number;
  /** made when written, so only one tensor's data is in memory at a time */
  produce(): Uint8Array;
}

/** Stream a GGUF file to disk, tensor by tensor. */
export function writeGGUFFile(file: string, metadata: [string, GGUFWriteValue][], tensors: LazyTensor[], onTensor?: (i: number) => void) {
  const { header, offsets } = ggufHeader(metadata, tensors, tensors.map((t) => t.bytes));
  writeAtomically(file, (fd) => {
    fs.writeSync(fd, header);
    tensors.forEach((t, i) => {
      const data = t.produce();
      if (data.length !== t.bytes) throw new Error(`internal: tensor ${t.name} produced ${data.length} bytes, expected ${t.bytes}`);
      fs.writeSync(fd, data, 0, data.length, header.length + offsets[i]!);
      onTensor?.(i);
    });
    // pad the last tensor to the alignment, as GGUF readers expect
    const end = header.length + offsets[offsets.length - 1]! + tensors[tensors.length - 1]!.bytes;
    const padded = Math.ceil(end / 32) * 32;
    if (padded > end) fs.writeSync(fd, new Uint8Array(padded - end), 0, padded - end, end);
  });
}

/** A synthetic model (runtime/synth) as a GGUF file. */
export function writeSynthGGUF(m: SynthModel, file: string, onTensor?: (i: number) => void, made?: WeightMap) {
  writeGGUFFile(file, llamaMetadata(m.config, m.vocab, m.family), [
    // `made`: tensors made already (e.g. benchWeights'), written as they are
    ...m.tensors.map((t) => ({ name: t.name, dims: [...t.shape].reverse(), type: GGML_TYPE_ID[t.dtype]!, bytes: t.bytes, produce: made?.has(t.name) ? () => made.get(t.name)!.bytes : t.produce })),
    ...ropeFreqsTensor(m.config).map((t) => ({ ...t, bytes: t.data.length, produce: () => t.data })),
  ], onTensor);
  return file;
}

/** A model as a Hugging Face folder: config.json, tokenizer.json (byte-level BPE) and model.safetensors.
 *  Q/K rows go back to HF's rotate-half layout. Weights must be f32, f16 or bf16. */
export function writeHFFolder(src: ModelSource, dir: string, ropeScaling?: Record<string, unknown>) {
  const c = src.config;
  const tensors = [...src.weights.entries()].flatMap(([name, w]) => {
    const hf = hfName(name);
    if (!hf) return [];
    if (w.dtype !== 'f32' && w.dtype !== 'f16' && w.dtype !== 'bf16') throw new UsageError(`safetensors holds f32, f16 or bf16; '${name}' is ${w.dtype}`);
    const t = name.endsWith('attn_q.weight') ? permuteRows(w, c.nHeads, false) : name.endsWith('attn_k.weight') ? permuteRows(w, c.nKvHeads, false) : w;
    return [{ name: hf, dtype: w.dtype, shape: w.shape, bytes: t.bytes }];
  });
  const dtype = tensors.find((t) => t.shape.length === 2)?.dtype ?? 'f32';
  fs.mkdirSync(dir, { recursive: true });
  const put = (name: string, data: Uint8Array | string) =>
    writeAtomically(path.join(dir, name), (fd) => { fs.writeSync(fd, typeof data === 'string' ? new TextEncoder().encode(data) : data); });
  put('model.safetensors', writeSafetensors(tensors, { format: 'pt' }));
  put('tokenizer.json', JSON.stringify(tokenizerJsonFor(src.vocab)));
  put('config.json', JSON.stringify(hfConfigFor(c, src.vocab, dtype, ropeScaling), null, 2));
}
