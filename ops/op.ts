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
