// What a hooked run reads and writes at hooks, as plain data: the interventions a user asks for
// (turned into the per-hook tables x -> x * a + b the plan's intervene kernels apply) and the cache
// entries a run returns, narrowed to the positions and heads a hook selector names.
import { UsageError } from '../../compiler/errors.js';
import type { Graph } from '../../compiler/ir/graph.js';
import { selectHooks, type HookSelection } from '../../compiler/hooks.js';

/** An edit at a hook (a selector: `[pos=..]` and `[head=..]` narrow it). `replace` gives the hook's
 *  values at every position ([pos, ...], e.g. another run's cache entry); `add` and `mean` one vector.
 *  `fn` is a JavaScript function of the hook's values ([pos, ...] flat, one whole hook: no filters)
 *  returning the new values (or editing them in place): runtime/interp/hook_fns.ts. */
export type Intervention = { hook: string } & (
  | { replace: Float32Array }
  | { add: Float32Array }
  | { scale: number }
  | { zero: true }
  | { mean: Float32Array }
  | { fn: HookFunction });

/** TransformerLens's hook function: the hook's values in, the edited values out (or `act` edited in place). */
export type HookFunction = (act: Float32Array, hook: string) => Float32Array | void;

/** A hook's values over the positions of a run: TransformerLens's shape, [batch=1, pos, ...]. */
export interface CacheEntry { shape: number[]; data: Float32Array }

export function checkSelection(s: HookSelection, shape: readonly number[], positions: number) {
  if (s.head !== undefined && (shape.length !== 2 || s.head < 0 || s.head >= shape[0]!))
    throw new UsageError(shape.length !== 2 ? `${s.hook} has no heads` : `${s.key}: head ${s.head} is out of range (0..${shape[0]! - 1})`);
  if (s.pos !== undefined && (s.pos >= positions || s.pos < -positions))
    throw new UsageError(`${s.key}: position ${s.pos} is out of range for ${positions} tokens`);
}

export /** A hook's [pos, ...shape] values, narrowed to one head and/or one position; shaped [1, pos, ...]. */
function sliceSelection(s: HookSelection, all: Float32Array, shape: readonly number[], positions: number): CacheEntry {
  const per = shape.reduce((a, b) => a * b, 1);
  if (s.pos === undefined && s.head === undefined) return { shape: [1, positions, ...shape], data: all.slice(0, positions * per) }; // the whole hook: one copy
  const ps = s.pos === undefined ? [...Array(positions).keys()] : [s.pos < 0 ? positions + s.pos : s.pos];
  const inner = s.head === undefined ? per : shape[1]!;
  const data = new Float32Array(ps.length * inner);
  ps.forEach((p, i) => data.set(all.subarray(p * per + (s.head ?? 0) * inner, p * per + (s.head ?? 0) * inner + inner), i * inner));
  return { shape: [1, ps.length, ...(s.head === undefined ? shape : [shape[1]!])], data };
}

/** Per hook, the tables a, b of x -> x * a + b over [rows, size]; untouched entries stay (1, 0). */
export function interventionTables(list: readonly Intervention[], hooks: Graph['hooks'], names: readonly string[], rows: number) {
  const tables = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const iv of list) {
    for (const sel of selectHooks(iv.hook, names)) {
      const h = hooks[sel.hook]!;
      checkSelection(sel, h.shape, rows);
      const size = h.node.size;
      let t = tables.get(sel.hook);
      if (!t) tables.set(sel.hook, (t = { a: new Float32Array(rows * size).fill(1), b: new Float32Array(rows * size) }));
      const positions = sel.pos === undefined ? [...Array(rows).keys()] : [sel.pos < 0 ? rows + sel.pos : sel.pos];
      const [e0, e1] = sel.head === undefined ? [0, size] : [sel.head * h.shape[1]!, (sel.head + 1) * h.shape[1]!];
      const need = (v: Float32Array, n: number, what: string) => { if (v.length !== n) throw new UsageError(`${iv.hook}: ${what} has ${v.length} values, expected ${n}`); };
      if ('fn' in iv) throw new Error('internal: hook functions are run before the tables (runtime/interp/hook_fns.ts)');
      if ('replace' in iv) need(iv.replace, rows * size, 'the replacement');
      if ('add' in iv) need(iv.add, size, 'the added vector');
      if ('mean' in iv) need(iv.mean, size, 'the mean');
      for (const p of positions)
        for (let e = e0; e < e1; e++) {
          const k = p * size + e;
          if ('replace' in iv) { t.a[k] = 0; t.b[k] = iv.replace[k]!; }
          else if ('add' in iv) t.b[k]! += iv.add[e]!;
          else if ('scale' in iv) { t.a[k]! *= iv.scale; t.b[k]! *= iv.scale; }
          else if ('zero' in iv) { t.a[k] = 0; t.b[k] = 0; }
          else { t.a[k] = 0; t.b[k] = iv.mean[e]!; }
        }
    }
  }
  return tables;
}

export /** Attention patterns are staged as one [head, context] row per query; TransformerLens gives them as
 *  [batch, head, query, key] over the keys of this run. */
function patternSelection(s: HookSelection, all: Float32Array, shape: readonly number[], n: number): CacheEntry {
  const [heads, ctx] = shape as [number, number];
  const hs = s.head === undefined ? [...Array(heads).keys()] : [s.head];
  const qs = s.pos === undefined ? [...Array(n).keys()] : [s.pos < 0 ? n + s.pos : s.pos];
  const data = new Float32Array(hs.length * qs.length * n);
  hs.forEach((h, i) => qs.forEach((q, j) => data.set(all.subarray(q * heads * ctx + h * ctx, q * heads * ctx + h * ctx + n), (i * qs.length + j) * n)));
  return { shape: s.head === undefined ? [1, heads, qs.length, n] : [1, qs.length, n], data };
}
