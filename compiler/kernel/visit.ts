// Walks over kernel IR: whether some expression of a kernel matches, and an expression rebuilt
// bottom-up. Passes over kernels (composition, the printer's checks) use these instead of their own
// switch over every kind.
import type { Expr, Stmt } from './ir.js';

/** The direct sub-expressions of `e`. */
export function children(e: Expr): readonly Expr[] {
  switch (e.k) {
    case 'lit': case 'var': case 'uniform': case 'spec': case 'builtin': case 'len': case 'arg': case 'ref': return [];
    case 'index': return [e.index];
    case 'bin': return [e.a, e.b];
    case 'un': case 'member': return [e.a];
    case 'call': case 'hole': return e.args;
    case 'select': return [e.cond, e.a, e.b];
  }
}

/** `e` with `f` applied to each sub-expression first, then to the rebuilt node. */
export function mapExpr(e: Expr, f: (e: Expr) => Expr): Expr {
  const m = (x: Expr) => mapExpr(x, f);
  switch (e.k) {
    case 'lit': case 'var': case 'uniform': case 'spec': case 'builtin': case 'len': case 'arg': case 'ref': return f(e);
    case 'index': return f({ ...e, index: m(e.index) });
    case 'bin': return f({ ...e, a: m(e.a), b: m(e.b) });
    case 'un': return f({ ...e, a: m(e.a) });
    case 'member': return f({ ...e, a: m(e.a) });
    case 'call': return f({ ...e, args: e.args.map(m) });
    case 'hole': return f({ ...e, args: e.args.map(m) });
    case 'select': return f({ ...e, cond: m(e.cond), a: m(e.a), b: m(e.b) });
  }
}

export const someExpr = (e: Expr, p: (e: Expr) => boolean): boolean => p(e) || children(e).some((c) => someExpr(c, p));

/** The expressions a statement holds directly (not those of nested statements). */
function stmtExprs(s: Stmt): Expr[] {
  switch (s.k) {
    case 'let': return s.init ? [s.init] : [];
    case 'assign': return [s.target, s.value];
    case 'if': case 'while': return [s.cond];
    case 'for': return s.cond ? [s.cond] : [];
    case 'call': return [s.call];
    case 'break': case 'continue': case 'return': case 'barrier': return [];
  }
}
const subStmts = (s: Stmt): Stmt[] =>
  s.k === 'if' ? [...s.then, ...s.else] : s.k === 'while' ? s.body : s.k === 'for' ? [...(s.init ? [s.init] : []), ...(s.update ? [s.update] : []), ...s.body] : [];

/** Whether some expression anywhere in `stmts` matches. */
export const someInStmts = (stmts: readonly Stmt[], p: (e: Expr) => boolean): boolean =>
  stmts.some((s) => stmtExprs(s).some((e) => someExpr(e, p)) || someInStmts(subStmts(s), p));
