// The kernel language's intrinsics: functions a kernel calls that are neither arithmetic nor Math.
// Each is one entry: its signature (the translator checks calls against it), its plain-JavaScript
// meaning (dsl.ts exports it, so a kernel still runs as an ordinary function) and its WGSL spelling
// (the printer writes it). A new intrinsic is one more entry here.
import type { KernelIR, Scalar } from './ir.js';
import { someInStmts } from './visit.js';
import type { Target } from '../target.js';

// (dsl.ts names these types for kernels; plain numbers here keep this table below dsl.ts)
type f32 = number;
type u32 = number;
type i32 = number;
type u32x4 = { readonly x: u32; readonly y: u32; readonly z: u32; readonly w: u32 };

export interface Intrinsic<F extends (...args: never[]) => unknown = (...args: never[]) => unknown> {
  /** argument types, in order */
  readonly args: readonly Scalar[];
  /** result type */
  readonly ty: Scalar;
  /** what it computes, in plain JavaScript (one invocation at a time) */
  readonly js: F;
  /** its WGSL, from the printed arguments */
  wgsl(args: readonly string[], target: Pick<Target, 'subgroups'>): string;
  /** it works across a subgroup (the module then enables subgroups) */
  readonly subgroup?: boolean;
  /** its second argument picks one of this many lanes of a vector (the printer clamps it unless
   *  compiler/kernel/bounds.ts shows it in range) */
  readonly lanes?: number;
  /** it takes or makes subgroup matrices (the module enables them and f16; the kernel has no
   *  plain-JavaScript meaning, and runs only where the device offers f16 16 × 16 × 16 matrices) */
  readonly matrix?: boolean;
}
const intrinsic = <F extends (...args: never[]) => unknown>(i: Intrinsic<F>) => i;

/** What a subgroup-matrix intrinsic does when a kernel runs as plain JavaScript: it cannot (one
 *  invocation at a time has no subgroup to share a matrix with). */
const noPlainJs = (name: string) => (): never => {
  throw new Error(`${name}: a kernel that multiplies subgroup matrices has no plain-JavaScript run; its op's float64 reference is its reference`);
};
/** opaque stand-ins for subgroup matrices in TypeScript (dsl.ts names them) */
export interface MatrixLeft { readonly matrix: 'left' }
export interface MatrixRight { readonly matrix: 'right' }
export interface MatrixResult { readonly matrix: 'result' }
const LEFT = 'subgroup_matrix_left<f16, 16, 16>', RIGHT = 'subgroup_matrix_right<f16, 16, 16>', RESULT = 'subgroup_matrix_result<f32, 16, 16>';

// bit-level reads for packed weights (f16/bf16 pairs in a u32, int8 quads, nibbles)
const scratch = new DataView(new ArrayBuffer(4));

