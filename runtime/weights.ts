// Weights by GGUF tensor name, shape in row-major order ([rows, cols]).
import type { DType } from '../compiler/graph.js';

export interface WeightTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly data: Float32Array;
}
export type WeightMap = Map<string, WeightTensor>;
