// Which array accesses of a kernel are in bounds by construction. The printer guards every access it
// cannot show in bounds (storage arrays: clamped to their length, as Dawn's robustness transform would;
// workgroup arrays: clamped to their size), so a device may run tapir's kernels with Dawn's robustness
// off (runtime/gpu.ts): the guarantee is the same, and accesses shown in bounds cost nothing. On the
// tensor-core kernels that is the difference that matters: a clamped index keeps the driver from
// merging a tile's neighbouring 16-bit stores, and a subgroup-matrix load from workgroup memory must be
// shown in bounds (there is no clamping a 16 × 16 load), or the kernel does not print.
//
// The analysis: an interval of values for every u32 expression, from literals, the workgroup's size,
// the invocation's index in it, loop counters (`for (let i = a; i < b; i += c)` with `i` not assigned
// in the body) and `if (x < b)` around a block; uniforms, specialization constants and loaded values
// are unknown. A storage array's length is never known, so its accesses are always clamped.
import type { Expr, KernelIR, Stmt } from './ir.js';
import { intrinsicOf, usesMatrices } from './intrinsics.js';
import { children } from './visit.js';

/** the values an expression may take: lo .. hi, inclusive */
export interface Interval { readonly lo: number; readonly hi: number }
const U32_MAX = 2 ** 32 - 1;
const ANY: Interval = { lo: 0, hi: U32_MAX };
const exact = (v: number): Interval => ({ lo: v, hi: v });
const fits = (lo: number, hi: number): Interval => (lo >= 0 && hi <= U32_MAX && lo <= hi ? { lo, hi } : ANY);
/** the smallest all-ones mask covering v */
const mask = (v: number) => (v <= 0 ? 0 : 2 ** Math.ceil(Math.log2(v + 1)) - 1);

type Env = ReadonlyMap<string, Interval>;

