// TypeScript kernel functions -> kernel IR, through the TypeScript compiler API (ts-morph).
// Runs at build time only. It accepts a small subset (see compiler/kernel/dsl.ts) and rejects
// everything else with a sentence naming the file and line, so a kernel never silently means
// something different on the GPU than it does in JavaScript:
//  - every number is typed f32/u32/i32; mixing them needs an explicit conversion;
//  - `/` on integers is rejected (JS divides in floats): use idiv();
//  - identifiers from outside the function are rejected (they would freeze at build time):
//    pass them as scalar parameters, which become uniforms.
import path from 'node:path';
import { Node, type FunctionDeclaration, type SourceFile, SyntaxKind, type Statement, type Expression } from 'ts-morph';
import type { Expr, FragmentIR, KernelIR, LValue, Param, Scalar, Stmt } from '../kernel/ir.js';

export class KernelSyntaxError extends Error {
  override name = 'KernelSyntaxError';
}

type Ty = Scalar | 'int' | 'float';
type Binding =
  /** `ir` is its name in the kernel IR (locals of inlined helpers get a suffix so they never collide) */
  | { kind: 'local'; ty: Scalar; mutable: boolean; ir: string }
  | { kind: 'uniform'; ty: Scalar }
  | { kind: 'spec'; ty: Scalar }
  /** `name` is the array's name in WGSL (an inline helper's parameter names the caller's array) */
  | { kind: 'array'; elem: Scalar; writable: boolean; name: string }
  /** an inline helper's scalar parameter: the caller's argument expression */
  | { kind: 'alias'; expr: Expr }
  | { kind: 'invocation' };

const BIT_FNS: Record<string, { args: Scalar[]; ty: Scalar }> = {
  bitcastF32: { args: ['u32'], ty: 'f32' },
  unpackHalf: { args: ['u32', 'u32'], ty: 'f32' },
  signedByte: { args: ['u32', 'u32'], ty: 'i32' },
  lane4: { args: ['u32x4', 'u32'], ty: 'u32' },
  subgroupAdd: { args: ['f32'], ty: 'f32' },
  subgroupMax: { args: ['f32'], ty: 'f32' },
};
const MAX_INLINE_DEPTH = 8;

const FLOAT_FNS = new Set(['sqrt', 'exp', 'log', 'cos', 'sin', 'tanh', 'floor', 'ceil', 'pow', 'exp2', 'log2', 'round']);
const GENERIC_FNS = new Set(['abs', 'max', 'min']);
const SCALARS: Record<string, Scalar> = { f32: 'f32', u32: 'u32', i32: 'i32', boolean: 'bool', u32x4: 'u32x4', f32x4: 'f32x4' };
const isAbstract = (t: Ty): t is 'int' | 'float' => t === 'int' || t === 'float';
const isInt = (t: Ty) => t === 'u32' || t === 'i32' || t === 'int';

/** Give abstract literals inside `e` the concrete type `ty` (WGSL would, but we check it first). */
function coerce(e: Expr, ty: Scalar, fail: (m: string) => never): Expr {
  if (!isAbstract(e.ty as Ty)) {
    if (e.ty !== ty) fail(`expected ${ty} but found ${e.ty}`);
    return e;
  }
  if (e.ty === 'float' && ty !== 'f32') fail(`a fractional number cannot be ${ty}`);
  if (ty === 'bool') fail('expected a boolean');
  switch (e.k) {
    case 'lit': return { ...e, ty };
    case 'un': return { ...e, a: coerce(e.a, ty, fail), ty };
    case 'bin': return { ...e, a: coerce(e.a, ty, fail), b: coerce(e.b, ty, fail), ty };
    case 'select': return { ...e, a: coerce(e.a, ty, fail), b: coerce(e.b, ty, fail), ty };
    default: return fail(`cannot give ${e.k} the type ${ty}`);
  }
}

class FunctionTranslator {
  private scopes: Map<string, Binding>[] = [];
  private shared: KernelIR['shared'] = [];
  private invocation = '';

  constructor(
    private fn: FunctionDeclaration,
    private dslNames: Map<string, string>, // local name -> dsl export
    private file: string,
    private root: string,
  ) {}

  fail(node: Node, msg: string): never {
    throw new KernelSyntaxError(`${this.file}:${node.getStartLineNumber()}: ${msg} (in kernel ${this.fn.getName()})`);
  }

