// Weight formats: how each dtype is stored in a GGUF file, how tapir repacks it for the GPU (the
// layouts are described in compiler/ir/dtype.ts), and how kernels read one element of it. Quantized
// weights stay quantized on the GPU.
import { type In, type Spec, type u32, bitcastF32, f32, i32, signedByte, unpackHalf } from '../compiler/kernel/dsl.js';
import { type DType, gpuWords, rawBytes } from '../compiler/ir/dtype.js';
import { floatToHalf, halfToFloat } from '../compiler/kernel/intrinsics.js';

export { floatToHalf, halfToFloat };

/** Spec-constant codes for the weight dtype a kernel reads. */
export const WTYPE: Readonly<Record<string, number>> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4 };
export const GGML_TYPE_ID: Readonly<Record<string, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8, bf16: 30 };

// ---- halves --------------------------------------------------------------------------------
const cvt = new DataView(new ArrayBuffer(4));
export const bf16ToFloat = (b: number) => { cvt.setUint32(0, b << 16, true); return cvt.getFloat32(0, true); };
export function floatToBf16(x: number): number {
  cvt.setFloat32(0, x, true);
  const f = cvt.getUint32(0, true);
  if ((f & 0x7fffffff) > 0x7f800000) return (f >>> 16) | 0x40; // NaN stays NaN
  return (f + 0x7fff + ((f >>> 16) & 1)) >>> 16;
}

// ---- CPU: file layout -> float64 (the reference reads weights through this) ---------------------
export function dequantize(dtype: DType, bytes: Uint8Array, n: number): Float64Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(n);
  switch (dtype) {
    case 'f32': for (let i = 0; i < n; i++) out[i] = v.getFloat32(i * 4, true); break;
    case 'f16': for (let i = 0; i < n; i++) out[i] = halfToFloat(v.getUint16(i * 2, true)); break;
    case 'bf16': for (let i = 0; i < n; i++) out[i] = bf16ToFloat(v.getUint16(i * 2, true)); break;
    case 'q8_0':
      for (let b = 0; b < n / 32; b++) {
        const d = halfToFloat(v.getUint16(b * 34, true));
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * v.getInt8(b * 34 + 2 + j);
      }
      break;
    case 'q4_0':
      for (let b = 0; b < n / 32; b++) {
        const d = halfToFloat(v.getUint16(b * 18, true));
        for (let k = 0; k < 16; k++) {
          const q = v.getUint8(b * 18 + 2 + k);
          out[b * 32 + k] = d * ((q & 15) - 8);
          out[b * 32 + k + 16] = d * ((q >> 4) - 8);
        }
      }
      break;
    default: throw new Error(`internal: cannot dequantize ${dtype}`);
  }
  return out;
}

// ---- CPU: float -> file layout (synth, writers, tests) -------------------------------------------
export function quantize(dtype: DType, x: ArrayLike<number>): Uint8Array {
  const n = x.length;
  const out = new Uint8Array(rawBytes(dtype, n));
  const v = new DataView(out.buffer);
  switch (dtype) {
    case 'f32': for (let i = 0; i < n; i++) v.setFloat32(i * 4, x[i]!, true); break;
    case 'f16': for (let i = 0; i < n; i++) v.setUint16(i * 2, floatToHalf(x[i]!), true); break;
    case 'bf16': for (let i = 0; i < n; i++) v.setUint16(i * 2, floatToBf16(x[i]!), true); break;
    case 'q8_0':
      for (let b = 0; b < n / 32; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
        const d = amax / 127, id = d ? 1 / d : 0;
        v.setUint16(b * 34, floatToHalf(d), true);
        for (let j = 0; j < 32; j++) v.setInt8(b * 34 + 2 + j, Math.round(x[b * 32 + j]! * id));
      }
      break;
    case 'q4_0':
      for (let b = 0; b < n / 32; b++) {
        // as ggml: the scale maps the value of largest magnitude to -8
        let max = 0;
        for (let j = 0; j < 32; j++) if (Math.abs(x[b * 32 + j]!) > Math.abs(max)) max = x[b * 32 + j]!;
        const d = max / -8, id = d ? 1 / d : 0;
        v.setUint16(b * 18, floatToHalf(d), true);
        const q = (j: number) => Math.min(15, Math.trunc(x[b * 32 + j]! * id + 8.5));
        for (let k = 0; k < 16; k++) v.setUint8(b * 18 + 2 + k, q(k) | (q(k + 16) << 4));
      }
      break;
    default: throw new Error(`internal: cannot quantize to ${dtype}`);
  }
  return out;
}

