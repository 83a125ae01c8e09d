// The tensor element types, and how each lies in GPU memory (what the planner sizes buffers and
// splits weights by). Conversions and the kernels that read these layouts live in ops/dequant.ts.
//
// GPU layout of a block of `rows` rows × `cols` columns (a weight, or a piece of one split to fit
// a binding), in u32 words:
//   f32        rows*cols words, the float bits
//   f16, bf16  row stride ceil(cols/2) words, two halves per word, low half first
//   q8_0       rows*cols/4 words of int8 quads (row-major), then the rows*cols/32 f16 scales two a word
//              (block b in half b & 1 of word b >> 1: the file's own halves, so a block is 33 bytes)
//   q4_0       rows*cols/8 words of 8 nibbles (element j of a block in nibble j), then rows*cols/32 f32 scales
// (GGUF's Q8_0 block: f16 scale + 32 int8, 34 bytes; Q4_0: f16 scale + 16 bytes where byte k holds
//  element k in its low nibble and element k+16 in its high one, value (q - 8) * scale, 18 bytes.)

export type DType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'i32';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'i32'];

/** [elements per block, bytes per block] in GGUF */
export const BLOCK: Readonly<Record<string, readonly [number, number]>> = { f32: [1, 4], f16: [1, 2], bf16: [1, 2], q8_0: [32, 34], q4_0: [32, 18], i32: [1, 4] };
export const WEIGHT_DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

/** Bytes of `n` elements in the file's layout. */
export const rawBytes = (dtype: DType, n: number) => (n / BLOCK[dtype]![0]) * BLOCK[dtype]![1];

/** u32 words one row takes on the GPU (the scales of q8_0/q4_0 included). */
export function gpuRowWords(dtype: DType, cols: number): number {
  switch (dtype) {
    case 'f32': return cols;
    case 'f16': case 'bf16': return Math.ceil(cols / 2);
    case 'q8_0': return cols / 4 + cols / 64; // (a half word when cols is an odd multiple of 32)
    case 'q4_0': return cols / 8 + cols / 32;
    default: throw new Error(`internal: no GPU layout for ${dtype}`);
  }
}

/** u32 words `rows` rows take on the GPU. */
export function gpuWords(dtype: DType, rows: number, cols: number): number {
  return dtype === 'q8_0' ? (rows * cols) / 4 + Math.ceil((rows * cols) / 64) : rows * gpuRowWords(dtype, cols);
}
