// Expressions, one rule per kind of TypeScript expression (a table, so a kind not in it is rejected
// with its name): literals, names, unary and binary operators, ?:, indexing, properties and calls
// (calls.ts). Types are checked as WGSL would check them, with a sentence where they do not agree.
import { type Expression, type KindToNodeMappings, SyntaxKind } from 'ts-morph';
import type { Expr, Scalar } from '../kernel/ir.js';
import { call } from './calls.js';
import type { Context } from './context.js';
import { coerce, isAbstract, isInt, unify, type Ty } from './types.js';

type Rule<K extends SyntaxKind> = (t: Context, e: KindToNodeMappings[K]) => Expr;
const rules: { [K in SyntaxKind]?: Rule<K> } = {};
const rule = <K extends SyntaxKind>(kind: K, f: Rule<K>) => { (rules as Record<K, Rule<K>>)[kind] = f; };

/** An expression, typed. */
export function expr(t: Context, e: Expression): Expr {
  const f = rules[e.getKind()] as Rule<SyntaxKind> | undefined;
  return f ? f(t, e as never) : t.fail(e, `${e.getKindName()} is not supported in kernels: ${e.getText()}`);
}

/** A condition: an expression of type bool. */
export function boolExpr(t: Context, e: Expression): Expr {
  const x = t.expr(e);
  if (x.ty !== 'bool') t.fail(e, `a condition must be a comparison, not ${x.ty}`);
  return x;
}

rule(SyntaxKind.ParenthesizedExpression, (t, e) => t.expr(e.getExpression()));

// a number without a fraction or exponent stays open: u32, i32 or f32, as its use decides
rule(SyntaxKind.NumericLiteral, (_t, e) => {
  const text = e.getText().replace(/_/g, '');
  return { k: 'lit', text, ty: /^0[xX]/.test(text) || /^\d+$/.test(text) ? 'int' : 'float' };
});
rule(SyntaxKind.TrueKeyword, (_t, e) => ({ k: 'lit', text: e.getText(), ty: 'bool' }));
rule(SyntaxKind.FalseKeyword, (_t, e) => ({ k: 'lit', text: e.getText(), ty: 'bool' }));

rule(SyntaxKind.Identifier, (t, e) => {
  const name = e.getText();
  const b = t.lookup(name);
  if (!b) {
    if (t.dslNames.has(name)) t.fail(e, `'${name}' must be called`);
    return t.fail(e, `'${name}' comes from outside the kernel; pass it as a parameter (scalars become uniforms)`);
  }
  switch (b.kind) {
    case 'local': return { k: 'var', name: b.ir, ty: b.ty };
    case 'uniform': return { k: 'uniform', name, ty: b.ty };
    case 'spec': return { k: 'spec', name, ty: b.ty };
    case 'alias': return b.expr;
    case 'array': case 'invocation': return t.fail(e, `'${name}' is an array; index it`);
  }
});

rule(SyntaxKind.PrefixUnaryExpression, (t, e) => {
  const a = t.expr(e.getOperand());
  switch (e.getOperatorToken()) {
    case SyntaxKind.MinusToken:
      if (a.ty === 'u32') t.fail(e, 'negating a u32');
      return { k: 'un', op: '-', a, ty: a.ty as Scalar };
    case SyntaxKind.PlusToken: return a;
    case SyntaxKind.ExclamationToken:
      if (a.ty !== 'bool') t.fail(e, '! needs a boolean');
      return { k: 'un', op: '!', a, ty: 'bool' };
    case SyntaxKind.TildeToken:
      if (isInt(a.ty as Ty)) return { k: 'un', op: '~', a, ty: a.ty as Scalar };
  }
  return t.fail(e, `unsupported unary operator in '${e.getText()}'`);
});

