// Kernel IR: the small, printable, JSON-serialisable form that kernels take after translation.
// Built at build time from TypeScript (compiler/kernelc), composed and printed as WGSL at run time
// (compiler/kernel/wgsl.ts), so the runtime needs no TypeScript compiler.

/** the value types: scalars, four-lane vectors that are only loaded and taken apart (`.x` .. `.w`),
 *  f16 (workgroup tiles for the tensor cores), a subgroup's 16 × 16 matrices, and two that only
 *  intrinsics see: a workgroup array passed by reference, and no value (an intrinsic run for its effect) */
export type Scalar = 'f32' | 'u32' | 'i32' | 'bool' | 'u32x4' | 'f32x4' | 'f16' | Matrix | 'ref' | 'void';
/** A subgroup's 16 × 16 matrix (WGSL's subgroup matrices: Vulkan cooperative matrices, the tensor
 *  cores): the f16 left operand (rows of positions, row-major), the f16 right operand (columns of weight
 *  rows, column-major) and the f32 result they are multiplied and added into. */
export type Matrix = 'matLeft' | 'matRight' | 'matResult';
export const isMatrix = (t: string): t is Matrix => t === 'matLeft' || t === 'matRight' || t === 'matResult';

export type Expr =
  | { k: 'lit'; text: string; ty: Scalar | 'int' | 'float' } // 'int'/'float': abstract literals
  | { k: 'var'; name: string; ty: Scalar }
  | { k: 'uniform'; name: string; ty: Scalar }
  | { k: 'spec'; name: string; ty: Scalar }
  | { k: 'builtin'; name: 'local' | 'group' | 'global' | 'size' | 'subgroupSize' | 'subgroupId'; ty: 'u32' }
  /** a workgroup array passed to an intrinsic (WGSL `&name`) */
  | { k: 'ref'; array: string; ty: 'ref' }
  | { k: 'index'; array: string; index: Expr; ty: Scalar }
  | { k: 'len'; array: string; ty: 'u32' }
  | { k: 'bin'; op: string; a: Expr; b: Expr; ty: Scalar }
  | { k: 'un'; op: '-' | '!' | '~'; a: Expr; ty: Scalar }
  | { k: 'call'; fn: string; args: Expr[]; ty: Scalar } // WGSL builtin functions and conversions
  | { k: 'select'; cond: Expr; a: Expr; b: Expr; ty: Scalar }
  /** a place fusion fills with epilogue fragments; unfilled, it is its first argument. A kernel may
   *  have several, named (`epilogue(v, i, 'k')`); the default one is 'epilogue' */
  | { k: 'hole'; name: string; args: Expr[]; ty: Scalar }
  /** inside a fragment: argument n of the hole (0: the value, 1: the output index) */
  | { k: 'arg'; n: number; ty: Scalar }
  /** one lane of a four-lane vector */
  | { k: 'member'; a: Expr; field: 'x' | 'y' | 'z' | 'w'; ty: Scalar };

export type LValue = { k: 'var'; name: string; ty: Scalar } | { k: 'index'; array: string; index: Expr; ty: Scalar };

export type Stmt =
  | { k: 'let'; name: string; ty: Scalar; init: Expr | null; mutable: boolean }
  | { k: 'assign'; target: LValue; op: '=' | '+=' | '-=' | '*=' | '/=' | '%=' | '&=' | '|=' | '^=' | '<<=' | '>>='; value: Expr }
  | { k: 'if'; cond: Expr; then: Stmt[]; else: Stmt[] }
  | { k: 'for'; init: Stmt | null; cond: Expr | null; update: Stmt | null; body: Stmt[] }
  | { k: 'while'; cond: Expr; body: Stmt[] }
  | { k: 'break' }
  | { k: 'continue' }
  | { k: 'return' }
  | { k: 'barrier'; scope: 'workgroup' | 'storage' }
  /** an intrinsic called for its effect (a subgroup matrix stored) */
  | { k: 'call'; call: Extract<Expr, { k: 'call' }> };

export type Param =
  | { kind: 'in' | 'out'; name: string; elem: 'f32' | 'u32' | 'i32' | 'u32x4' | 'f32x4' }
  | { kind: 'uniform'; name: string; ty: 'f32' | 'u32' | 'i32' }
  /** a specialization constant: a WGSL `override`, set when the pipeline is created */
  | { kind: 'spec'; name: string; ty: 'u32' };

/** An epilogue fragment: `(v, i, ...params) => body`, spliced into a kernel's hole by fusion. */
export interface FragmentIR {
  name: string;
  source: string;
  /** parameters beyond (v, i): arrays it reads and scalars it takes */
  params: Param[];
  /** stores it makes before passing the value on (a tap: `t[i] = v; return v;`), in order */
  stores?: { array: string; index: Expr; value: Expr }[];
  body: Expr;
}

export interface KernelIR {
  name: string;
  /** where it was written, for error messages: "ops/matvec.ts:12" */
  source: string;
  workgroupSize: number;
  params: Param[];
  shared: { name: string; elem: 'f32' | 'u32' | 'f16'; size: number }[];
  /** each invocation's own fixed-size arrays (registers where every index is a constant: the loops
   *  that index them unroll, compiler/kernel/unroll.ts) */
  locals?: { name: string; elem: 'f32' | 'u32'; size: number }[];
  body: Stmt[];
  /** set where the kernel has no plain-JavaScript meaning (it multiplies subgroup matrices, which run
   *  a whole subgroup at once): its reference is its op's float64 reference */
  noPlainJs?: string;
}

/** The storage parameters of a kernel, in binding order. */
export const storageParams = (k: KernelIR) => k.params.filter((p): p is Extract<Param, { kind: 'in' | 'out' }> => p.kind === 'in' || p.kind === 'out');
/** The specialization constants of a kernel. */
export const specParams = (k: KernelIR) => k.params.filter((p) => p.kind === 'spec');
/** The scalar parameters of a kernel, in uniform-struct order. */
export const uniformParams = (k: KernelIR) => k.params.filter((p): p is Extract<Param, { kind: 'uniform' }> => p.kind === 'uniform');
