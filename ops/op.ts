// What every op file exports: its shape rule, its float64 reference and (for ops that compute on the
// GPU) its lowering to the kernels written beside it. Leaves (inputs, weights, state, constants)
// name where their value comes from instead.
import type { Attr, Op, TensorType } from '../compiler/ir/op.js';
import { ShapeError } from '../compiler/errors.js';

export type { Op } from '../compiler/ir/op.js';

export function expectShape(t: TensorType, shape: readonly number[], what: string) {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
    throw new ShapeError(`${what} must be [${shape.join(',')}], got [${t.shape.join(',')}]`);
}
export function expectDtype(t: TensorType, dtypes: readonly string[], what: string) {
  if (!dtypes.includes(t.dtype)) throw new ShapeError(`${what} must be ${dtypes.join(' or ')}, got ${t.dtype}`);
}
export const elems = (t: TensorType) => t.shape.reduce((a, b) => a * b, 1);
/** Workgroups for one invocation per element. */
export const groupsFor = (n: number, size: number) => Math.ceil(n / size);

/** Which sources carry one row per position, and how an op written for one position runs on many. */
export interface RowSpec<A extends Attr = Attr> {
  /** sources with a row per position: [n] for one position, [T, n] for a block of T, [B, T, n] for a
   *  block of T positions in each of B sequences */
  rows: (attr: A, nSrcs: number) => readonly number[];
  /** the token-id source: [1] for one position, [T, 1] or [B, T, 1] for a block */
  token?: number;
  /** the position source: row t of a sequence sits at position pos + t */
  pos?: number;
  /** per-sequence states (KV caches): [ctx, w] for one sequence, [B, ctx, w] for B */
  states?: readonly number[];
  /** false for ops that return a state they updated in place (the cache), which has no rows */
  outRows?: boolean;
}

/** How many leading dimensions beyond a single position's a row source has: 0 (one position),
 *  1 ([T, ...]: a block of positions) or 2 ([B, T, ...]: a block in each of B sequences). */
const leadOf = (shape: readonly number[], singleRank: number) => shape.length - singleRank;
/** Whether a row source (or a node computed from them) holds a block of positions. A block may have
 *  one row (the last position of a prefill). */
export const isBlock = (shape: readonly number[], singleRank = 1) => leadOf(shape, singleRank) > 0;
/** Rows of a block, all sequences together (1 for a single position). */
export const rowsOf = (shape: readonly number[], singleRank = 1) => shape.slice(0, Math.max(0, leadOf(shape, singleRank))).reduce((a, b) => a * b, 1);
/** Positions per sequence in a block: row r is position pos + r % seqLen of sequence r / seqLen. */
export const seqLenOf = (shape: readonly number[], singleRank = 1) => (leadOf(shape, singleRank) > 0 ? shape[leadOf(shape, singleRank) - 1]! : 1);

/** Lift an op written for one position to a block of positions (of one or several sequences): shape
 *  rule and float64 reference run row by row (row t at position pos + t, each sequence with its own
 *  states, updated in order, so attention at row t sees the keys of rows ≤ t of its sequence).
 *  Kernels read the block's shape from the shapes themselves. */
export function overRows<A extends Attr>(op: Op<A>, spec: RowSpec<A>): Op<A> {
  const rowSet = (attr: A, n: number) => {
    const rows = new Set(spec.rows(attr, n));
    if (spec.token !== undefined) rows.add(spec.token);
    return rows;
  };
  const states = new Set(spec.states ?? []);
  const split = (srcs: readonly TensorType[], attr: A) => {
    const rows = rowSet(attr, srcs.length);
    const blocks = srcs.filter((s, i) => rows.has(i) && isBlock(s.shape));
    if (blocks.length === 0) return { lead: [] as number[], single: srcs };
    const first = blocks[0]!;
    // the leading dims: those of any row source beyond its single rank (token ids and vectors are rank 1)
    const L = first.shape.length - 1;
    const dims = first.shape.slice(0, L);
    if (L > 2) throw new ShapeError(`a block is [T, ...] or [B, T, ...], got [${first.shape}]`);
    srcs.forEach((s, i) => {
      if (rows.has(i) && (s.shape.length !== L + 1 || s.shape.slice(0, L).some((d, j) => d !== dims[j])))
        throw new ShapeError(`source ${i} must have a row for each of the [${dims}] positions, got [${s.shape}]`);
      if (states.has(i) && L === 2 && (s.shape.length !== 3 || s.shape[0] !== dims[0])) throw new ShapeError(`state source ${i} must hold ${dims[0]} sequences, got [${s.shape}]`);
    });
    const single = srcs.map((s, i) => (rows.has(i) ? { ...s, shape: s.shape.slice(L) } : states.has(i) && L === 2 ? { ...s, shape: s.shape.slice(1) } : s));
    return { lead: dims, single };
  };
  return {
    ...op,
    infer(srcs, attr) {
      const { lead, single } = split(srcs, attr);
      const out = op.infer(single, attr);
      if (lead.length === 0) return out;
      if (spec.outRows === false) return lead.length === 2 ? { ...out, shape: [lead[0]!, ...out.shape] } : out; // the state, per sequence
      return { ...out, shape: [...lead, ...out.shape] };
    },
    reference(srcs, attr, shapes) {
      const types = shapes.srcs.map((shape) => ({ shape, dtype: 'f32' as const }));
      const { lead, single } = split(types, attr);
      if (lead.length === 0) return op.reference(srcs, attr, shapes);
      const rows = rowSet(attr, srcs.length);
      const [B, T] = lead.length === 2 ? [lead[0]!, lead[1]!] : [1, lead[0]!];
      const out = spec.outRows === false ? shapes.out.slice(lead.length === 2 ? 1 : 0) : shapes.out.slice(lead.length);
      const per = out.reduce((a, b) => a * b, 1);
      const result = spec.outRows === false ? undefined : new Float64Array(B * T * per);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++) {
          const args = srcs.map((s, i) => {
            if (i === spec.pos) return Float64Array.of(s[0]! + t);
            if (states.has(i) && B > 1) { const n = s.length / B; return s.subarray(b * n, (b + 1) * n); }
            if (!rows.has(i)) return s;
            const n = s.length / (B * T);
            return s.subarray((b * T + t) * n, (b * T + t + 1) * n);
          });
          const v = op.reference(args, attr, { srcs: single.map((s) => s.shape), out });
          result?.set(v, (b * T + t) * per);
        }
      // an op that updates a state in place returns that state, now updated for every sequence
      return result ?? srcs[spec.states![0]!]!;
    },
  };
}
