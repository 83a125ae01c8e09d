// `@inline` helpers: functions a kernel calls that are expanded in place. An expression helper is one
// `return <expression>;`; a statement helper returns void. A helper sees only its parameters (the
// caller's arrays, invocation and converted values), never the caller's locals, and its own locals
// get a suffix so they never meet the caller's.
import { Node, type Block, type Expression, type FunctionDeclaration } from 'ts-morph';
import type { Expr, Stmt } from '../kernel/ir.js';
import type { Context } from './context.js';
import { dslImports, hasTag, relPath, resolveFunction } from './source.js';
import { coerce, paramType, SCALARS, type Binding } from './types.js';

const MAX_INLINE_DEPTH = 8;

/** The helper `name` resolves to, if it is an `@inline` function of the right kind. */
function helper(t: Context, call: Node, name: string, args: Expression[], statement: boolean): FunctionDeclaration {
  const fn = resolveFunction(t.fn.getSourceFile(), name);
  const isVoid = fn?.getReturnTypeNode()?.getText() === 'void';
  if (!fn || !hasTag(fn, 'inline') || isVoid !== statement)
    t.fail(call, statement ? `call to '${name}' is not supported as a statement in kernels (only @inline helpers returning void)`
      : `call to '${name}' is not supported in kernels (only the kernel DSL, Math functions and @inline helpers)`);
  if (fn.getParameters().length !== args.length) t.fail(call, `'${name}' takes ${fn.getParameters().length} argument(s)`);
  return fn;
}

/** A helper's parameters, bound to the caller's arrays, invocation and (converted) values. */
function bindArgs(t: Context, fn: FunctionDeclaration, name: string, args: Expression[]): Map<string, Binding> {
  const scope = new Map<string, Binding>();
  fn.getParameters().forEach((p, i) => {
    const { text, type } = paramType(p);
    const arg = args[i]!;
    const b = Node.isIdentifier(arg) ? t.lookup(arg.getText()) : undefined;
    if (type?.kind === 'invocation') {
      if (b?.kind !== 'invocation') t.fail(arg, `argument ${i + 1} of '${name}' must be the invocation`);
      scope.set(p.getName(), b);
    } else if (type?.kind === 'array') {
      if (b?.kind !== 'array' || b.elem !== type.elem || (type.io === 'out' && !b.writable))
        t.fail(arg, `argument ${i + 1} of '${name}' must be ${type.io === 'out' ? 'a writable' : 'an'} ${type.elem} array`);
      scope.set(p.getName(), b);
    } else if (type?.kind === 'value' || type?.kind === 'spec') {
      const ty = type.kind === 'spec' ? 'u32' : type.ty;
      scope.set(p.getName(), { kind: 'alias', expr: coerce(t.expr(arg), ty, (m) => t.fail(arg, `argument ${i + 1} of '${name}': ${m}`)) });
    } else t.fail(p, `@inline parameter '${p.getName()}' has type '${text}'`);
  });
  return scope;
}

/** Translate inside a helper: its scope, file and DSL imports stand in for the caller's meanwhile. */
function within<T>(t: Context, fn: FunctionDeclaration, scope: Map<string, Binding>, suffix: string, f: () => T): T {
  if (++t.inlineDepth > MAX_INLINE_DEPTH) t.fail(fn, `@inline helpers nest deeper than ${MAX_INLINE_DEPTH} (recursion?)`);
  const saved = [t.scopes, t.fn, t.dslNames, t.file, t.localSuffix] as const;
  t.scopes = [scope];
  t.fn = fn;
  t.dslNames = dslImports(fn.getSourceFile());
  t.file = relPath(t.root, fn.getSourceFile());
  t.localSuffix = suffix;
  try {
    return f();
  } finally {
    [t.scopes, t.fn, t.dslNames, t.file, t.localSuffix] = saved;
    t.inlineDepth--;
  }
}

/** A call to a statement helper (`: void`), expanded in place. */
export function inlineStatements(t: Context, call: Node, name: string, args: Expression[]): Stmt[] {
  const fn = helper(t, call, name, args, true);
  const scope = bindArgs(t, fn, name, args);
  return within(t, fn, scope, `_${name}${++t.inlineCount}`, () => {
    const body = fn.getBody();
    if (!body || !Node.isBlock(body)) t.fail(fn, `@inline helper '${name}' needs a body`);
    return t.block(body.getStatements()).filter((s) => s.k !== 'return' || t.fail(fn, `@inline helper '${name}' must not return early`));
  });
}

/** A call to an expression helper (in the same file or imported from another ops file): its
 *  parameters stand for the caller's arguments. */
export function inlineExpr(t: Context, call: Node, name: string, args: Expression[]): Expr {
  const fn = helper(t, call, name, args, false);
  const body = fn.getBody();
  const stmts = body && Node.isBlock(body) ? (body as Block).getStatements() : [];
  const ret = stmts[0];
  if (stmts.length !== 1 || !ret || !Node.isReturnStatement(ret) || !ret.getExpression())
    t.fail(fn, `@inline helper '${name}' must be a single \`return <expression>;\``);
  const scope = bindArgs(t, fn, name, args);
  return within(t, fn, scope, t.localSuffix, () => {
    const want = fn.getReturnTypeNode()?.getText();
    const ty = want ? SCALARS[want] : undefined;
    if (!ty) t.fail(fn, `@inline helper '${name}' needs a return type (f32, u32, i32 or boolean)`);
    return coerce(t.expr(ret.getExpression()!), ty, t.at(ret));
  });
}
