// The kernel language: the TypeScript subset that compiler/kernelc translates to kernel IR.
// A kernel is a function marked `/** @kernel @workgroupSize N */` in a file under ops/. Its first
// parameter is the invocation (`id: Invocation`), then storage arrays (`In<T>` read-only,
// `Out<T>` read-write), then scalars (`f32`/`u32`/`i32`), which become fields of a uniform struct.
// Everything here also runs as plain JavaScript, so a kernel stays an ordinary function.
import { INTRINSICS, floatToHalf, halfToFloat } from './intrinsics.js';

/** 32-bit float. In a kernel, `number` must be spelled as one of f32/u32/i32. */
export type f32 = number;
/** 32-bit unsigned integer. */
export type u32 = number;
/** 32-bit signed integer. */
export type i32 = number;

/** 16-bit float: the element of workgroup tiles the tensor cores read (`sharedF16`); `f16(x)` rounds. */
export type f16 = number;

/** Four lanes loaded at once (one 16-byte load): `const v: u32x4 = w[i]`, then `v.x` .. `v.w`. Weights
 *  stream at the memory's speed only with loads this wide. */
export type u32x4 = { readonly x: u32; readonly y: u32; readonly z: u32; readonly w: u32 };
export type f32x4 = { readonly x: f32; readonly y: f32; readonly z: f32; readonly w: f32 };
/** Lane-wise product of two 4-lane vectors. */
export const mul4 = (a: f32x4, b: f32x4): f32x4 => ({ x: a.x * b.x, y: a.y * b.y, z: a.z * b.z, w: a.w * b.w });

/** A read-only storage array (a read-only storage binding on the GPU). */
export type In<T extends number | u32x4 | f32x4 = f32> = { readonly [i: number]: T; readonly length: number };
/** A read-write storage array (a read-write storage binding on the GPU). */
export type Out<T extends number = f32> = { [i: number]: T; readonly length: number };

/** A specialization constant (WGSL `override`): fixed when the pipeline is made, so branches on it
 *  cost nothing. Used to pick a weight format without a kernel per format. */
export type Spec<T extends number = u32> = T;

/** Where this invocation sits. Dispatches are linear: `group` counts workgroups along a 1-D grid. */
export interface Invocation {
  /** index within the workgroup, 0 .. size-1 */
  readonly local: u32;
  /** linear workgroup index (the runtime folds grids over 65535 into 2-D; this undoes it) */
  readonly group: u32;
  /** group * size + local */
  readonly global: u32;
  /** the workgroup size, a compile-time constant */
  readonly size: u32;
  /** invocations in this invocation's subgroup (1 where the device has no subgroups); a subgroup is a
   *  run of consecutive `local` indices */
  readonly subgroupSize: u32;
  /** this invocation's subgroup within the workgroup, 0 .. size / subgroupSize - 1 */
  readonly subgroupId: u32;
}

// Conversions: explicit, because TypeScript has one number type and WGSL has three.
export const f32 = (x: number): f32 => Math.fround(x);
export const u32 = (x: number): u32 => Math.trunc(x) >>> 0;
export const i32 = (x: number): i32 => Math.trunc(x) | 0;
/** Round to the nearest half (ties to even), as WGSL's f16() does. */
export const f16 = (x: number): f16 => halfToFloat(floatToHalf(x));
/** Integer division (truncating), the only division allowed on u32/i32: `/` would differ from JS. */
export const idiv = (a: number, b: number): number => Math.trunc(a / b);

/** Workgroup memory: `const s = sharedF32(64)` declares 64 floats of workgroup memory. */
export const sharedF32 = (n: number): Out<f32> => new Float32Array(n);
export const sharedU32 = (n: number): Out<u32> => new Uint32Array(n);
export const sharedF16 = (n: number): Out<f16> => new Float32Array(n);
/** This invocation's own array: `const acc = localF32(16)` (zeros), for accumulators indexed by
 *  constant-trip loops, which unroll so every index is a constant. */
export const localF32 = (n: number): Out<f32> => new Float32Array(n);
export const localU32 = (n: number): Out<u32> => new Uint32Array(n);

/** Synchronise workgroup memory. In plain JS (one invocation at a time) it does nothing. */
export function workgroupBarrier(): void {}
/** Synchronise storage memory written by this workgroup. */
export function storageBarrier(): void {}

/** Where a fused kernel's epilogue goes: the value `v` about to be stored at output index `i`.
 *  Fusion rules splice @epilogue fragments (a residual or bias add, a scale, ...) in here; with none,
 *  it is `v`. */
export function epilogue(v: f32, _i: u32, _hole?: string): f32 {
  return v;
}

// The intrinsics (compiler/kernel/intrinsics.ts has each one's signature, meaning and WGSL):
// bit-level reads for packed weights and subgroup reductions.
export const bitcastF32: (w: u32) => f32 = INTRINSICS.bitcastF32.js;
export const bitcastU32: (v: f32) => u32 = INTRINSICS.bitcastU32.js;
export const unpackHalf: (w: u32, k: u32) => f32 = INTRINSICS.unpackHalf.js;
export const halfOf: (w: u32, k: u32) => f16 = INTRINSICS.halfOf.js;
export const signedByte: (w: u32, k: u32) => i32 = INTRINSICS.signedByte.js;
export const lane4: (v: u32x4, k: u32) => u32 = INTRINSICS.lane4.js;
export const subgroupAdd: (v: f32) => f32 = INTRINSICS.subgroupAdd.js;
export const subgroupMax: (v: f32) => f32 = INTRINSICS.subgroupMax.js;
// subgroup matrices (the tensor cores): 16 × 16 tiles a whole subgroup holds; no plain-JavaScript run
export type { MatrixLeft, MatrixRight, MatrixResult } from './intrinsics.js';
export const matrixZero = INTRINSICS.matrixZero.js;
export const matrixLoadLeft = INTRINSICS.matrixLoadLeft.js;
export const matrixLoadRight = INTRINSICS.matrixLoadRight.js;
export const matrixLoadRightRows = INTRINSICS.matrixLoadRightRows.js;
export const matrixMultiplyAdd = INTRINSICS.matrixMultiplyAdd.js;
export const matrixStore = INTRINSICS.matrixStore.js;

