// Matrix-vector product: W [rows, cols] times x [cols] -> [rows]. Every decode-time projection.
// W may be f32, f16, bf16, q8_0 or q4_0; it is dequantized element by element inside the kernel.
// Fusion extends it without new kernel source: `norm` folds the RMSNorm of x (weight nw) into the
// dot product, and `epilogues` splice fragments (residual/bias add, scale) into the store.
// Sources: [W, x, nw if norm, ...one vector per `add` epilogue].
import { type Invocation, type In, type Out, type Spec, type u32, epilogue, f32, sharedF32 } from '../compiler/kernel/dsl.js';
import { workgroupSum } from './reduce.js';
import { type Op, expectDtype, expectShape } from './op.js';
import { BLOCK, WEIGHT_DTYPES, WTYPE, weightAt } from './dequant.js';
import { EPILOGUES, epilogueArrays, lowerEpilogues, parseEpilogues } from './epilogues.js';
import { ShapeError } from '../compiler/errors.js';
import type { Node } from '../compiler/graph.js';
import type { LowerCtx } from '../compiler/plan.js';

export type MatvecAttr = { norm?: boolean; eps?: number; epilogues?: string };

export const matvec: Op<MatvecAttr> = {
  name: 'matvec',
  infer([w, x, ...rest], a) {
    if (w!.shape.length !== 2 || x!.shape.length !== 1) throw new ShapeError('matvec takes a matrix and a vector');
    if (w!.shape[1] !== x!.shape[0]) throw new ShapeError(`matrix has ${w!.shape[1]} columns but the vector has ${x!.shape[0]} elements`);
    expectDtype(w!, WEIGHT_DTYPES, 'matvec weight');
    if (w!.shape[1]! % BLOCK[w!.dtype]![0] !== 0) throw new ShapeError(`${w!.dtype} rows must be whole blocks of ${BLOCK[w!.dtype]![0]}, got ${w!.shape[1]} columns`);
    const extra = (a.norm ? 1 : 0) + epilogueArrays(parseEpilogues(a.epilogues));
    if (rest.length !== extra) throw new ShapeError(`matvec with these attributes takes ${2 + extra} sources, got ${2 + rest.length}`);
    if (a.norm) expectShape(rest[0]!, x!.shape, 'norm weight');
    for (const y of rest.slice(a.norm ? 1 : 0)) expectShape(y, [w!.shape[0]!], 'epilogue vector');
    return { shape: [w!.shape[0]!], dtype: 'f32' };
  },
  reference([w, x, ...rest], a, shapes) {
    const [rows, cols] = shapes.srcs[0] as [number, number];
    let xs = x!;
    if (a.norm) {
      let ss = 0;
      for (const v of xs) ss += v * v;
      const s = 1 / Math.sqrt(ss / cols + a.eps!);
      xs = xs.map((v, i) => v * s * rest[0]![i]!);
    }
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += w![r * cols + c]! * xs[c]!;
      out[r] = acc;
    }
    let next = a.norm ? 1 : 0;
    for (const e of parseEpilogues(a.epilogues)) {
      const def = EPILOGUES[e.name]!;
      const arrays = rest.slice(next, next + def.arrays);
      next += def.arrays;
      for (let r = 0; r < rows; r++) out[r] = def.reference(out[r]!, r, arrays, e.value);
    }
    return out;
  },
  lower(n, ctx) { lowerMatvec(n, ctx, ctx.buf(n), 0); },
};

/** Dispatch a (possibly fused) matvec node's rows into `out` at `offset`: one dispatch per weight piece. */
export function lowerMatvec(n: Node, ctx: LowerCtx, out: string, offset: number) {
  const [w, x, ...rest] = n.srcs;
  const a = n.attr as MatvecAttr;
  const e = lowerEpilogues(n, ctx, 'matvecKernel', rest.slice(a.norm ? 1 : 0));
  const bind: Record<string, string> = { ...e.bind, x: ctx.buf(x!), nw: a.norm ? ctx.buf(rest[0]!) : ctx.buf(x!), out };
  const uniforms: Record<string, number> = { ...e.uniforms, cols: w!.shape[1]!, eps: a.eps ?? 0, norm: a.norm ? 1 : 0, wtype: WTYPE[w!.dtype]! };
  for (const c of ctx.chunks(w!))
    ctx.dispatch(e.kernel, { ...bind, w: c.buf }, { ...uniforms, rows: c.rows, outOffset: offset + c.rowStart }, c.rows);
}

/** A workgroup per output row: strided partial dot products (and sums of squares for the norm),
 *  a tree reduction, then the epilogue at the store. */
/** @kernel @workgroupSize 64 */
export function matvecKernel(id: Invocation, w: In<u32>, x: In<f32>, nw: In<f32>, out: Out<f32>,
  rows: u32, cols: u32, outOffset: u32, eps: f32, wtype: Spec<u32>, norm: Spec<u32>) {
  const partial = sharedF32(64);
  const squares = sharedF32(64);
  const row: u32 = id.group;
  if (row >= rows) {
    return;
  }
  let acc: f32 = 0;
  let ss: f32 = 0;
  for (let c: u32 = id.local; c < cols; c += id.size) {
    const xv: f32 = x[c];
    ss += xv * xv;
    acc += weightAt(w, wtype, rows, cols, row, c) * (norm === 1 ? xv * nw[c] : xv);
  }
  partial[id.local] = acc;
  squares[id.local] = ss;
  workgroupSum(partial, id);
  if (norm === 1) {
    workgroupSum(squares, id);
  }
  if (id.local === 0) {
    const scale: f32 = norm === 1 ? 1 / Math.sqrt(squares[0] / f32(cols) + eps) : 1;
    out[outOffset + row] = epilogue(partial[0] * scale, outOffset + row);
  }
}
