// Matrix-vector product: W [rows, cols] times x [cols] -> [rows]. Every decode-time projection.
// W may be f32, f16, bf16, q8_0 or q4_0; it is dequantized element by element inside the kernel.
import { type Invocation, type In, type Out, type Spec, type f32, type u32, sharedF32, workgroupBarrier } from '../compiler/kernel/dsl.js';
import { type Op, expectDtype } from './op.js';
import { BLOCK, WEIGHT_DTYPES, WTYPE, weightAt } from './dequant.js';
import { ShapeError } from '../compiler/errors.js';

export const matvec: Op = {
  name: 'matvec',
  infer([w, x]) {
    if (w!.shape.length !== 2 || x!.shape.length !== 1) throw new ShapeError('matvec takes a matrix and a vector');
    if (w!.shape[1] !== x!.shape[0]) throw new ShapeError(`matrix has ${w!.shape[1]} columns but the vector has ${x!.shape[0]} elements`);
    expectDtype(w!, WEIGHT_DTYPES, 'matvec weight');
    if (w!.shape[1]! % BLOCK[w!.dtype]![0] !== 0) throw new ShapeError(`${w!.dtype} rows must be whole blocks of ${BLOCK[w!.dtype]![0]}, got ${w!.shape[1]} columns`);
    return { shape: [w!.shape[0]!], dtype: 'f32' };
  },
  reference([w, x], _, shapes) {
    const [rows, cols] = shapes.srcs[0] as [number, number];
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += w![r * cols + c]! * x![c]!;
      out[r] = acc;
    }
    return out;
  },
  lower(n, ctx) {
    const w = n.srcs[0]!;
    const cols = w.shape[1]!;
    // one workgroup per row; a weight split to fit the binding limit is one dispatch per piece
    for (const c of ctx.chunks(w))
      ctx.dispatch('matvecKernel', { w: c.buf, x: ctx.buf(n.srcs[1]!), out: ctx.buf(n) }, { rows: c.rows, cols, outOffset: c.rowStart, wtype: WTYPE[w.dtype]! }, c.rows);
  },
};

/** A workgroup per output row: strided partial dot products, then a tree reduction. */
/** @kernel @workgroupSize 64 */
export function matvecKernel(id: Invocation, w: In<u32>, x: In<f32>, out: Out<f32>, rows: u32, cols: u32, outOffset: u32, wtype: Spec<u32>) {
  const partial = sharedF32(64);
  const row: u32 = id.group;
  if (row >= rows) {
    return;
  }
  let acc: f32 = 0;
  for (let c: u32 = id.local; c < cols; c += id.size) {
    acc += weightAt(w, wtype, rows, cols, row, c) * x[c];
  }
  partial[id.local] = acc;
  workgroupBarrier();
  for (let s: u32 = id.size >> 1; s > 0; s >>= 1) {
    if (id.local < s) {
      partial[id.local] += partial[id.local + s];
    }
    workgroupBarrier();
  }
  if (id.local === 0) {
    out[outOffset + row] = partial[0];
  }
}
