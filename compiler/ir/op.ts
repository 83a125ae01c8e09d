// What an op is, and the node that applies one. An op (each in its own file under ops/) states its
// shape rule, its float64 reference and, if it computes on the GPU, its lowering to kernel dispatches;
// a leaf (input, weight, state, constant) says where its value comes from instead. The compiler
// reads ops only through this interface: it knows no particular one.
import type { DType } from './dtype.js';
import type { FragmentIR } from '../kernel/ir.js';
import type { FragmentUse } from '../kernel/compose.js';

/** An attribute value: a scalar, a list, or a record (e.g. a fused kernel's epilogues). */
export type AttrValue = string | number | boolean | readonly AttrValue[] | { readonly [key: string]: AttrValue };
export type Attr = { readonly [key: string]: AttrValue };

export interface TensorType {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** Shapes a reference sees: its sources' and its own. */
export interface RefShapes {
  readonly srcs: readonly (readonly number[])[];
  readonly out: readonly number[];
}

/** An op applied to source nodes with an attribute record. Built only by a graph builder
 *  (compiler/ir/graph.ts), which hash-conses them: equal subgraphs are the same object. */
export interface Node {
  readonly id: number;
  readonly op: Op;
  readonly srcs: readonly Node[];
  readonly attr: Attr;
  readonly type: TensorType;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** elements in the tensor */
  readonly size: number;
}

/** Where a leaf's value comes from: written by the host per step, loaded from the model file, kept
 *  across steps (the KV cache), or computed once from the leaf's own reference (the RoPE table). */
export type LeafKind = 'input' | 'weight' | 'state' | 'const';

export interface Op<A extends Attr = Attr> {
  readonly name: string;
  /** output type from source types; throws ShapeError on a mismatch */
  infer(srcs: readonly TensorType[], attr: A): TensorType;
  /** the plain float64 meaning of the op (leaf ops read their value from the environment) */
  reference(srcs: Float64Array[], attr: A, shapes: RefShapes): Float64Array;
  /** true for ops that update their first source in place and return it (the KV-cache write) */
  readonly inPlace?: boolean;
  /** set for leaves: where the value comes from */
  readonly leaf?: LeafKind;
  /** GPU work: the dispatches that compute `n` (ops without one are leaves, or values another
   *  node's kernel writes: see `storeOf`) */
  lower?(n: Node, ctx: LowerCtx): void;
  /** for a value that another node's kernel writes as its k-th extra output (a tap that survived
   *  fusion): that node and k. Such a node dispatches nothing of its own. */
  storeOf?(n: Node): { of: Node; k: number };
  /** the ops of the unfused graph a (fused) node stands for, for pictures and reports */
  describe?(n: Node): string[];
  /** reverse mode (compiler/grad.ts): given `dy`, the gradient of a scalar with respect to this node's
   *  value, the gradient with respect to each source, built from ops with `b`; undefined where this op
   *  gives none (weights, token ids, positions). A gradient asked through an op without it is an error. */
  vjp?(n: Node, dy: Node, b: Builder): readonly (Node | undefined)[];
}

export const leafKind = (n: Node): LeafKind | undefined => n.op.leaf;

/** What rules and graph edits build nodes with (compiler/ir/graph.ts's GraphBuilder). */
export interface Builder {
  apply<A extends Attr>(op: Op<A>, srcs: readonly Node[], attr: A): Node;
}

export type BufId = string;

/** Positions `from` (inclusive) to `below` (exclusive), either end open. */
export interface PosRange { readonly from?: number; readonly below?: number }
export const inRange = (r: PosRange | undefined, pos: number) => !r || ((r.from === undefined || pos >= r.from) && (r.below === undefined || pos < r.below));

export interface Chunk { readonly buf: BufId; readonly rowStart: number; readonly rows: number }

/** What an op's lowering may ask for (compiler/plan.ts provides it). */
export interface LowerCtx {
  /** the buffer holding a (non-weight) node's value */
  buf(n: Node): BufId;
  /** a weight, split by rows so each piece fits one storage binding */
  chunks(n: Node): readonly Chunk[];
  /** a private buffer of `floats` f32 for this node (e.g. attention scores) */
  scratch(n: Node, name: string, floats: number): BufId;
  /** one private buffer of the whole plan, at least `floats` f32, for values a kernel makes and the
   *  next dispatch consumes (shared by every node that asks for it by this name) */
  planScratch(name: string, floats: number): BufId;
  /** `when`: only for passes whose first position lies in that range */
  dispatch(kernel: string, bind: Record<string, BufId>, uniforms: Record<string, number>, groups: number, when?: PosRange): void;
  /** a kernel with epilogue fragments spliced into its holes; returns its name for dispatch() */
  compose(kernel: string, fragments: readonly FragmentUse[]): string;
  /** an epilogue fragment by name */
  fragment(name: string): FragmentIR;
  /** the buffer for node `n`'s k-th store (the value of its stored node, or scratch if none reads it) */
  stored(n: Node, k: number): BufId;
  /** storage buffers a kernel may bind (the device's maxStorageBuffersPerShaderStage) */
  readonly maxStorageBuffers: number;
  /** the largest storage binding (Target.maxBindingBytes) */
  readonly maxBindingBytes: number;
  /** columns one split of a prefill matrix product sums at most (Target.splitCols) */
  readonly splitCols?: number;
  /** how far a transposed product splits along its rows (Target.transposedSplit) */
  readonly transposedSplit?: { readonly groups: number; readonly minRows: number };
  /** the device multiplies f16 subgroup matrices (Target.matrices) */
  readonly matrices?: boolean;
  /** rows from which a prefill product takes the 128 × 128 tensor tiles (Target.tensorWideRows) */
  readonly tensorWideRows?: number;
  /** the most rows a prefill product that splits has (Target.splitMaxRows) */
  readonly splitMaxRows?: number;
}
