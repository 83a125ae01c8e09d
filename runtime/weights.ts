// Weights by GGUF tensor name: shape in row-major order ([rows, cols]) and the bytes in the
// file's own layout for their dtype (see ops/dequant.ts).
import { quantize } from '../ops/dequant.js';
import type { DType } from '../compiler/ir/dtype.js';

export interface WeightTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly bytes: Uint8Array;
  /** rows [start, start+count) of a 2-D weight, when they can be read without the rest */
  readonly readRows?: (start: number, count: number) => Uint8Array;
  /** the same rows read straight into `into` (exactly their size): no buffer of their own */
  readonly readRowsInto?: (start: number, count: number, into: Uint8Array) => void;
}

/** Rows of a weight in file layout. */
export function weightRows(w: WeightTensor, start: number, count: number): Uint8Array {
  if (w.readRows) return w.readRows(start, count);
  const rowBytes = w.bytes.byteLength / (w.shape.length === 2 ? w.shape[0]! : 1);
  return w.bytes.subarray(start * rowBytes, (start + count) * rowBytes);
}

/** Rows of a weight in file layout, written into `into` (exactly their size) where they are read from
 *  a file; where they are in memory already, `into` is left alone and a view is returned. */
export function weightRowsInto(w: WeightTensor, start: number, count: number, into: Uint8Array): Uint8Array {
  if (!w.readRowsInto) return weightRows(w, start, count);
  w.readRowsInto(start, count, into);
  return into;
}
export type WeightMap = Map<string, WeightTensor>;

export const f32Weight = (shape: readonly number[], data: Float32Array): WeightTensor =>
  ({ shape, dtype: 'f32', bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });

/** A weight with its values stored as `dtype` (quantizing if needed). */
export const weightOf = (shape: readonly number[], dtype: DType, values: ArrayLike<number>): WeightTensor =>
  ({ shape, dtype, bytes: quantize(dtype, values) });