// ---- CPU: file layout -> GPU layout ---------------------------------------------------------------
/** Whether the GPU layout of `cols`-wide rows is the file's, byte for byte (no repacking). */
export const sameLayout = (dtype: DType, cols: number) => dtype === 'f32' || ((dtype === 'f16' || dtype === 'bf16') && cols % 2 === 0);

/** Repack `rows` rows of `cols` columns (file layout) into the GPU layout described at the top, into
 *  `out` when given (zeroed, at least that many words: e.g. a buffer's mapping). */
export function repack(dtype: DType, bytes: Uint8Array, rows: number, cols: number, out = new Uint32Array(gpuWords(dtype, rows, cols))): Uint32Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'f32':
      for (let i = 0; i < rows * cols; i++) out[i] = v.getUint32(i * 4, true);
      break;
    case 'f16': case 'bf16': {
      const stride = Math.ceil(cols / 2);
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) out[r * stride + (c >> 1)]! |= v.getUint16((r * cols + c) * 2, true) << ((c & 1) * 16);
      break;
    }
    case 'q8_0': {
      const blocks = (rows * cols) / 32, scales = (rows * cols) / 4;
      for (let b = 0; b < blocks; b++) {
        out[scales + (b >> 1)]! |= v.getUint16(b * 34, true) << ((b & 1) * 16);
        for (let w = 0; w < 8; w++) out[b * 8 + w] = v.getUint32(b * 34 + 2 + w * 4, true);
      }
      break;
    }
    case 'q4_0': {
      const blocks = (rows * cols) / 32, scales = (rows * cols) / 8;
      const f = new Float32Array(out.buffer);
      for (let b = 0; b < blocks; b++) {
        f[scales + b] = halfToFloat(v.getUint16(b * 18, true));
        for (let k = 0; k < 16; k++) {
          const q = v.getUint8(b * 18 + 2 + k);
          out[b * 4 + (k >> 3)]! |= (q & 15) << ((k & 7) * 4);
          out[b * 4 + ((k + 16) >> 3)]! |= (q >> 4) << (((k + 16) & 7) * 4);
        }
      }
      break;
    }
    default: throw new Error(`internal: no GPU layout for ${dtype}`);
  }
  return out;
}

// ---- GPU: one element of a weight, in any layout ---------------------------------------------------
/** Element (r, c) of a `rows` × `cols` weight in the GPU layout of dtype `wtype` (see WTYPE). */
/** @inline */
export function weightAt(w: In<u32>, wtype: Spec<u32>, rows: u32, cols: u32, r: u32, c: u32): f32 {
  return wtype === 0 ? bitcastF32(w[r * cols + c])
    : wtype === 1 ? unpackHalf(w[r * ((cols + 1) >> 1) + (c >> 1)], c & 1)
    : wtype === 2 ? bitcastF32(((w[r * ((cols + 1) >> 1) + (c >> 1)] >> ((c & 1) * 16)) & 0xffff) << 16)
    : wtype === 3 ? unpackHalf(w[rows * (cols >> 2) + ((r * (cols >> 5) + (c >> 5)) >> 1)], (r * (cols >> 5) + (c >> 5)) & 1) * f32(signedByte(w[r * (cols >> 2) + (c >> 2)], c & 3))
    : bitcastF32(w[rows * (cols >> 3) + r * (cols >> 5) + (c >> 5)]) * f32(i32((w[r * (cols >> 3) + (c >> 3)] >> ((c & 7) * 4)) & 15) - 8);
}
