// Where model bytes come from: memory (tests, the browser) or a file read piece by piece, so a
// multi-gigabyte model is never held twice (or even once, whole) in memory.
import type { WeightTensor } from '../weights.js';
import type { DType } from '../../compiler/ir/dtype.js';

export interface ByteSource {
  readonly size: number;
  /** `length` bytes from `offset`; the caller has checked the range against `size` */
  read(offset: number, length: number): Uint8Array;
  /** the same bytes written into `into` (exactly `length` long), where the source can avoid a buffer */
  readInto?(offset: number, into: Uint8Array): void;
}

export const memorySource = (b: Uint8Array): ByteSource => ({ size: b.byteLength, read: (o, n) => b.subarray(o, o + n) });

/** A weight whose bytes are read from the source when asked for (and not kept). */
export function lazyWeight(src: ByteSource, shape: readonly number[], dtype: DType, offset: number, length: number): WeightTensor {
  const rows = shape.length === 2 ? shape[0]! : 1;
  const rowBytes = length / rows;
  return {
    shape, dtype,
    get bytes() { return src.read(offset, length); },
    readRows: (start: number, count: number) => src.read(offset + start * rowBytes, count * rowBytes),
    ...(src.readInto ? { readRowsInto: (start: number, count: number, into: Uint8Array) => src.readInto!(offset + start * rowBytes, into.subarray(0, count * rowBytes)) } : {}),
  };
}
