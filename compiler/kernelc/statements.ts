// Statements: declarations (locals and workgroup memory), assignments, if/for/while, break, continue
// and return, and calls to statement helpers (inlined). Anything else is rejected with its name.
import { Node, SyntaxKind, type Expression, type Statement, type VariableDeclaration } from 'ts-morph';
import type { Expr, LValue, Scalar, Stmt } from '../kernel/ir.js';
import type { Context } from './context.js';
import { boolExpr } from './expressions.js';
import { coerce, isAbstract, SCALARS, type Ty } from './types.js';

/** The statements of a block, in a scope of their own. */
export function block(t: Context, stmts: Statement[]): Stmt[] {
  return t.scoped(() => stmts.flatMap((s) => stmt(t, s)));
}
/** The body of an if, a loop: a block, or one statement standing for one. */
const body = (t: Context, s: Statement): Stmt[] => (Node.isBlock(s) ? t.block(s.getStatements()) : t.block([s]));

function stmt(t: Context, s: Statement): Stmt[] {
  if (Node.isVariableStatement(s)) {
    const mutable = s.getDeclarationKind() !== 'const';
    return s.getDeclarations().flatMap((d) => varDecl(t, d, mutable));
  }
  if (Node.isExpressionStatement(s)) {
    const e = s.getExpression();
    if (Node.isCallExpression(e) && Node.isIdentifier(e.getExpression()) && !t.dslNames.has(e.getExpression().getText()))
      return t.inlineStatements(e, e.getExpression().getText(), e.getArguments() as Expression[]);
    return [exprStmt(t, e)];
  }
  if (Node.isIfStatement(s)) {
    const cond = boolExpr(t, s.getExpression());
    const els = s.getElseStatement();
    return [{ k: 'if', cond, then: body(t, s.getThenStatement()), else: els ? body(t, els) : [] }];
  }
  if (Node.isForStatement(s)) {
    return t.scoped((): Stmt[] => {
      const ini = s.getInitializer();
      let init: Stmt | null = null;
      if (ini) {
        if (Node.isVariableDeclarationList(ini)) {
          const ds = ini.getDeclarations();
          if (ds.length !== 1) t.fail(s, 'a for loop declares one variable');
          init = varDecl(t, ds[0]!, true)[0]!;
        } else init = exprStmt(t, ini);
      }
      const c = s.getCondition();
      const inc = s.getIncrementor();
      return [{ k: 'for', init, cond: c ? boolExpr(t, c) : null, update: inc ? exprStmt(t, inc) : null, body: body(t, s.getStatement()) }];
    });
  }
  if (Node.isWhileStatement(s)) return [{ k: 'while', cond: boolExpr(t, s.getExpression()), body: body(t, s.getStatement()) }];
  if (Node.isBreakStatement(s)) {
    if (s.getLabel()) t.fail(s, 'labelled break is not supported');
    return [{ k: 'break' }];
  }
  if (Node.isContinueStatement(s)) {
    if (s.getLabel()) t.fail(s, 'labelled continue is not supported');
    return [{ k: 'continue' }];
  }
  if (Node.isReturnStatement(s)) {
    if (s.getExpression()) t.fail(s, 'kernels return nothing; write results to an Out<T> array');
    return [{ k: 'return' }];
  }
  if (Node.isBlock(s)) t.fail(s, 'bare blocks are not supported');
  return t.fail(s, `${s.getKindName()} is not supported in kernels`);
}

/** `let`/`const` of a local (typed by its annotation or its value), or workgroup memory
 *  (`const s = sharedF32(N)` at the top of a kernel, which declares no statement). */
