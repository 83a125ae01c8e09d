// The translator's state while one function is translated: its scopes of names, its workgroup memory,
// the file and function errors name, and (while a helper is inlined) the helper's own. The concerns
// that recurse into each other (statements, expressions, inlining) reach one another through the
// abstract methods here, so their modules import this file and never each other.
import type { Expression, FunctionDeclaration, Node, Statement } from 'ts-morph';
import type { Expr, KernelIR, Stmt } from '../kernel/ir.js';
import { KernelSyntaxError, type Binding } from './types.js';

export abstract class Context {
  scopes: Map<string, Binding>[] = [];
  readonly shared: KernelIR['shared'] = [];
  readonly locals: NonNullable<KernelIR['locals']> = [];
  /** appended to the names of an inlined helper's locals */
  localSuffix = '';
  inlineDepth = 0;
  inlineCount = 0;

  constructor(
    public fn: FunctionDeclaration,
    public dslNames: Map<string, string>, // local name -> dsl export
    public file: string,
    readonly root: string,
  ) {}

  fail(node: Node, msg: string): never {
    throw new KernelSyntaxError(`${this.file}:${node.getStartLineNumber()}: ${msg} (in kernel ${this.fn.getName()})`);
  }
  /** A failure at `node`, for helpers that take a plain callback. */
  at(node: Node): (msg: string) => never {
    return (msg) => this.fail(node, msg);
  }

  lookup(name: string): Binding | undefined {
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const b = this.scopes[i]!.get(name);
      if (b) return b;
    }
    return undefined;
  }
  declare(node: Node, name: string, b: Binding) {
    if (this.lookup(name)) this.fail(node, `'${name}' is already declared; kernels do not shadow names`);
    this.scopes[this.scopes.length - 1]!.set(name, b);
  }
  scoped<T>(f: () => T): T {
    this.scopes.push(new Map());
    try { return f(); } finally { this.scopes.pop(); }
  }

  /** an expression (expressions.ts) */
  abstract expr(e: Expression): Expr;
  /** statements in a scope of their own (statements.ts) */
  abstract block(stmts: Statement[]): Stmt[];
  /** a call to an `@inline` helper that returns a value (inlining.ts) */
  abstract inlineExpr(call: Node, name: string, args: Expression[]): Expr;
  /** a call to an `@inline` helper that returns nothing, as statements (inlining.ts) */
  abstract inlineStatements(call: Node, name: string, args: Expression[]): Stmt[];
}
