// Loops that index an invocation's local arrays, written out. A kernel's accumulators live in a local
// array (`const acc = localF32(16)`) indexed by small loops (`for (let i: u32 = 0; i < 4; i++) acc[i]
// += ...`); written out copy by copy with the counter a constant, every index is a constant, so the
// driver keeps the array in registers (a run-time index would put it in memory) and
// compiler/kernel/bounds.ts sees every access in bounds. Each copy is a block of its own (`if (true)`),
// so the body's names stay its own.
import type { Expr, Stmt } from './ir.js';
import { mapExpr, someExpr, someInStmts } from './visit.js';

/** loops of more steps stay loops (their bodies are large, and their arrays would be too) */
const MAX_STEPS = 64;

/** `stmts` with every constant-trip loop whose body indexes one of `locals` by its counter unrolled,
 *  innermost first. */
export function unrollLocals(stmts: readonly Stmt[], locals: ReadonlySet<string>): Stmt[] {
  if (!locals.size) return [...stmts];
  return stmts.flatMap((s): Stmt[] => {
    switch (s.k) {
      case 'if': return [{ ...s, then: unrollLocals(s.then, locals), else: unrollLocals(s.else, locals) }];
      case 'while': return [{ ...s, body: unrollLocals(s.body, locals) }];
      case 'for': {
        const body = unrollLocals(s.body, locals);
        const steps = counterSteps(s);
        if (!steps || !indexesLocal(body, steps.name, locals) || someStmt(body, (x) => x.k === 'break' || x.k === 'continue')) return [{ ...s, body }];
        return steps.values.map((v): Stmt => ({ k: 'if', cond: { k: 'lit', text: 'true', ty: 'bool' }, then: substitute(body, steps.name, v), else: [] }));
      }
      default: return [s];
    }
  });
}

/** A loop `for (let i: u32 = A; i < B; i += C)` (or `<=`, `i++`) with literal A, B, C and `i` not
 *  assigned in the body: its counter's name and values. */
function counterSteps(s: Extract<Stmt, { k: 'for' }>): { name: string; values: number[] } | undefined {
  const { init, cond, update } = s;
  if (!init || init.k !== 'let' || init.ty !== 'u32' || init.init?.k !== 'lit' || !cond || !update) return;
  const name = init.name, lit = (e: Expr) => (e.k === 'lit' && /^\d+$/.test(e.text) ? Number(e.text) : undefined);
  if (cond.k !== 'bin' || (cond.op !== '<' && cond.op !== '<=') || cond.a.k !== 'var' || cond.a.name !== name) return;
  if (update.k !== 'assign' || update.target.k !== 'var' || update.target.name !== name) return;
  const step = update.op === '+=' ? lit(update.value)
    : update.op === '=' && update.value.k === 'bin' && update.value.op === '+' && update.value.a.k === 'var' && update.value.a.name === name ? lit(update.value.b) : undefined;
  const from = lit(init.init), to = lit(cond.b);
  if (from === undefined || to === undefined || !step) return;
  const values: number[] = [];
  for (let v = from; cond.op === '<' ? v < to : v <= to; v += step) if (values.push(v) > MAX_STEPS) return;
  return someStmt(s.body, (x) => x.k === 'assign' && x.target.k === 'var' && x.target.name === name) ? undefined : { name, values };
}

const mentions = (e: Expr, name: string) => someExpr(e, (x) => x.k === 'var' && x.name === name);
function indexesLocal(body: readonly Stmt[], name: string, locals: ReadonlySet<string>): boolean {
  return someInStmts(body, (e) => e.k === 'index' && locals.has(e.array) && mentions(e.index, name));
}

/** The body with the counter a literal, and u32 arithmetic on literals folded (`acc[(1u * 4u) + 2u]`
 *  prints as `acc[6u]`). */
function substitute(body: readonly Stmt[], name: string, v: number): Stmt[] {
  const num = (e: Expr) => (e.k === 'lit' && e.ty === 'u32' && /^\d+$/.test(e.text) ? Number(e.text) : undefined);
  const fold = (x: Expr): Expr => {
    if (x.k === 'var' && x.name === name) return { k: 'lit', text: String(v), ty: 'u32' };
    if (x.k !== 'bin' || x.ty !== 'u32') return x;
    const a = num(x.a), b = num(x.b);
    const r = a === undefined || b === undefined ? undefined : x.op === '+' ? a + b : x.op === '*' ? a * b : x.op === '-' && a >= b ? a - b : undefined;
    return r !== undefined && r <= 2 ** 32 - 1 ? { k: 'lit', text: String(r), ty: 'u32' } : x;
  };
  return mapStmts(body, (e) => mapExpr(e, fold));
}

/** Statements with every expression mapped (targets included). */
function mapStmts(stmts: readonly Stmt[], f: (e: Expr) => Expr): Stmt[] {
  return stmts.map((s): Stmt => {
    switch (s.k) {
      case 'let': return { ...s, init: s.init ? f(s.init) : null };
      case 'assign': return { ...s, target: f(s.target) as typeof s.target, value: f(s.value) };
      case 'if': return { ...s, cond: f(s.cond), then: mapStmts(s.then, f), else: mapStmts(s.else, f) };
      case 'for': return { ...s, init: s.init ? mapStmts([s.init], f)[0]! : null, cond: s.cond ? f(s.cond) : null, update: s.update ? mapStmts([s.update], f)[0]! : null, body: mapStmts(s.body, f) };
      case 'while': return { ...s, cond: f(s.cond), body: mapStmts(s.body, f) };
      case 'call': return { ...s, call: f(s.call) as typeof s.call };
      case 'break': case 'continue': case 'return': case 'barrier': return s;
    }
  });
}

function someStmt(stmts: readonly Stmt[], p: (s: Stmt) => boolean): boolean {
  return stmts.some((s) => p(s) || (s.k === 'if' ? someStmt(s.then, p) || someStmt(s.else, p) : s.k === 'for' || s.k === 'while' ? someStmt(s.body, p) : false));
}
