// What every op file exports: its shape rule, its float64 reference and (for ops that compute on the
// GPU) its lowering to the kernels written beside it. Leaves (inputs, weights, state, constants)
// name where their value comes from instead.
import type { Attr, OpDef, TensorType } from '../compiler/graph.js';
import type { LeafKind, Lowering } from '../compiler/plan.js';
import { ShapeError } from '../compiler/errors.js';

export type Op<A extends Attr = Attr> = OpDef<A> & Partial<Lowering> & { readonly leaf?: LeafKind };

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

/** Which sources carry one row per position, and how an op written for one position runs on T. */
export interface RowSpec<A extends Attr = Attr> {
  /** sources with a row per position: [n] for one position, [T, n] for a block of T */
  rows: (attr: A, nSrcs: number) => readonly number[];
  /** the token-id source: [1] for one position, [T, 1] for a block */
  token?: number;
  /** the position source: row t sits at position pos + t */
  pos?: number;
  /** false for ops that return a state they updated in place (the cache), which has no rows */
  outRows?: boolean;
}

/** Whether a row source (or a node computed from them) holds a block of positions: one more dimension
 *  than a single position has. A block may have one row (the last position of a prefill). */
export const isBlock = (shape: readonly number[], singleRank = 1) => shape.length > singleRank;
/** Rows of a block (1 for a single position). */
export const rowsOf = (shape: readonly number[], singleRank = 1) => (isBlock(shape, singleRank) ? shape[0]! : 1);

/** Lift an op written for one position to a block of T positions: shape rule and float64 reference
 *  run row by row (row t at position pos + t, in-place states updated in order, so attention at row t
 *  sees the keys of rows ≤ t). Kernels read T from the shapes themselves. */
export function overRows<A extends Attr>(op: Op<A>, spec: RowSpec<A>): Op<A> {
  const split = (srcs: readonly TensorType[], attr: A) => {
    const rows = new Set(spec.rows(attr, srcs.length));
    if (spec.token !== undefined) rows.add(spec.token);
    const blocks = srcs.filter((s, i) => rows.has(i) && isBlock(s.shape));
    if (blocks.length === 0) return { T: 0, single: srcs };
    const T = blocks[0]!.shape[0]!;
    srcs.forEach((s, i) => {
      if (rows.has(i) && (!isBlock(s.shape) || s.shape[0] !== T)) throw new ShapeError(`source ${i} must have a row for each of the ${T} positions, got [${s.shape}]`);
    });
    return { T, single: srcs.map((s, i) => (rows.has(i) ? { ...s, shape: s.shape.slice(1) } : s)) };
  };
  return {
    ...op,
    infer(srcs, attr) {
      const { T, single } = split(srcs, attr);
      const out = op.infer(single, attr);
      return T === 0 || spec.outRows === false ? out : { ...out, shape: [T, ...out.shape] };
    },
    reference(srcs, attr, shapes) {
      const types = shapes.srcs.map((shape) => ({ shape, dtype: 'f32' as const }));
      const { T, single } = split(types, attr);
      if (T === 0) return op.reference(srcs, attr, shapes);
      const rows = new Set(spec.rows(attr, srcs.length));
      if (spec.token !== undefined) rows.add(spec.token);
      const out = spec.outRows === false ? shapes.out : shapes.out.slice(1);
      const per = out.reduce((a, b) => a * b, 1);
      const result = spec.outRows === false ? undefined : new Float64Array(T * per);
      let last: Float64Array | undefined;
      for (let t = 0; t < T; t++) {
        const args = srcs.map((s, i) => {
          if (i === spec.pos) return Float64Array.of(s[0]! + t);
          if (!rows.has(i)) return s;
          const n = s.length / T;
          return s.subarray(t * n, (t + 1) * n);
        });
        last = op.reference(args, attr, { srcs: single.map((s) => s.shape), out });
        result?.set(last, t * per);
      }
      return result ?? last!;
    },
  };
}
