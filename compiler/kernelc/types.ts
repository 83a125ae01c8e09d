// What the translator knows of types: the abstract literals TypeScript leaves open, how they take a
// concrete type (as WGSL would, but checked first), and the parameter types a kernel may declare,
// parsed once for kernels, epilogue fragments and inline helpers alike.
import type { ParameterDeclaration } from 'ts-morph';
import type { Expr, Scalar } from '../kernel/ir.js';

export class KernelSyntaxError extends Error {
  override name = 'KernelSyntaxError';
}

/** A type during translation: a concrete one, or a bare literal's ('int' may become u32/i32/f32). */
export type Ty = Scalar | 'int' | 'float';
export const isAbstract = (t: Ty): t is 'int' | 'float' => t === 'int' || t === 'float';
export const isInt = (t: Ty) => t === 'u32' || t === 'i32' || t === 'int';

/** The TypeScript spellings of the value types. */
export const SCALARS: Record<string, Scalar> = {
  f32: 'f32', u32: 'u32', i32: 'i32', boolean: 'bool', u32x4: 'u32x4', f32x4: 'f32x4', f16: 'f16',
  MatrixLeft: 'matLeft', MatrixRight: 'matRight', MatrixResult: 'matResult',
};

/** What a name stands for while a function is translated. */
export type Binding =
  /** `ir` is its name in the kernel IR (locals of inlined helpers get a suffix so they never collide) */
  | { kind: 'local'; ty: Scalar; mutable: boolean; ir: string }
  | { kind: 'uniform'; ty: Scalar }
  | { kind: 'spec'; ty: Scalar }
  /** `name` is the array's name in WGSL (an inline helper's parameter names the caller's array) */
  | { kind: 'array'; elem: Scalar; writable: boolean; name: string }
  /** an inline helper's scalar parameter: the caller's argument expression */
  | { kind: 'alias'; expr: Expr }
  | { kind: 'invocation' };

/** A parameter's declared type. Which of these a kernel, a fragment or a helper admits is theirs to say. */
export type ParamType =
  | { kind: 'invocation' }
  | { kind: 'array'; io: 'in' | 'out'; elem: 'f32' | 'u32' | 'i32' | 'u32x4' | 'f32x4' }
  | { kind: 'spec' }
  | { kind: 'value'; ty: 'f32' | 'u32' | 'i32' | 'u32x4' | 'f32x4' };

const VALUE = /^(f32|u32|i32|u32x4|f32x4)$/;

/** The parameter's type as written (whitespace dropped, for messages) and what it means, if anything. */
export function paramType(p: ParameterDeclaration | undefined): { text: string; type?: ParamType } {
  const text = p?.getTypeNode()?.getText().replace(/\s+/g, '') ?? '';
  const arr = /^(In|Out)<(\w+)>$/.exec(text);
  if (arr && VALUE.test(arr[2]!)) return { text, type: { kind: 'array', io: arr[1] === 'In' ? 'in' : 'out', elem: arr[2] as 'f32' } };
  if (text === 'Invocation') return { text, type: { kind: 'invocation' } };
  if (text === 'Spec<u32>') return { text, type: { kind: 'spec' } };
  if (VALUE.test(text)) return { text, type: { kind: 'value', ty: text as 'f32' } };
  return { text };
}

/** 32-bit scalars (f32, u32, i32): what uniforms and fragment arrays hold. */
export const isScalar32 = (t: string): t is 'f32' | 'u32' | 'i32' => t === 'f32' || t === 'u32' || t === 'i32';

/** Give abstract literals inside `e` the concrete type `ty` (WGSL would, but we check it first). */
export function coerce(e: Expr, ty: Scalar, fail: (m: string) => never): Expr {
  if (!isAbstract(e.ty as Ty)) {
    if (e.ty !== ty) fail(`expected ${ty} but found ${e.ty}`);
    return e;
  }
  if (e.ty === 'float' && ty !== 'f32' && ty !== 'f16') fail(`a fractional number cannot be ${ty}`);
  if (ty === 'bool') fail('expected a boolean');
  switch (e.k) {
    case 'lit': return { ...e, ty };
    case 'un': return { ...e, a: coerce(e.a, ty, fail), ty };
    case 'bin': return { ...e, a: coerce(e.a, ty, fail), b: coerce(e.b, ty, fail), ty };
    case 'select': return { ...e, a: coerce(e.a, ty, fail), b: coerce(e.b, ty, fail), ty };
    default: return fail(`cannot give ${e.k} the type ${ty}`);
  }
}

/** Two operands brought to one type: equal concrete types, or a literal taking the other's type. */
export function unify(a: Expr, b: Expr, text: string, fail: (m: string) => never): [Expr, Expr, Ty] {
  const ta = a.ty as Ty, tb = b.ty as Ty;
  if (!isAbstract(ta) && !isAbstract(tb)) {
    if (ta !== tb) fail(`mixing ${ta} and ${tb} in '${text}'; convert one with f32()/u32()/i32()`);
    return [a, b, ta];
  }
  if (!isAbstract(ta)) return [a, coerce(b, ta, fail), ta];
  if (!isAbstract(tb)) return [coerce(a, tb, fail), b, tb];
  return [a, b, ta === 'float' || tb === 'float' ? 'float' : 'int'];
}
