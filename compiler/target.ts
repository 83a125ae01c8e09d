// What the compiler needs to know about the device it compiles for: the limits that shape a plan
// (how big one binding may be, how many a kernel may bind) and the features a kernel may use.
// The runtime reads them from the adapter; tests and snapshots name them outright.
export interface Target {
  /** maxStorageBufferBindingSize: weights are split by rows to fit, activations must fit */
  readonly maxBindingBytes: number;
  /** maxStorageBuffersPerShaderStage: a fused kernel binds no more than this */
  readonly maxStorageBuffers: number;
  /** subgroup operations (subgroupAdd, subgroupMax); without them kernels reduce through workgroup memory */
  readonly subgroups: boolean;
  /** columns one split of a prefill matrix product sums at most (default ops/matvec.ts's SPLIT_COLS;
   *  tests lower it to split small matrices) */
  readonly splitCols?: number;
  /** how far a transposed product (a gradient's) splits along the weight's rows: workgroups it aims at
   *  in all and rows a split walks at least (default ops/matvec_t.ts's TRANSPOSED_SPLIT) */
  readonly transposedSplit?: { readonly groups: number; readonly minRows: number };
  /** f16 16 × 16 × 16 subgroup matrices with f32 results (the tensor cores, through WGSL's
   *  chromium_experimental_subgroup_matrix) and f16 in shaders, for subgroups of 32: prefill matrix
   *  products of non-f32 weights then run on them (ops/matmul_tensor.ts) */
  readonly matrices?: boolean;
  /** rows from which a prefill matrix product over more than 64 positions takes the tensor cores'
   *  128 × 128 tiles (default ops/matvec.ts's TENSOR_WIDE_ROWS; the interp benchmark tries others) */
  readonly tensorWideRows?: number;
  /** the most output rows a prefill product that splits along its columns has (default ops/matvec.ts's
   *  SPLIT_MAX_ROWS, TENSOR_SPLIT_MAX_ROWS on the tensor cores; the prefill study tries others) */
  readonly splitMaxRows?: number;
}

/** WebGPU's guaranteed limits, with subgroups: what a plan is written for when nothing else is said. */
export const target = (t: Partial<Target> & Pick<Target, 'maxBindingBytes'>): Target =>
  ({ maxStorageBuffers: 8, subgroups: true, ...t });