/** The interval of a u32 expression; anything else (floats, signed, loaded values) is unknown. */
export function intervalOf(e: Expr, env: Env, k: Pick<KernelIR, 'workgroupSize'> & { matrixSubgroups?: boolean }): Interval {
  const of = (x: Expr) => intervalOf(x, env, k);
  switch (e.k) {
    case 'lit': {
      const v = Number(e.text);
      return (e.ty === 'u32' || e.ty === 'int') && Number.isInteger(v) && v >= 0 ? exact(v) : ANY;
    }
    case 'var': return env.get(`var:${e.name}`) ?? ANY;
    case 'builtin':
      switch (e.name) {
        case 'local': return env.get('builtin:local') ?? { lo: 0, hi: k.workgroupSize - 1 };
        case 'size': return exact(k.workgroupSize);
        // a kernel with subgroup matrices runs only on subgroups of 32 (runtime/gpu.ts's `matrices`)
        case 'subgroupId': return { lo: 0, hi: k.matrixSubgroups ? Math.max(0, Math.ceil(k.workgroupSize / 32) - 1) : k.workgroupSize - 1 };
        case 'subgroupSize': return k.matrixSubgroups ? exact(32) : { lo: 1, hi: 128 };
        default: return ANY;
      }
    case 'select': {
      const a = of(e.a), b = of(e.b);
      return { lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
    }
    case 'call': {
      if (e.fn !== 'min' && e.fn !== 'max') return ANY;
      if (e.ty !== 'u32') return ANY;
      const [a, b] = e.args.map(of) as [Interval, Interval];
      return e.fn === 'min' ? { lo: Math.min(a.lo, b.lo), hi: Math.min(a.hi, b.hi) } : { lo: Math.max(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
    }
    case 'bin': {
      if (e.ty !== 'u32') return ANY;
      const a = of(e.a), b = of(e.b);
      switch (e.op) {
        case '+': return fits(a.lo + b.lo, a.hi + b.hi);
        case '-': return a.lo >= b.hi ? fits(a.lo - b.hi, a.hi - b.lo) : ANY; // (u32 wraps below 0)
        case '*': return fits(a.lo * b.lo, a.hi * b.hi);
        // (WGSL: x / 0 and x % 0 are x)
        case '/': return b.lo === 0 ? { lo: 0, hi: a.hi } : { lo: Math.floor(a.lo / b.hi), hi: Math.floor(a.hi / b.lo) };
        case '%': return { lo: 0, hi: b.lo === 0 ? a.hi : Math.min(a.hi, b.hi - 1) };
        case '&': return { lo: 0, hi: Math.min(a.hi, b.hi) };
        case '|': case '^': return { lo: 0, hi: mask(Math.max(a.hi, b.hi)) };
        case '>>': return b.hi < 32 ? { lo: Math.floor(a.lo / 2 ** b.hi), hi: Math.floor(a.hi / 2 ** b.lo) } : ANY;
        case '<<': return b.hi < 32 ? fits(a.lo * 2 ** b.lo, a.hi * 2 ** b.hi) : ANY;
        default: return ANY;
      }
    }
    default: return ANY;
  }
}

/** What a condition says about a name while it holds: `x < b`, `x <= b`, and conjunctions of them. */
function narrow(cond: Expr, env: Map<string, Interval>, k: Parameters<typeof intervalOf>[2]) {
  if (cond.k !== 'bin') return;
  if (cond.op === '&&') { narrow(cond.a, env, k); narrow(cond.b, env, k); return; }
  if (cond.op !== '<' && cond.op !== '<=') return;
  const key = cond.a.k === 'var' ? `var:${cond.a.name}` : cond.a.k === 'builtin' && cond.a.name === 'local' ? 'builtin:local' : undefined;
  // (only names that cannot change inside the block: immutable values and loop counters the body
  // leaves alone are the names the environment holds; a mutable variable is never narrowed)
  if (!key || cond.a.ty !== 'u32' || (key.startsWith('var:') && !env.has(key))) return;
  const now = intervalOf(cond.a, env, k), bound = intervalOf(cond.b, env, k);
  const hi = cond.op === '<' ? bound.hi - 1 : bound.hi;
  if (hi < now.hi) env.set(key, { lo: now.lo, hi: Math.max(now.lo, hi) });
}

/** Whether a statement list assigns the variable anywhere in it. */
function assigns(stmts: readonly Stmt[], name: string): boolean {
  return stmts.some((s) => {
    switch (s.k) {
      case 'assign': return s.target.k === 'var' && s.target.name === name;
      case 'if': return assigns(s.then, name) || assigns(s.else, name);
      case 'for': return assigns(s.body, name) || (s.update ? assigns([s.update], name) : false);
      case 'while': return assigns(s.body, name);
      default: return false;
    }
  });
}

/** A counter's values in its loop: `for (let i = a; i < b; i += c)` (or `i = i + c`), i untouched by the body. */
function counter(s: Extract<Stmt, { k: 'for' }>, env: Env, k: Parameters<typeof intervalOf>[2]): [string, Interval] | undefined {
  const init = s.init;
  if (!init || init.k !== 'let' || init.ty !== 'u32' || !init.init || !s.cond || !s.update) return;
  const name = init.name, u = s.update;
  if (u.k !== 'assign' || u.target.k !== 'var' || u.target.name !== name) return;
  const step = u.op === '+=' ? u.value : u.op === '=' && u.value.k === 'bin' && u.value.op === '+' && u.value.a.k === 'var' && u.value.a.name === name ? u.value.b : undefined;
  if (!step || assigns(s.body, name)) return;
  const c = s.cond;
  if (c.k !== 'bin' || (c.op !== '<' && c.op !== '<=') || c.a.k !== 'var' || c.a.name !== name) return;
  const start = intervalOf(init.init, env, k), by = intervalOf(step, env, k), bound = intervalOf(c.b, env, k);
  if (by.lo === 0) return; // (a counter that may not move: its values are whatever the body sees)
  let hi = c.op === '<' ? bound.hi - 1 : bound.hi;
  // a constant start and step: the last value the counter takes
  if (start.lo === start.hi && by.lo === by.hi && hi >= start.lo) hi = start.lo + Math.floor((hi - start.lo) / by.lo) * by.lo;
  if (hi < start.lo) return;
  // (a step past 2^32 wraps around: then the counter may come back below its start)
  return [name, { lo: hi + by.hi > U32_MAX ? 0 : start.lo, hi }];
}

/** An access the analysis saw: the array, the interval of its index (or of a matrix's last element,
 *  or of a vector lane: array ''). */
export interface Access { readonly array: string; readonly span: Interval }

/** Every workgroup-array access of a kernel (index expressions and subgroup-matrix offsets) and every
 *  vector lane an intrinsic picks at run time, with the interval its elements lie in; keyed by the
 *  expression object the printer prints. */
export function workgroupAccesses(kernel: KernelIR): Map<Expr, Access> {
  const shared = new Set([...kernel.shared, ...(kernel.locals ?? [])].map((s) => s.name)); // (an invocation's local arrays as well)
  const k = { workgroupSize: kernel.workgroupSize, matrixSubgroups: usesMatrices(kernel) };
  const out = new Map<Expr, Access>();
  const visitExpr = (e: Expr, env: Env) => {
    if (e.k === 'index' && shared.has(e.array)) out.set(e, { array: e.array, span: intervalOf(e.index, env, k) });
    if (e.k === 'call' && intrinsicOf(e.fn)?.matrix && e.args[0]?.k === 'ref') {
      // a 16 × 16 matrix at `offset`, rows (or columns) `stride` apart: its last element is offset + 15·stride + 15
      const offset = intervalOf(e.args[1]!, env, k), stride = intervalOf(e.args[e.args.length - 1]!, env, k);
      out.set(e, { array: e.args[0].array, span: fits(offset.lo, offset.hi + 15 * stride.hi + 15) });
    }
    // a vector lane picked at run time
    const lanes = e.k === 'call' ? intrinsicOf(e.fn)?.lanes : undefined;
    if (e.k === 'call' && lanes) out.set(e, { array: '', span: intervalOf(e.args[1]!, env, k) });
    for (const c of children(e)) visitExpr(c, env);
  };
  const walk = (stmts: readonly Stmt[], outer: Env) => {
    const env = new Map(outer);
    for (const s of stmts) {
      switch (s.k) {
        case 'let':
          if (s.init) visitExpr(s.init, env);
          // immutable u32 values keep their interval; anything else shadows the name as unknown
          if (!s.mutable && s.init && s.ty === 'u32') env.set(`var:${s.name}`, intervalOf(s.init, env, k));
          else env.delete(`var:${s.name}`);
          break;
        case 'assign': visitExpr(s.target, env); visitExpr(s.value, env); break;
        case 'call': visitExpr(s.call, env); break;
        case 'if': {
          visitExpr(s.cond, env);
          const then = new Map(env);
          narrow(s.cond, then, k);
          walk(s.then, then);
          walk(s.else, env);
          break;
        }
        case 'while': visitExpr(s.cond, env); walk(s.body, withoutAssigned(env, s.body)); break;
        case 'for': {
          if (s.init?.k === 'let' && s.init.init) visitExpr(s.init.init, env);
          const inner = withoutAssigned(new Map(env), s.body);
          const c = counter(s, env, k);
          if (s.init?.k === 'let') inner.delete(`var:${s.init.name}`);
          if (c) inner.set(`var:${c[0]}`, c[1]);
          if (s.cond) visitExpr(s.cond, inner);
          walk(s.body, inner);
          if (s.update?.k === 'assign') visitExpr(s.update.value, inner);
          break;
        }
        case 'break': case 'continue': case 'return': case 'barrier': break;
      }
    }
  };
  walk(kernel.body, new Map());
  return out;
}

/** (loops: names the body assigns lose what was known of them) */
function withoutAssigned(env: Map<string, Interval>, body: readonly Stmt[]): Map<string, Interval> {
  for (const key of [...env.keys()]) if (key.startsWith('var:') && assigns(body, key.slice(4))) env.delete(key);
  return env;
}