  private lookup(name: string): Binding | undefined {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const b = this.scopes[i]!.get(name);
      if (b) return b;
    }
    return undefined;
  }
  private declare(node: Node, name: string, b: Binding) {
    if (this.lookup(name)) this.fail(node, `'${name}' is already declared; kernels do not shadow names`);
    this.scopes[this.scopes.length - 1]!.set(name, b);
  }
  private scoped<T>(f: () => T): T {
    this.scopes.push(new Map());
    try { return f(); } finally { this.scopes.pop(); }
  }

  translate(): KernelIR {
    const fn = this.fn;
    const tags = fn.getJsDocs().flatMap((d) => d.getTags());
    const wgTag = tags.find((t) => t.getTagName() === 'workgroupSize');
    const workgroupSize = Number(String(wgTag?.getCommentText() ?? '').trim());
    if (!wgTag || !Number.isInteger(workgroupSize) || workgroupSize < 1 || workgroupSize > 256)
      this.fail(fn, 'a kernel needs `@workgroupSize N` (1..256) in its JSDoc');
    const params: Param[] = [];
    this.scopes.push(new Map());
    fn.getParameters().forEach((p, i) => {
      const name = p.getName();
      const tn = p.getTypeNode()?.getText().replace(/\s+/g, '') ?? '';
      if (i === 0) {
        if (tn !== 'Invocation') this.fail(p, 'the first parameter of a kernel is `id: Invocation`');
        this.invocation = name;
        this.declare(p, name, { kind: 'invocation' });
        return;
      }
      const arr = /^(In<(f32|u32|i32|u32x4|f32x4)>|Out<(f32|u32|i32)>)$/.exec(tn)?.[0].match(/^(In|Out)<(\w+)>$/);
      if (arr) {
        params.push({ kind: arr[1] === 'In' ? 'in' : 'out', name, elem: arr[2] as 'f32' });
        this.declare(p, name, { kind: 'array', elem: arr[2] as Scalar, writable: arr[1] === 'Out', name });
      } else if (tn === 'Spec<u32>') {
        params.push({ kind: 'spec', name, ty: 'u32' });
        this.declare(p, name, { kind: 'spec', ty: 'u32' });
      } else if (tn === 'f32' || tn === 'u32' || tn === 'i32') {
        params.push({ kind: 'uniform', name, ty: tn });
        this.declare(p, name, { kind: 'uniform', ty: tn });
      } else this.fail(p, `parameter '${name}' has type '${tn || 'none'}'; use In<T>, Out<T>, Spec<u32>, f32, u32 or i32`);
    });
    const body = fn.getBody();
    if (!body || !Node.isBlock(body)) this.fail(fn, 'a kernel needs a body');
    const stmts = this.block(body.getStatements());
    const line = fn.getStartLineNumber();
    return { name: fn.getName()!, source: `${this.file}:${line}`, workgroupSize, params, shared: this.shared, body: stmts };
  }

  /** An `@epilogue` function `(v: f32, i: u32, ...params): f32 { return expr; }` as a fragment. A
   *  store fragment (a tap) writes the value on first: `t[i] = v; return v;` with `t: Out<f32>`. */
  fragment(): FragmentIR {
    const fn = this.fn;
    const ps = fn.getParameters();
    const tn = (i: number) => ps[i]?.getTypeNode()?.getText().replace(/\s+/g, '') ?? '';
    if (tn(0) !== 'f32' || tn(1) !== 'u32') this.fail(fn, 'an @epilogue takes (v: f32, i: u32, ...) first');
    const scope = new Map<string, Binding>();
    scope.set(ps[0]!.getName(), { kind: 'alias', expr: { k: 'arg', n: 0, ty: 'f32' } });
    scope.set(ps[1]!.getName(), { kind: 'alias', expr: { k: 'arg', n: 1, ty: 'u32' } });
    const params: Param[] = [];
    ps.slice(2).forEach((p, j) => {
      const name = p.getName(), t = tn(j + 2);
      const arr = /^(In|Out)<(f32|u32|i32)>$/.exec(t);
      if (arr) {
        params.push({ kind: arr[1] === 'In' ? 'in' : 'out', name, elem: arr[2] as 'f32' });
        scope.set(name, { kind: 'array', elem: arr[2] as Scalar, writable: arr[1] === 'Out', name });
      } else if (t === 'f32' || t === 'u32' || t === 'i32') { params.push({ kind: 'uniform', name, ty: t }); scope.set(name, { kind: 'uniform', ty: t }); }
      else this.fail(p, `an @epilogue parameter is In<T>, Out<T>, f32, u32 or i32, not '${t}'`);
    });
    const body = fn.getBody() as import('ts-morph').Block | undefined;
    const stmts = body?.getStatements() ?? [];
    const ret = stmts[stmts.length - 1];
    if (!ret || !Node.isReturnStatement(ret) || !ret.getExpression()) this.fail(fn, 'an @epilogue ends with `return <expression>;`');
    this.scopes = [scope];
    const stores = stmts.slice(0, -1).map((s) => {
      const a = Node.isExpressionStatement(s) ? s.getExpression() : undefined;
      if (!a || !Node.isBinaryExpression(a) || a.getOperatorToken().getText() !== '=' || !Node.isElementAccessExpression(a.getLeft()))
        this.fail(s, 'before its return, an @epilogue may only store: `out[i] = value;`');
      const target = this.expr(a.getLeft());
      if (target.k !== 'index' || !params.some((p) => p.kind === 'out' && p.name === target.array)) this.fail(s, 'an @epilogue stores only into its Out<T> parameters');
      return { array: target.array, index: target.index, value: coerce(this.expr(a.getRight()), target.ty, (m) => this.fail(s, m)) };
    });
    const e = coerce(this.expr(ret.getExpression()!), 'f32', (m) => this.fail(ret, m));
    return { name: fn.getName()!, source: `${this.file}:${fn.getStartLineNumber()}`, params, ...(stores.length ? { stores } : {}), body: e };
  }

  private block(stmts: Statement[]): Stmt[] {
    return this.scoped(() => stmts.flatMap((s) => this.stmt(s)));
  }
  private body(s: Statement): Stmt[] {
    return Node.isBlock(s) ? this.block(s.getStatements()) : this.block([s]);
  }

  private stmt(s: Statement): Stmt[] {
    if (Node.isVariableStatement(s)) {
      const mutable = s.getDeclarationKind() !== 'const';
      return s.getDeclarations().flatMap((d) => this.varDecl(d, mutable));
    }
    if (Node.isExpressionStatement(s)) {
      const e = s.getExpression();
      if (Node.isCallExpression(e) && Node.isIdentifier(e.getExpression()) && !this.dslNames.has(e.getExpression().getText()))
        return this.inlineStatements(e, e.getExpression().getText(), e.getArguments() as Expression[]);
      return [this.exprStmt(e)];
    }
    if (Node.isIfStatement(s)) {
      const cond = this.boolExpr(s.getExpression());
      const els = s.getElseStatement();
      return [{ k: 'if', cond, then: this.body(s.getThenStatement()), else: els ? this.body(els) : [] }];
    }
    if (Node.isForStatement(s)) {
      return this.scoped((): Stmt[] => {
        const ini = s.getInitializer();
        let init: Stmt | null = null;
        if (ini) {
          if (Node.isVariableDeclarationList(ini)) {
            const ds = ini.getDeclarations();
            if (ds.length !== 1) this.fail(s, 'a for loop declares one variable');
            init = this.varDecl(ds[0]!, true)[0]!;
          } else init = this.exprStmt(ini);
        }
        const c = s.getCondition();
        const inc = s.getIncrementor();
        return [{ k: 'for', init, cond: c ? this.boolExpr(c) : null, update: inc ? this.exprStmt(inc) : null, body: this.body(s.getStatement()) }];
      });
    }
    if (Node.isWhileStatement(s)) return [{ k: 'while', cond: this.boolExpr(s.getExpression()), body: this.body(s.getStatement()) }];
    if (Node.isBreakStatement(s)) {
      if (s.getLabel()) this.fail(s, 'labelled break is not supported');
      return [{ k: 'break' }];
    }
    if (Node.isContinueStatement(s)) {
      if (s.getLabel()) this.fail(s, 'labelled continue is not supported');
      return [{ k: 'continue' }];
    }
    if (Node.isReturnStatement(s)) {
      if (s.getExpression()) this.fail(s, 'kernels return nothing; write results to an Out<T> array');
      return [{ k: 'return' }];
    }
    if (Node.isBlock(s)) this.fail(s, 'bare blocks are not supported');
    return this.fail(s, `${s.getKindName()} is not supported in kernels`);
  }

  private varDecl(d: import('ts-morph').VariableDeclaration, mutable: boolean): Stmt[] {
    const nameNode = d.getNameNode();
    if (!Node.isIdentifier(nameNode)) this.fail(d, 'destructuring is not supported in kernels');
    const name = nameNode.getText();
    const initNode = d.getInitializer();
    // workgroup memory
    if (initNode && Node.isCallExpression(initNode)) {
      const callee = this.dslNames.get(initNode.getExpression().getText());
      if (callee === 'sharedF32' || callee === 'sharedU32') {
        if (mutable || this.scopes.length !== 2) this.fail(d, 'declare workgroup memory with const at the top of the kernel');
        const arg = initNode.getArguments()[0];
        const size = arg && Node.isNumericLiteral(arg) ? Number(arg.getLiteralValue()) : NaN;
        if (!Number.isInteger(size) || size < 1) this.fail(d, `${callee}() takes a literal size`);
        const elem = callee === 'sharedF32' ? 'f32' : 'u32';
        this.shared.push({ name, elem, size });
        this.declare(d, name, { kind: 'array', elem, writable: true, name });
        return [];
      }
    }
    const annotated = d.getTypeNode()?.getText();
    let ty: Scalar | undefined;
    if (annotated !== undefined) {
      ty = SCALARS[annotated];
      if (!ty) this.fail(d, `'${name}' has type '${annotated}'; locals are f32, u32, i32 or boolean`);
    }
    let init: Expr | null = null;
    if (initNode) {
      const e = this.expr(initNode as Expression);
      if (!ty) {
        if (isAbstract(e.ty as Ty)) this.fail(d, `give '${name}' a type, e.g. \`let ${name}: f32 = ...\` (a bare number could be f32, u32 or i32)`);
        ty = e.ty as Scalar;
      }
      init = coerce(e, ty, (m) => this.fail(d, `'${name}': ${m}`));
    } else if (!ty) this.fail(d, `'${name}' needs a type or an initial value`);
    else if (!mutable) this.fail(d, `const '${name}' needs a value`);
    const ir = name + this.localSuffix;
    this.declare(d, name, { kind: 'local', ty: ty!, mutable, ir });
    return [{ k: 'let', name: ir, ty: ty!, init, mutable }];
  }

  private lvalue(e: Expression): LValue {
    if (Node.isIdentifier(e)) {
      const b = this.lookup(e.getText());
      if (!b || b.kind !== 'local') this.fail(e, `cannot assign to '${e.getText()}'`);
      if (!b.mutable) this.fail(e, `'${e.getText()}' is const`);
      return { k: 'var', name: b.ir, ty: b.ty };
    }
    if (Node.isElementAccessExpression(e)) {
      const x = this.expr(e);
      const b = this.lookup(e.getExpression().getText());
      if (!b || b.kind !== 'array' || !b.writable) this.fail(e, `'${e.getExpression().getText()}' is read-only (In<T>); write to an Out<T>`);
      return x as LValue;
    }
    return this.fail(e, 'only variables and array elements can be assigned');
  }

  private exprStmt(e: Expression): Stmt {
    if (Node.isBinaryExpression(e)) {
      const op = e.getOperatorToken().getText();
      const ops = ['=', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '<<=', '>>=', '>>>='];
      if (ops.includes(op)) {
        const target = this.lvalue(e.getLeft());
        const wop = (op === '>>>=' ? '>>=' : op) as Extract<Stmt, { k: 'assign' }>['op'];
        if (wop === '/=' && target.ty !== 'f32') this.fail(e, 'integer division: write `x = idiv(x, y)`');
        const rhs = this.expr(e.getRight());
        const shift = wop === '<<=' || wop === '>>=';
        const value = coerce(rhs, shift ? 'u32' : target.ty, (m) => this.fail(e, m));
        return { k: 'assign', target, op: wop, value };
      }
    }
    if ((Node.isPostfixUnaryExpression(e) || Node.isPrefixUnaryExpression(e)) &&
        [SyntaxKind.PlusPlusToken, SyntaxKind.MinusMinusToken].includes(e.getOperatorToken())) {
      const target = this.lvalue(e.getOperand());
      const op = e.getOperatorToken() === SyntaxKind.PlusPlusToken ? '+=' : '-=';
      return { k: 'assign', target, op, value: { k: 'lit', text: '1', ty: target.ty } };
    }
    if (Node.isCallExpression(e)) {
      const callee = this.dslNames.get(e.getExpression().getText());
      if (callee === 'workgroupBarrier') return { k: 'barrier', scope: 'workgroup' };
      if (callee === 'storageBarrier') return { k: 'barrier', scope: 'storage' };
    }
    return this.fail(e, `this expression does nothing in a kernel: ${e.getText()}`);
  }

  private boolExpr(e: Expression): Expr {
    const x = this.expr(e);
    if (x.ty !== 'bool') this.fail(e, `a condition must be a comparison, not ${x.ty}`);
    return x;
  }

  private unify(node: Node, a: Expr, b: Expr): [Expr, Expr, Ty] {
    const ta = a.ty as Ty, tb = b.ty as Ty;
    const f = (m: string) => this.fail(node, m);
    if (!isAbstract(ta) && !isAbstract(tb)) {
      if (ta !== tb) f(`mixing ${ta} and ${tb} in '${node.getText()}'; convert one with f32()/u32()/i32()`);
      return [a, b, ta];
    }
    if (!isAbstract(ta)) return [a, coerce(b, ta, f), ta];
    if (!isAbstract(tb)) return [coerce(a, tb, f), b, tb];
    return [a, b, ta === 'float' || tb === 'float' ? 'float' : 'int'];
  }

  private inlineDepth = 0;
  private localSuffix = '';
  private inlineCount = 0;

  /** The helper `name` resolves to, if it is an `@inline` function. */
  private inlineHelper(call: Node, name: string, args: Expression[], statement: boolean): FunctionDeclaration {
    const fn = resolveFunction(this.fn.getSourceFile(), name);
    const isVoid = fn?.getReturnTypeNode()?.getText() === 'void';
    if (!fn || !fn.getJsDocs().some((d) => d.getTags().some((t) => t.getTagName() === 'inline')) || isVoid !== statement)
      this.fail(call, statement ? `call to '${name}' is not supported as a statement in kernels (only @inline helpers returning void)`
        : `call to '${name}' is not supported in kernels (only the kernel DSL, Math functions and @inline helpers)`);
    if (fn.getParameters().length !== args.length) this.fail(call, `'${name}' takes ${fn.getParameters().length} argument(s)`);
    return fn;
  }

  /** A helper's parameters, bound to the caller's arrays, invocation and (converted) values. */
  private bindArgs(fn: FunctionDeclaration, name: string, args: Expression[]): Map<string, Binding> {
    const scope = new Map<string, Binding>();
    fn.getParameters().forEach((p, i) => {
      const tn = p.getTypeNode()?.getText().replace(/\s+/g, '') ?? '';
      const arg = args[i]!;
      const b = Node.isIdentifier(arg) ? this.lookup(arg.getText()) : undefined;
      const arr = /^(In|Out)<(f32|u32|i32|u32x4|f32x4)>$/.exec(tn);
      if (arr || tn === 'Invocation') {
        const ok = tn === 'Invocation' ? b?.kind === 'invocation' : b?.kind === 'array' && b.elem === arr![2] && (arr![1] === 'In' || b.writable);
        if (!ok) this.fail(arg, `argument ${i + 1} of '${name}' must be ${tn === 'Invocation' ? 'the invocation' : `a${arr![1] === 'Out' ? ' writable' : 'n'} ${arr![2]} array`}`);
        scope.set(p.getName(), b!);
      } else if (tn === 'f32' || tn === 'u32' || tn === 'i32' || tn === 'u32x4' || tn === 'f32x4' || tn === 'Spec<u32>') {
        const ty = tn === 'Spec<u32>' ? 'u32' : tn;
        scope.set(p.getName(), { kind: 'alias', expr: coerce(this.expr(arg), ty, (m) => this.fail(arg, `argument ${i + 1} of '${name}': ${m}`)) });
      } else this.fail(p, `@inline parameter '${p.getName()}' has type '${tn}'`);
    });
    return scope;
  }

  /** Translate inside a helper: it sees its parameters only, never the caller's locals, and its own
   *  locals get `suffix` so they never meet the caller's. */
  private within<T>(fn: FunctionDeclaration, scope: Map<string, Binding>, suffix: string, f: () => T): T {
    if (++this.inlineDepth > MAX_INLINE_DEPTH) this.fail(fn, `@inline helpers nest deeper than ${MAX_INLINE_DEPTH} (recursion?)`);
    const saved = [this.scopes, this.fn, this.dslNames, this.file, this.localSuffix] as const;
    this.scopes = [scope];
    this.fn = fn;
    this.dslNames = dslImports(fn.getSourceFile());
    this.file = relPath(this.root, fn.getSourceFile());
    this.localSuffix = suffix;
    try {
      return f();
    } finally {
      [this.scopes, this.fn, this.dslNames, this.file, this.localSuffix] = saved;
      this.inlineDepth--;
    }
  }

  /** Expand a call to a statement `@inline` helper (`: void`) in place. */
  private inlineStatements(call: Node, name: string, args: Expression[]): Stmt[] {
    const fn = this.inlineHelper(call, name, args, true);
    const scope = this.bindArgs(fn, name, args);
    return this.within(fn, scope, `_${name}${++this.inlineCount}`, () => {
      const body = fn.getBody();
      if (!body || !Node.isBlock(body)) this.fail(fn, `@inline helper '${name}' needs a body`);
      return this.block(body.getStatements()).filter((s) => s.k !== 'return' || this.fail(fn, `@inline helper '${name}' must not return early`));
    });
  }

  /** Expand a call to an expression `@inline` helper (a function whose body is one `return`), in the
   *  same file or imported from another ops file: its parameters stand for the caller's arguments. */
  private inline(call: Node, name: string, args: Expression[]): Expr {
    const fn = this.inlineHelper(call, name, args, false);
    const stmts = fn.getBody() && Node.isBlock(fn.getBody()!) ? (fn.getBody() as import('ts-morph').Block).getStatements() : [];
    const ret = stmts[0];
    if (stmts.length !== 1 || !ret || !Node.isReturnStatement(ret) || !ret.getExpression())
      this.fail(fn, `@inline helper '${name}' must be a single \`return <expression>;\``);
    const scope = this.bindArgs(fn, name, args);
    return this.within(fn, scope, this.localSuffix, () => {
      const want = fn.getReturnTypeNode()?.getText();
      const ty = want ? SCALARS[want] : undefined;
      if (!ty) this.fail(fn, `@inline helper '${name}' needs a return type (f32, u32, i32 or boolean)`);
      return coerce(this.expr(ret.getExpression()!), ty, (m) => this.fail(ret, m));
    });
  }

  expr(e: Expression): Expr {
    if (Node.isParenthesizedExpression(e)) return this.expr(e.getExpression());
    if (Node.isNumericLiteral(e)) {
      const text = e.getText().replace(/_/g, '');
      return { k: 'lit', text, ty: /^0[xX]/.test(text) || /^\d+$/.test(text) ? 'int' : 'float' };
    }
    if (e.getKind() === SyntaxKind.TrueKeyword || e.getKind() === SyntaxKind.FalseKeyword)
      return { k: 'lit', text: e.getText(), ty: 'bool' };
    if (Node.isIdentifier(e)) {
      const name = e.getText();
      const b = this.lookup(name);
      if (!b) {
        if (this.dslNames.has(name)) this.fail(e, `'${name}' must be called`);
        this.fail(e, `'${name}' comes from outside the kernel; pass it as a parameter (scalars become uniforms)`);
      }
      if (b.kind === 'local') return { k: 'var', name: b.ir, ty: b.ty };
      if (b.kind === 'uniform') return { k: 'uniform', name, ty: b.ty };
      if (b.kind === 'spec') return { k: 'spec', name, ty: b.ty };
      if (b.kind === 'alias') return b.expr;
      return this.fail(e, `'${name}' is an array; index it`);
    }
    if (Node.isPrefixUnaryExpression(e)) {
      const a = this.expr(e.getOperand());
      const op = e.getOperatorToken();
      if (op === SyntaxKind.MinusToken) {
        if (a.ty === 'u32') this.fail(e, 'negating a u32');
        return { k: 'un', op: '-', a, ty: a.ty as Scalar };
      }
      if (op === SyntaxKind.PlusToken) return a;
      if (op === SyntaxKind.ExclamationToken) {
        if (a.ty !== 'bool') this.fail(e, '! needs a boolean');
        return { k: 'un', op: '!', a, ty: 'bool' };
      }
      if (op === SyntaxKind.TildeToken && isInt(a.ty as Ty)) return { k: 'un', op: '~', a, ty: a.ty as Scalar };
      return this.fail(e, `unsupported unary operator in '${e.getText()}'`);
    }
    if (Node.isBinaryExpression(e)) {
      let op = e.getOperatorToken().getText();
      const a = this.expr(e.getLeft()), b = this.expr(e.getRight());
      if (op === '&&' || op === '||') {
        if (a.ty !== 'bool' || b.ty !== 'bool') this.fail(e, `${op} needs booleans`);
        return { k: 'bin', op, a, b, ty: 'bool' };
      }
      if (op === '<<' || op === '>>' || op === '>>>') {
        if (!isInt(a.ty as Ty)) this.fail(e, 'shifts need integers');
        if (op === '>>>' && a.ty === 'i32') this.fail(e, '>>> on an i32; convert to u32 first');
        const a2 = isAbstract(a.ty as Ty) ? coerce(a, 'u32', (m) => this.fail(e, m)) : a;
        return { k: 'bin', op: op === '>>>' ? '>>' : op, a: a2, b: coerce(b, 'u32', (m) => this.fail(e, m)), ty: a2.ty as Scalar };
      }
      if (op === '===') op = '==';
      if (op === '!==') op = '!=';
      const [x, y, ty] = this.unify(e, a, b);
      if (['<', '<=', '>', '>=', '==', '!='].includes(op)) {
        // comparisons of two bare numbers: pick a type so WGSL agrees
        const [x2, y2] = isAbstract(ty) ? [coerce(x, ty === 'int' ? 'i32' : 'f32', () => this.fail(e, 'bad literal')), coerce(y, ty === 'int' ? 'i32' : 'f32', () => this.fail(e, 'bad literal'))] : [x, y];
        return { k: 'bin', op, a: x2, b: y2, ty: 'bool' };
      }
      if (['+', '-', '*', '/', '%', '&', '|', '^'].includes(op)) {
        if (ty === 'bool') this.fail(e, `arithmetic on booleans in '${e.getText()}'`);
        if (op === '/' && isInt(ty)) this.fail(e, `integer division in '${e.getText()}': JS divides in floats; write idiv(a, b)`);
        if (['&', '|', '^'].includes(op) && !isInt(ty)) this.fail(e, `bitwise ${op} on floats`);
        return { k: 'bin', op, a: x, b: y, ty: ty as Scalar };
      }
      return this.fail(e, `operator ${op} is not supported in kernels`);
    }
    if (Node.isConditionalExpression(e)) {
      const cond = this.boolExpr(e.getCondition());
      const [a, b, ty] = this.unify(e, this.expr(e.getWhenTrue()), this.expr(e.getWhenFalse()));
      return { k: 'select', cond, a, b, ty: ty as Scalar };
    }
    if (Node.isElementAccessExpression(e)) {
      const base = e.getExpression();
      const b = Node.isIdentifier(base) ? this.lookup(base.getText()) : undefined;
      if (!b || b.kind !== 'array') this.fail(e, `'${base.getText()}' is not an array parameter or workgroup array`);
      const arg = e.getArgumentExpression();
      if (!arg) this.fail(e, 'missing index');
      let index = this.expr(arg);
      if (!isInt(index.ty as Ty)) this.fail(e, `index '${arg.getText()}' is ${index.ty}; indices are u32 or i32`);
      if (isAbstract(index.ty as Ty)) index = coerce(index, 'u32', (m) => this.fail(e, m));
      return { k: 'index', array: b.name, index, ty: b.elem };
    }
    if (Node.isPropertyAccessExpression(e)) {
      const base = e.getExpression().getText();
      const prop = e.getName();
      const b = this.lookup(base);
      if (b?.kind === 'invocation') {
        if (prop === 'local' || prop === 'group' || prop === 'global' || prop === 'size' || prop === 'subgroupSize') return { k: 'builtin', name: prop, ty: 'u32' };
        this.fail(e, `${base}.${prop}: an Invocation has local, group, global, size and subgroupSize`);
      }
      if (b?.kind === 'array' && prop === 'length') return { k: 'len', array: b.name, ty: 'u32' };
      if (prop === 'x' || prop === 'y' || prop === 'z' || prop === 'w') {
        const v = this.expr(e.getExpression());
        if (v.ty === 'u32x4' || v.ty === 'f32x4') return { k: 'member', a: v, field: prop, ty: v.ty === 'u32x4' ? 'u32' : 'f32' };
      }
      return this.fail(e, `'${e.getText()}' is not supported in kernels`);
    }
    if (Node.isCallExpression(e)) {
      const callee = e.getExpression();
      const args = e.getArguments() as Expression[];
      const text = callee.getText();
      const dsl = this.dslNames.get(text);
      if (dsl === 'f32' || dsl === 'u32' || dsl === 'i32') {
        if (args.length !== 1) this.fail(e, `${dsl}() takes one argument`);
        const a = this.expr(args[0]!);
        if (isAbstract(a.ty as Ty)) return coerce(a, dsl, (m) => this.fail(e, m));
        if (a.ty === dsl) return a;
        return { k: 'call', fn: dsl, args: [a], ty: dsl };
      }
      if (dsl === 'idiv') {
        if (args.length !== 2) this.fail(e, 'idiv(a, b) takes two arguments');
        const [a, b, ty] = this.unify(e, this.expr(args[0]!), this.expr(args[1]!));
        if (!isInt(ty)) this.fail(e, 'idiv() is for integers');
        const t: Scalar = isAbstract(ty) ? 'i32' : (ty as Scalar);
        return { k: 'bin', op: '/', a: coerce(a, t, (m) => this.fail(e, m)), b: coerce(b, t, (m) => this.fail(e, m)), ty: t };
      }
      if (dsl === 'mul4') {
        if (args.length !== 2) this.fail(e, 'mul4(a, b) takes two f32x4');
        const [x, y] = [this.expr(args[0]!), this.expr(args[1]!)];
        if (x.ty !== 'f32x4' || y.ty !== 'f32x4') this.fail(e, 'mul4(a, b) takes two f32x4');
        return { k: 'bin', op: '*', a: x, b: y, ty: 'f32x4' };
      }
      if (dsl === 'epilogue') {
        const hole = args[2];
        if (args.length < 2 || args.length > 3 || (hole && !Node.isStringLiteral(hole))) this.fail(e, "epilogue(value, index[, 'name']) takes two arguments and an optional hole name");
        return { k: 'hole', name: hole && Node.isStringLiteral(hole) ? hole.getLiteralValue() : 'epilogue', args: [coerce(this.expr(args[0]!), 'f32', (m) => this.fail(e, m)), coerce(this.expr(args[1]!), 'u32', (m) => this.fail(e, m))], ty: 'f32' };
      }
      if (dsl && BIT_FNS[dsl]) {
        const sig = BIT_FNS[dsl]!;
        if (args.length !== sig.args.length) this.fail(e, `${dsl}() takes ${sig.args.length} argument(s)`);
        return { k: 'call', fn: dsl, args: args.map((a, i) => coerce(this.expr(a), sig.args[i]!, (msg) => this.fail(e, `${dsl}: ${msg}`))), ty: sig.ty };
      }
      if (!dsl && Node.isIdentifier(callee)) return this.inline(e, callee.getText(), args);
      const m = /^Math\.(\w+)$/.exec(text);
      if (m) {
        const f = m[1]!;
        const xs = args.map((a) => this.expr(a));
        if (FLOAT_FNS.has(f)) {
          const want = f === 'pow' ? 2 : 1;
          if (xs.length !== want) this.fail(e, `Math.${f} takes ${want} argument(s)`);
          return { k: 'call', fn: f, args: xs.map((x) => coerce(x, 'f32', (msg) => this.fail(e, `Math.${f}: ${msg}`))), ty: 'f32' };
        }
        if (GENERIC_FNS.has(f)) {
          if (xs.length !== (f === 'abs' ? 1 : 2)) this.fail(e, `Math.${f} takes ${f === 'abs' ? 1 : 2} argument(s) in kernels`);
          if (f === 'abs') return { k: 'call', fn: 'abs', args: xs, ty: xs[0]!.ty as Scalar };
          const [a, b, ty] = this.unify(e, xs[0]!, xs[1]!);
          if (isAbstract(ty)) this.fail(e, `Math.${f} of two bare numbers`);
          return { k: 'call', fn: f, args: [a, b], ty: ty as Scalar };
        }
        if (f === 'fround' && xs.length === 1) return coerce(xs[0]!, 'f32', (msg) => this.fail(e, msg));
        this.fail(e, `Math.${f} is not supported in kernels`);
      }
      return this.fail(e, `call to '${text}' is not supported in kernels (only the kernel DSL and Math functions)`);
    }
    return this.fail(e, `${e.getKindName()} is not supported in kernels: ${e.getText()}`);
  }
}

