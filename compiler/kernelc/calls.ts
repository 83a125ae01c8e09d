// Calls in expressions: the kernel DSL's conversions and operations (a table by DSL name), the
// intrinsics (compiler/kernel/intrinsics.ts: checked against each one's signature), Math functions,
// and `@inline` helpers. Any other call is rejected.
import { Node, type CallExpression, type Expression } from 'ts-morph';
import { intrinsicOf } from '../kernel/intrinsics.js';
import type { Expr, Scalar } from '../kernel/ir.js';
import type { Context } from './context.js';
import { coerce, isAbstract, isInt, unify } from './types.js';

type DslCall = (t: Context, e: CallExpression, args: Expression[]) => Expr;

const conversion = (to: 'f32' | 'u32' | 'i32' | 'f16'): DslCall => (t, e, args) => {
  if (args.length !== 1) t.fail(e, `${to}() takes one argument`);
  const a = t.expr(args[0]!);
  if (isAbstract(a.ty as never)) return coerce(a, to, t.at(e));
  if (a.ty === to) return a;
  return { k: 'call', fn: to, args: [a], ty: to };
};

/** The DSL's functions that are not intrinsics: each translates to its own IR. */
const DSL_CALLS: Record<string, DslCall> = {
  f32: conversion('f32'),
  u32: conversion('u32'),
  i32: conversion('i32'),
  f16: conversion('f16'),
  idiv: (t, e, args) => {
    if (args.length !== 2) t.fail(e, 'idiv(a, b) takes two arguments');
    const [a, b, ty] = unify(t.expr(args[0]!), t.expr(args[1]!), e.getText(), t.at(e));
    if (!isInt(ty)) t.fail(e, 'idiv() is for integers');
    const ty2: Scalar = isAbstract(ty) ? 'i32' : (ty as Scalar);
    return { k: 'bin', op: '/', a: coerce(a, ty2, t.at(e)), b: coerce(b, ty2, t.at(e)), ty: ty2 };
  },
  mul4: (t, e, args) => {
    if (args.length !== 2) t.fail(e, 'mul4(a, b) takes two f32x4');
    const [x, y] = [t.expr(args[0]!), t.expr(args[1]!)];
    if (x.ty !== 'f32x4' || y.ty !== 'f32x4') t.fail(e, 'mul4(a, b) takes two f32x4');
    return { k: 'bin', op: '*', a: x, b: y, ty: 'f32x4' };
  },
  // a hole fusion fills: epilogue(value, index[, 'name'])
  epilogue: (t, e, args) => {
    const hole = args[2];
    if (args.length < 2 || args.length > 3 || (hole && !Node.isStringLiteral(hole))) t.fail(e, "epilogue(value, index[, 'name']) takes two arguments and an optional hole name");
    const name = hole && Node.isStringLiteral(hole) ? hole.getLiteralValue() : 'epilogue';
    return { k: 'hole', name, args: [coerce(t.expr(args[0]!), 'f32', t.at(e)), coerce(t.expr(args[1]!), 'u32', t.at(e))], ty: 'f32' };
  },
};

const FLOAT_FNS = new Set(['sqrt', 'exp', 'log', 'cos', 'sin', 'tanh', 'floor', 'ceil', 'pow', 'exp2', 'log2', 'round']);
const GENERIC_FNS = new Set(['abs', 'max', 'min']);

/** Math.f(...): float functions take f32; abs/max/min keep their operands' type; fround is a no-op. */
function mathCall(t: Context, e: CallExpression, f: string, args: Expression[]): Expr {
  const xs = args.map((a) => t.expr(a));
  if (FLOAT_FNS.has(f)) {
    const want = f === 'pow' ? 2 : 1;
    if (xs.length !== want) t.fail(e, `Math.${f} takes ${want} argument(s)`);
    return { k: 'call', fn: f, args: xs.map((x) => coerce(x, 'f32', (msg) => t.fail(e, `Math.${f}: ${msg}`))), ty: 'f32' };
  }
  if (GENERIC_FNS.has(f)) {
    if (xs.length !== (f === 'abs' ? 1 : 2)) t.fail(e, `Math.${f} takes ${f === 'abs' ? 1 : 2} argument(s) in kernels`);
    if (f === 'abs') return { k: 'call', fn: 'abs', args: xs, ty: xs[0]!.ty as Scalar };
    const [a, b, ty] = unify(xs[0]!, xs[1]!, e.getText(), t.at(e));
    if (isAbstract(ty)) t.fail(e, `Math.${f} of two bare numbers`);
    return { k: 'call', fn: f, args: [a, b], ty: ty as Scalar };
  }
  if (f === 'fround' && xs.length === 1) return coerce(xs[0]!, 'f32', t.at(e));
  return t.fail(e, `Math.${f} is not supported in kernels`);
}

/** A workgroup array passed to an intrinsic by reference (the subgroup-matrix loads and stores). */
function ref(t: Context, a: Expression): Expr {
  const b = Node.isIdentifier(a) ? t.lookup(a.getText()) : undefined;
  if (!b || b.kind !== 'array' || !t.shared.some((s) => s.name === b.name)) t.fail(a, `'${a.getText()}' must be a workgroup array (sharedF16/sharedF32)`);
  return { k: 'ref', array: b.name, ty: 'ref' };
}

export function call(t: Context, e: CallExpression): Expr {
  const callee = e.getExpression();
  const args = e.getArguments() as Expression[];
  const text = callee.getText();
  const dsl = t.dslNames.get(text);
  if (dsl && Object.hasOwn(DSL_CALLS, dsl)) return DSL_CALLS[dsl]!(t, e, args);
  const sig = dsl ? intrinsicOf(dsl) : undefined;
  if (sig) {
    if (args.length !== sig.args.length) t.fail(e, `${dsl}() takes ${sig.args.length} argument(s)`);
    return { k: 'call', fn: dsl!, args: args.map((a, i) => (sig.args[i] === 'ref' ? ref(t, a) : coerce(t.expr(a), sig.args[i]!, (msg) => t.fail(e, `${dsl}: ${msg}`)))), ty: sig.ty };
  }
  if (!dsl && Node.isIdentifier(callee)) return t.inlineExpr(e, text, args);
  const m = /^Math\.(\w+)$/.exec(text);
  if (m) return mathCall(t, e, m[1]!, args);
  return t.fail(e, `call to '${text}' is not supported in kernels (only the kernel DSL and Math functions)`);
}
