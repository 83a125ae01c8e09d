// Writing large files without losing anything: data goes to `<file>.partial` and is renamed into
// place only when complete, so an interrupted write never leaves a truncated model behind.
import fs from 'node:fs';
import { ggufHeader, type GGUFWriteTensor, type GGUFWriteValue } from '../formats/gguf_write.js';
import { llamaMetadata, ropeFreqsTensor } from '../formats/llama_gguf_write.js';
import { GGML_TYPE_ID } from '../../ops/dequant.js';
import type { SynthModel } from '../synth/synth.js';

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
export function writeSynthGGUF(m: SynthModel, file: string, onTensor?: (i: number) => void) {
  writeGGUFFile(file, llamaMetadata(m.config, m.vocab), [
    ...m.tensors.map((t) => ({ name: t.name, dims: [...t.shape].reverse(), type: GGML_TYPE_ID[t.dtype]!, bytes: t.bytes, produce: t.produce })),
    ...ropeFreqsTensor(m.config).map((t) => ({ ...t, bytes: t.data.length, produce: () => t.data })),
  ], onTensor);
  return file;
}