/** Names a file imports from the kernel DSL, mapped to the DSL's own names. */
function dslImports(sf: SourceFile): Map<string, string> {
  const names = new Map<string, string>();
  for (const imp of sf.getImportDeclarations()) {
    if (!/compiler\/kernel\/dsl(\.js)?$/.test(imp.getModuleSpecifierValue())) continue;
    for (const n of imp.getNamedImports()) names.set(n.getAliasNode()?.getText() ?? n.getName(), n.getName());
  }
  return names;
}

/** A function declared in `sf`, or imported into it from another file by name. */
function resolveFunction(sf: SourceFile, name: string): FunctionDeclaration | undefined {
  const local = sf.getFunction(name);
  if (local) return local;
  for (const imp of sf.getImportDeclarations()) {
    const named = imp.getNamedImports().find((n) => (n.getAliasNode()?.getText() ?? n.getName()) === name);
    if (named) return imp.getModuleSpecifierSourceFile()?.getFunction(named.getName());
  }
  return undefined;
}

const relPath = (root: string, sf: SourceFile) => path.relative(root, sf.getFilePath()).split(path.sep).join('/');
const hasTag = (fn: FunctionDeclaration, tag: string) => fn.getJsDocs().some((d) => d.getTags().some((t) => t.getTagName() === tag));

/** Every `@kernel` function in a source file, translated. */
export function translateSourceFile(sf: SourceFile, root: string): KernelIR[] {
  return translateAll(sf, root).kernels;
}

/** Every `@kernel` and `@epilogue` function in a source file, translated. */
export function translateAll(sf: SourceFile, root: string): { kernels: KernelIR[]; fragments: FragmentIR[] } {
  const file = relPath(root, sf);
  const dsl = dslImports(sf);
  const kernels: KernelIR[] = [], fragments: FragmentIR[] = [];
  for (const fn of sf.getFunctions()) {
    const isKernel = hasTag(fn, 'kernel'), isEpilogue = hasTag(fn, 'epilogue');
    if (!isKernel && !isEpilogue) continue;
    if (!fn.getName()) throw new KernelSyntaxError(`${file}:${fn.getStartLineNumber()}: a kernel needs a name`);
    const t = new FunctionTranslator(fn, dsl, file, root);
    if (isKernel) kernels.push(t.translate()); else fragments.push(t.fragment());
  }
  return { kernels, fragments };
}