function varDecl(t: Context, d: VariableDeclaration, mutable: boolean): Stmt[] {
  const nameNode = d.getNameNode();
  if (!Node.isIdentifier(nameNode)) t.fail(d, 'destructuring is not supported in kernels');
  const name = nameNode.getText();
  const initNode = d.getInitializer();
  if (initNode && Node.isCallExpression(initNode)) {
    const callee = t.dslNames.get(initNode.getExpression().getText());
    if (callee === 'localF32' || callee === 'localU32') {
      if (mutable || t.scopes.length !== 2 || t.inlineDepth > 0) t.fail(d, 'declare local arrays with const at the top of the kernel');
      const arg = initNode.getArguments()[0];
      const size = arg && Node.isNumericLiteral(arg) ? Number(arg.getLiteralValue()) : NaN;
      if (!Number.isInteger(size) || size < 1 || size > 64) t.fail(d, `${callee}() takes a literal size of 1..64`);
      const elem = callee === 'localF32' ? 'f32' : 'u32';
      t.locals.push({ name, elem, size });
      t.declare(d, name, { kind: 'array', elem, writable: true, name });
      return [];
    }
    if (callee === 'sharedF32' || callee === 'sharedU32' || callee === 'sharedF16') {
      if (mutable || t.scopes.length !== 2) t.fail(d, 'declare workgroup memory with const at the top of the kernel');
      const arg = initNode.getArguments()[0];
      const size = arg && Node.isNumericLiteral(arg) ? Number(arg.getLiteralValue()) : NaN;
      if (!Number.isInteger(size) || size < 1) t.fail(d, `${callee}() takes a literal size`);
      const elem = callee === 'sharedF32' ? 'f32' : callee === 'sharedF16' ? 'f16' : 'u32';
      t.shared.push({ name, elem, size });
      t.declare(d, name, { kind: 'array', elem, writable: true, name });
      return [];
    }
  }
  const annotated = d.getTypeNode()?.getText();
  let ty: Scalar | undefined;
  if (annotated !== undefined) {
    ty = SCALARS[annotated];
    if (!ty) t.fail(d, `'${name}' has type '${annotated}'; locals are f32, u32, i32, f16, boolean or a Matrix type`);
  }
  let init: Expr | null = null;
  if (initNode) {
    const e = t.expr(initNode as Expression);
    if (!ty) {
      if (isAbstract(e.ty as Ty)) t.fail(d, `give '${name}' a type, e.g. \`let ${name}: f32 = ...\` (a bare number could be f32, u32 or i32)`);
      ty = e.ty as Scalar;
    }
    init = coerce(e, ty, (m) => t.fail(d, `'${name}': ${m}`));
  } else if (!ty) t.fail(d, `'${name}' needs a type or an initial value`);
  else if (!mutable) t.fail(d, `const '${name}' needs a value`);
  const ir = name + t.localSuffix;
  t.declare(d, name, { kind: 'local', ty: ty!, mutable, ir });
  return [{ k: 'let', name: ir, ty: ty!, init, mutable }];
}

function lvalue(t: Context, e: Expression): LValue {
  if (Node.isIdentifier(e)) {
    const b = t.lookup(e.getText());
    if (!b || b.kind !== 'local') t.fail(e, `cannot assign to '${e.getText()}'`);
    if (!b.mutable) t.fail(e, `'${e.getText()}' is const`);
    return { k: 'var', name: b.ir, ty: b.ty };
  }
  if (Node.isElementAccessExpression(e)) {
    const x = t.expr(e);
    const b = t.lookup(e.getExpression().getText());
    if (!b || b.kind !== 'array' || !b.writable) t.fail(e, `'${e.getExpression().getText()}' is read-only (In<T>); write to an Out<T>`);
    return x as LValue;
  }
  return t.fail(e, 'only variables and array elements can be assigned');
}

const ASSIGN_OPS = ['=', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '<<=', '>>=', '>>>='];

/** An expression used as a statement: an assignment, `++`/`--`, or a barrier. */
function exprStmt(t: Context, e: Expression): Stmt {
  if (Node.isBinaryExpression(e)) {
    const op = e.getOperatorToken().getText();
    if (ASSIGN_OPS.includes(op)) {
      const target = lvalue(t, e.getLeft());
      const wop = (op === '>>>=' ? '>>=' : op) as Extract<Stmt, { k: 'assign' }>['op'];
      if (wop === '/=' && target.ty !== 'f32') t.fail(e, 'integer division: write `x = idiv(x, y)`');
      const rhs = t.expr(e.getRight());
      const shift = wop === '<<=' || wop === '>>=';
      const value = coerce(rhs, shift ? 'u32' : target.ty, t.at(e));
      return { k: 'assign', target, op: wop, value };
    }
  }
  if ((Node.isPostfixUnaryExpression(e) || Node.isPrefixUnaryExpression(e)) &&
      [SyntaxKind.PlusPlusToken, SyntaxKind.MinusMinusToken].includes(e.getOperatorToken())) {
    const target = lvalue(t, e.getOperand());
    const op = e.getOperatorToken() === SyntaxKind.PlusPlusToken ? '+=' : '-=';
    return { k: 'assign', target, op, value: { k: 'lit', text: '1', ty: target.ty } };
  }
  if (Node.isCallExpression(e)) {
    const callee = t.dslNames.get(e.getExpression().getText());
    if (callee === 'workgroupBarrier') return { k: 'barrier', scope: 'workgroup' };
    if (callee === 'storageBarrier') return { k: 'barrier', scope: 'storage' };
    const c = t.expr(e);
    if (c.k === 'call' && c.ty === 'void') return { k: 'call', call: c };
  }
  return t.fail(e, `this expression does nothing in a kernel: ${e.getText()}`);
}