/** IEEE half bits -> number. */
export function halfToFloat(h: number): number {
  const e = (h >> 10) & 31, m = h & 1023, s = h >> 15 ? -1 : 1;
  return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
}
/** number -> IEEE half bits, round to nearest even (via f32). */
export function floatToHalf(x: number): number {
  scratch.setFloat32(0, x, true);
  const f = scratch.getUint32(0, true);
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff, man = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = man | 0x800000, shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

export const INTRINSICS = {
  /** The u32's bits as an f32. */
  bitcastF32: intrinsic({
    args: ['u32'], ty: 'f32', wgsl: ([w]) => `bitcast<f32>(${w})`,
    js: (w: u32): f32 => { scratch.setUint32(0, w >>> 0, true); return scratch.getFloat32(0, true); },
  }),
  /** The f32's bits as a u32 (a power of two made from an exponent, exactly). */
  bitcastU32: intrinsic({
    args: ['f32'], ty: 'u32', wgsl: ([v]) => `bitcast<u32>(${v})`,
    js: (v: f32): u32 => { scratch.setFloat32(0, v, true); return scratch.getUint32(0, true); },
  }),
  /** Half `k` (0 = low 16 bits) of a u32 holding two IEEE halves, as f32. */
  unpackHalf: intrinsic({
    args: ['u32', 'u32'], ty: 'f32', lanes: 2, wgsl: ([w, k]) => `unpack2x16float(${w})[${k}]`,
    js: (w: u32, k: u32): f32 => halfToFloat((w >>> (k * 16)) & 0xffff),
  }),
  /** Half `k` (0 = low 16 bits) of a u32 holding two IEEE halves, as f16: the bits as they are, no
   *  conversion (an f16 weight on its way into a tensor-core tile). */
  halfOf: intrinsic({
    args: ['u32', 'u32'], ty: 'f16', lanes: 2, wgsl: ([w, k]) => `bitcast<vec2<f16>>(${w})[${k}]`,
    js: (w: u32, k: u32): number => halfToFloat((w >>> (k * 16)) & 0xffff),
  }),
  /** Byte `k` (0 = lowest) of a u32, sign-extended to i32. */
  signedByte: intrinsic({
    args: ['u32', 'u32'], ty: 'i32', wgsl: ([w, k]) => `extractBits(bitcast<i32>(${w}), ${k} * 8u, 8u)`,
    js: (w: u32, k: u32): i32 => ((w >>> (k * 8)) << 24) >> 24,
  }),
  /** Lane `k` (0 = x .. 3 = w) of a 4-lane load, `k` known only at run time. */
  lane4: intrinsic({
    args: ['u32x4', 'u32'], ty: 'u32', lanes: 4, wgsl: ([v, k]) => `${v}[${k}]`,
    js: (v: u32x4, k: u32): u32 => [v.x, v.y, v.z, v.w][k]!,
  }),
  /** The sum of `v` over this invocation's subgroup, in every invocation of it (a subgroup of one in
   *  plain JS, and on devices without subgroups). Call it where the whole workgroup runs. */
  subgroupAdd: intrinsic({
    args: ['f32'], ty: 'f32', subgroup: true, wgsl: ([v], t) => (t.subgroups ? `subgroupAdd(${v})` : `(${v})`),
    js: (v: f32): f32 => v,
  }),
  /** The largest `v` of this invocation's subgroup, as subgroupAdd. */
  subgroupMax: intrinsic({
    args: ['f32'], ty: 'f32', subgroup: true, wgsl: ([v], t) => (t.subgroups ? `subgroupMax(${v})` : `(${v})`),
    js: (v: f32): f32 => v,
  }),
  /** A 16 × 16 result of zeros. */
  matrixZero: intrinsic({ args: [], ty: 'matResult', matrix: true, wgsl: () => `${RESULT}()`, js: noPlainJs('matrixZero') as () => MatrixResult }),
  /** The left operand: rows of 16 halves from workgroup memory, row r at offset + r·stride. */
  matrixLoadLeft: intrinsic({
    args: ['ref', 'u32', 'u32'], ty: 'matLeft', matrix: true,
    wgsl: ([a, o, s]) => `subgroupMatrixLoad<${LEFT}, row_major>(${a}, ${o}, ${s})`,
    js: noPlainJs('matrixLoadLeft') as (a: unknown, offset: u32, stride: u32) => MatrixLeft,
  }),
  /** The right operand, column-major: column c (a weight row) of 16 halves at offset + c·stride. */
  matrixLoadRight: intrinsic({
    args: ['ref', 'u32', 'u32'], ty: 'matRight', matrix: true,
    wgsl: ([a, o, s]) => `subgroupMatrixLoad<${RIGHT}, col_major>(${a}, ${o}, ${s})`,
    js: noPlainJs('matrixLoadRight') as (a: unknown, offset: u32, stride: u32) => MatrixRight,
  }),
  /** The right operand, row-major: row k (a weight row, read as the rows are stored) of 16 halves at
   *  offset + k·stride (the transposed product's weights, never copied transposed). */
  matrixLoadRightRows: intrinsic({
    args: ['ref', 'u32', 'u32'], ty: 'matRight', matrix: true,
    wgsl: ([a, o, s]) => `subgroupMatrixLoad<${RIGHT}, row_major>(${a}, ${o}, ${s})`,
    js: noPlainJs('matrixLoadRightRows') as (a: unknown, offset: u32, stride: u32) => MatrixRight,
  }),
  /** c + a·b, accumulated in f32. */
  matrixMultiplyAdd: intrinsic({
    args: ['matLeft', 'matRight', 'matResult'], ty: 'matResult', matrix: true,
    wgsl: ([a, b, c]) => `subgroupMatrixMultiplyAccumulate(${a}, ${b}, ${c})`,
    js: noPlainJs('matrixMultiplyAdd') as (a: MatrixLeft, b: MatrixRight, c: MatrixResult) => MatrixResult,
  }),
  /** The result into f32 workgroup memory, row-major: row r at offset + r·stride. */
  matrixStore: intrinsic({
    args: ['ref', 'u32', 'matResult', 'u32'], ty: 'void', matrix: true,
    wgsl: ([a, o, c, s]) => `subgroupMatrixStore<row_major>(${a}, ${o}, ${c}, ${s})`,
    js: noPlainJs('matrixStore') as (a: unknown, offset: u32, c: MatrixResult, stride: u32) => void,
  }),
} as const;

export type IntrinsicName = keyof typeof INTRINSICS;
export const intrinsicOf = (name: string): Intrinsic | undefined =>
  Object.hasOwn(INTRINSICS, name) ? (INTRINSICS as Record<string, Intrinsic>)[name] : undefined;

/** Whether a kernel multiplies subgroup matrices (its module enables them and f16; it has no
 *  plain-JavaScript run; it runs only on subgroups of 32). */
export const usesMatrices = (k: Pick<KernelIR, 'body'>) => someInStmts(k.body, (e) => e.k === 'call' && intrinsicOf(e.fn)?.matrix === true);
