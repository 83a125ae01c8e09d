// The parameters of a kernel and of an epilogue fragment: what each admits, the kernel IR parameter it
// becomes, and the name it binds in the function's outermost scope.
import type { FunctionDeclaration } from 'ts-morph';
import type { Param, Scalar } from '../kernel/ir.js';
import type { Context } from './context.js';
import { isScalar32, paramType, type Binding } from './types.js';

/** A kernel's parameters: `id: Invocation` first, then In<T>/Out<T> arrays, Spec<u32> constants and
 *  f32/u32/i32 uniforms. Declares each in the current scope. */
export function kernelParams(t: Context, fn: FunctionDeclaration): Param[] {
  const params: Param[] = [];
  fn.getParameters().forEach((p, i) => {
    const name = p.getName();
    const { text, type } = paramType(p);
    if (i === 0) {
      if (type?.kind !== 'invocation') t.fail(p, 'the first parameter of a kernel is `id: Invocation`');
      t.declare(p, name, { kind: 'invocation' });
      return;
    }
    if (type?.kind === 'array' && (type.io === 'in' || isScalar32(type.elem))) {
      params.push({ kind: type.io, name, elem: type.elem });
      t.declare(p, name, { kind: 'array', elem: type.elem, writable: type.io === 'out', name });
    } else if (type?.kind === 'spec') {
      params.push({ kind: 'spec', name, ty: 'u32' });
      t.declare(p, name, { kind: 'spec', ty: 'u32' });
    } else if (type?.kind === 'value' && isScalar32(type.ty)) {
      params.push({ kind: 'uniform', name, ty: type.ty });
      t.declare(p, name, { kind: 'uniform', ty: type.ty });
    } else t.fail(p, `parameter '${name}' has type '${text || 'none'}'; use In<T>, Out<T>, Spec<u32>, f32, u32 or i32`);
  });
  return params;
}

/** An `@epilogue`'s parameters: `(v: f32, i: u32, ...)`, then In<T>/Out<T> of 32-bit scalars and
 *  f32/u32/i32 uniforms. `v` and `i` stand for the hole's arguments. Returns the outermost scope too. */
export function fragmentParams(t: Context, fn: FunctionDeclaration): { params: Param[]; scope: Map<string, Binding> } {
  const ps = fn.getParameters();
  const first = paramType(ps[0]).text, second = paramType(ps[1]).text;
  if (first !== 'f32' || second !== 'u32') t.fail(fn, 'an @epilogue takes (v: f32, i: u32, ...) first');
  const scope = new Map<string, Binding>();
  scope.set(ps[0]!.getName(), { kind: 'alias', expr: { k: 'arg', n: 0, ty: 'f32' } });
  scope.set(ps[1]!.getName(), { kind: 'alias', expr: { k: 'arg', n: 1, ty: 'u32' } });
  const params: Param[] = [];
  for (const p of ps.slice(2)) {
    const name = p.getName();
    const { text, type } = paramType(p);
    if (type?.kind === 'array' && isScalar32(type.elem)) {
      params.push({ kind: type.io, name, elem: type.elem });
      scope.set(name, { kind: 'array', elem: type.elem as Scalar, writable: type.io === 'out', name });
    } else if (type?.kind === 'value' && isScalar32(type.ty)) {
      params.push({ kind: 'uniform', name, ty: type.ty });
      scope.set(name, { kind: 'uniform', ty: type.ty });
    } else t.fail(p, `an @epilogue parameter is In<T>, Out<T>, f32, u32 or i32, not '${text}'`);
  }
  return { params, scope };
}