const COMPARISONS = ['<', '<=', '>', '>=', '==', '!='];
const ARITHMETIC = ['+', '-', '*', '/', '%', '&', '|', '^'];
rule(SyntaxKind.BinaryExpression, (t, e) => {
  let op = e.getOperatorToken().getText();
  const a = t.expr(e.getLeft()), b = t.expr(e.getRight());
  const fail = t.at(e);
  if (op === '&&' || op === '||') {
    if (a.ty !== 'bool' || b.ty !== 'bool') fail(`${op} needs booleans`);
    return { k: 'bin', op, a, b, ty: 'bool' };
  }
  if (op === '<<' || op === '>>' || op === '>>>') {
    if (!isInt(a.ty as Ty)) fail('shifts need integers');
    if (op === '>>>' && a.ty === 'i32') fail('>>> on an i32; convert to u32 first');
    const a2 = isAbstract(a.ty as Ty) ? coerce(a, 'u32', fail) : a;
    return { k: 'bin', op: op === '>>>' ? '>>' : op, a: a2, b: coerce(b, 'u32', fail), ty: a2.ty as Scalar };
  }
  if (op === '===') op = '==';
  if (op === '!==') op = '!=';
  const [x, y, ty] = unify(a, b, e.getText(), fail);
  if (COMPARISONS.includes(op)) {
    // comparisons of two bare numbers: pick a type so WGSL agrees
    const concrete = ty === 'int' ? 'i32' : 'f32', bad = () => fail('bad literal');
    const [x2, y2] = isAbstract(ty) ? [coerce(x, concrete, bad), coerce(y, concrete, bad)] : [x, y];
    return { k: 'bin', op, a: x2, b: y2, ty: 'bool' };
  }
  if (ARITHMETIC.includes(op)) {
    if (ty === 'bool') fail(`arithmetic on booleans in '${e.getText()}'`);
    if (op === '/' && isInt(ty)) fail(`integer division in '${e.getText()}': JS divides in floats; write idiv(a, b)`);
    if (['&', '|', '^'].includes(op) && !isInt(ty)) fail(`bitwise ${op} on floats`);
    return { k: 'bin', op, a: x, b: y, ty: ty as Scalar };
  }
  return fail(`operator ${op} is not supported in kernels`);
});

rule(SyntaxKind.ConditionalExpression, (t, e) => {
  const cond = boolExpr(t, e.getCondition());
  const [a, b, ty] = unify(t.expr(e.getWhenTrue()), t.expr(e.getWhenFalse()), e.getText(), t.at(e));
  return { k: 'select', cond, a, b, ty: ty as Scalar };
});

rule(SyntaxKind.ElementAccessExpression, (t, e) => {
  const base = e.getExpression();
  const b = base.getKind() === SyntaxKind.Identifier ? t.lookup(base.getText()) : undefined;
  if (!b || b.kind !== 'array') return t.fail(e, `'${base.getText()}' is not an array parameter or workgroup array`);
  const arg = e.getArgumentExpression();
  if (!arg) return t.fail(e, 'missing index');
  let index = t.expr(arg);
  if (!isInt(index.ty as Ty)) t.fail(e, `index '${arg.getText()}' is ${index.ty}; indices are u32 or i32`);
  if (isAbstract(index.ty as Ty)) index = coerce(index, 'u32', t.at(e));
  return { k: 'index', array: b.name, index, ty: b.elem };
});

rule(SyntaxKind.PropertyAccessExpression, (t, e) => {
  const base = e.getExpression().getText();
  const prop = e.getName();
  const b = t.lookup(base);
  if (b?.kind === 'invocation') {
    if (prop === 'local' || prop === 'group' || prop === 'global' || prop === 'size' || prop === 'subgroupSize' || prop === 'subgroupId') return { k: 'builtin', name: prop, ty: 'u32' };
    t.fail(e, `${base}.${prop}: an Invocation has local, group, global, size, subgroupSize and subgroupId`);
  }
  if (b?.kind === 'array' && prop === 'length') return { k: 'len', array: b.name, ty: 'u32' };
  if (prop === 'x' || prop === 'y' || prop === 'z' || prop === 'w') {
    const v = t.expr(e.getExpression());
    if (v.ty === 'u32x4' || v.ty === 'f32x4') return { k: 'member', a: v, field: prop, ty: v.ty === 'u32x4' ? 'u32' : 'f32' };
  }
  return t.fail(e, `'${e.getText()}' is not supported in kernels`);
});

rule(SyntaxKind.CallExpression, call);
