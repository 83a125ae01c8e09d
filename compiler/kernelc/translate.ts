// TypeScript kernel functions -> kernel IR, through the TypeScript compiler API (ts-morph).
// Runs at build time only. It accepts a small subset (see compiler/kernel/dsl.ts) and rejects
// everything else with a sentence naming the file and line, so a kernel never silently means
// something different on the GPU than it does in JavaScript:
//  - every number is typed f32/u32/i32; mixing them needs an explicit conversion;
//  - `/` on integers is rejected (JS divides in floats): use idiv();
//  - identifiers from outside the function are rejected (they would freeze at build time):
//    pass them as scalar parameters, which become uniforms.
// By concern: params.ts (what a kernel and a fragment take), statements.ts, expressions.ts with
// calls.ts, inlining.ts (@inline helpers); types.ts (literal typing), context.ts (scopes).
import { Node, type Block, type Expression, type FunctionDeclaration, type SourceFile, type Statement } from 'ts-morph';
import type { Expr, FragmentIR, KernelIR, Stmt } from '../kernel/ir.js';
import { Context } from './context.js';
import { expr } from './expressions.js';
import { inlineExpr, inlineStatements } from './inlining.js';
import { fragmentParams, kernelParams } from './params.js';
import { dslImports, hasTag, relPath } from './source.js';
import { block } from './statements.js';
import { coerce, KernelSyntaxError } from './types.js';
import { usesMatrices } from '../kernel/intrinsics.js';
import { unrollLocals } from '../kernel/unroll.js';

export { KernelSyntaxError } from './types.js';

class FunctionTranslator extends Context {
  expr(e: Expression): Expr { return expr(this, e); }
  block(stmts: Statement[]): Stmt[] { return block(this, stmts); }
  inlineExpr(call: Node, name: string, args: Expression[]): Expr { return inlineExpr(this, call, name, args); }
  inlineStatements(call: Node, name: string, args: Expression[]): Stmt[] { return inlineStatements(this, call, name, args); }

  /** A `@kernel` function: its workgroup size, parameters, workgroup memory and body. */
  kernel(): KernelIR {
    const fn = this.fn;
    const tags = fn.getJsDocs().flatMap((d) => d.getTags());
    const wgTag = tags.find((t) => t.getTagName() === 'workgroupSize');
    const workgroupSize = Number(String(wgTag?.getCommentText() ?? '').trim());
    if (!wgTag || !Number.isInteger(workgroupSize) || workgroupSize < 1 || workgroupSize > 256)
      this.fail(fn, 'a kernel needs `@workgroupSize N` (1..256) in its JSDoc');
    this.scopes.push(new Map());
    const params = kernelParams(this, fn);
    const body = fn.getBody();
    if (!body || !Node.isBlock(body)) this.fail(fn, 'a kernel needs a body');
    const stmts = this.block(body.getStatements());
    const k: KernelIR = { name: fn.getName()!, source: `${this.file}:${fn.getStartLineNumber()}`, workgroupSize, params, shared: this.shared, ...(this.locals.length ? { locals: this.locals } : {}), body: unrollLocals(stmts, new Set(this.locals.map((l) => l.name))) };
    // the translator says so where a kernel cannot run as plain JavaScript
    return usesMatrices(k) ? { ...k, noPlainJs: 'it multiplies subgroup matrices, which a whole subgroup runs at once' } : k;
  }

  /** An `@epilogue` function `(v: f32, i: u32, ...params): f32 { return expr; }` as a fragment. A
   *  store fragment (a tap) writes the value on first: `t[i] = v; return v;` with `t: Out<f32>`. */
  fragment(): FragmentIR {
    const fn = this.fn;
    const { params, scope } = fragmentParams(this, fn);
    const stmts = (fn.getBody() as Block | undefined)?.getStatements() ?? [];
    const ret = stmts[stmts.length - 1];
    if (!ret || !Node.isReturnStatement(ret) || !ret.getExpression()) this.fail(fn, 'an @epilogue ends with `return <expression>;`');
    this.scopes = [scope];
    const stores = stmts.slice(0, -1).map((s) => {
      const a = Node.isExpressionStatement(s) ? s.getExpression() : undefined;
      if (!a || !Node.isBinaryExpression(a) || a.getOperatorToken().getText() !== '=' || !Node.isElementAccessExpression(a.getLeft()))
        this.fail(s, 'before its return, an @epilogue may only store: `out[i] = value;`');
      const target = this.expr(a.getLeft());
      if (target.k !== 'index' || !params.some((p) => p.kind === 'out' && p.name === target.array)) this.fail(s, 'an @epilogue stores only into its Out<T> parameters');
      return { array: target.array, index: target.index, value: coerce(this.expr(a.getRight()), target.ty, this.at(s)) };
    });
    const e = coerce(this.expr(ret.getExpression()!), 'f32', this.at(ret));
    return { name: fn.getName()!, source: `${this.file}:${fn.getStartLineNumber()}`, params, ...(stores.length ? { stores } : {}), body: e };
  }
}

/** Every `@kernel` function in a source file, translated. */
export function translateSourceFile(sf: SourceFile, root: string): KernelIR[] {
  return translateAll(sf, root).kernels;
}

/** Every `@kernel` and `@epilogue` function in a source file, translated. */
export function translateAll(sf: SourceFile, root: string): { kernels: KernelIR[]; fragments: FragmentIR[] } {
  const file = relPath(root, sf);
  const dsl = dslImports(sf);
  const kernels: KernelIR[] = [], fragments: FragmentIR[] = [];
  for (const fn of sf.getFunctions() as FunctionDeclaration[]) {
    const isKernel = hasTag(fn, 'kernel'), isEpilogue = hasTag(fn, 'epilogue');
    if (!isKernel && !isEpilogue) continue;
    if (!fn.getName()) throw new KernelSyntaxError(`${file}:${fn.getStartLineNumber()}: a kernel needs a name`);
    const t = new FunctionTranslator(fn, dsl, file, root);
    if (isKernel) kernels.push(t.kernel()); else fragments.push(t.fragment());
  }
  return { kernels, fragments };
}
