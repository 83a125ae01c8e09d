// The kernel language: the TypeScript subset that compiler/kernelc translates to kernel IR.
// A kernel is a function marked `/** @kernel @workgroupSize N */` in a file under ops/. Its first
// parameter is the invocation (`id: Invocation`), then storage arrays (`In<T>` read-only,
// `Out<T>` read-write), then scalars (`f32`/`u32`/`i32`), which become fields of a uniform struct.
// Everything here also runs as plain JavaScript, so a kernel stays an ordinary function.

/** 32-bit float. In a kernel, `number` must be spelled as one of f32/u32/i32. */
export type f32 = number;
/** 32-bit unsigned integer. */
export type u32 = number;
/** 32-bit signed integer. */
export type i32 = number;

/** A read-only storage array (a read-only storage binding on the GPU). */
export type In<T extends number = f32> = { readonly [i: number]: T; readonly length: number };
/** A read-write storage array (a read-write storage binding on the GPU). */
export type Out<T extends number = f32> = { [i: number]: T; readonly length: number };

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
}

// Conversions: explicit, because TypeScript has one number type and WGSL has three.
export const f32 = (x: number): f32 => Math.fround(x);
export const u32 = (x: number): u32 => Math.trunc(x) >>> 0;
export const i32 = (x: number): i32 => Math.trunc(x) | 0;
/** Integer division (truncating), the only division allowed on u32/i32: `/` would differ from JS. */
export const idiv = (a: number, b: number): number => Math.trunc(a / b);

/** Workgroup memory: `const s = sharedF32(64)` declares 64 floats of workgroup memory. */
export const sharedF32 = (n: number): Out<f32> => new Float32Array(n);
export const sharedU32 = (n: number): Out<u32> => new Uint32Array(n);

/** Synchronise workgroup memory. In plain JS (one invocation at a time) it does nothing. */
export function workgroupBarrier(): void {}
/** Synchronise storage memory written by this workgroup. */
export function storageBarrier(): void {}
