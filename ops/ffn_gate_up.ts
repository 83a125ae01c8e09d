// The SwiGLU front half in one kernel (the seed's fusedRmsNormFFNGateUp): RMS-norm of x, the gate and
// up projections, and silu(gate) * up. Sources: [x, nw, Wg, Wu]. Holes 'gate' and 'up' see the two
// projections (taps on mlp.hook_pre / hook_pre_linear store there).
import { type Invocation, type In, type Out, type Spec, type u32, type u32x4, type f32x4, epilogue, f32, idiv, sharedF32 } from '../compiler/kernel/dsl.js';
import { epiloguesOf, lowerEpilogues, type EpilogueUse } from './epilogues.js';
import { workgroupSum } from './reduce.js';
import { type Op, isBlock, overRows, rowsOf } from './op.js';
import { WTYPE, weightAt } from './dequant.js';
import { matvec, lowerMatvec, type MatvecCall, clearSets, fourRowsQ8, rowDot2F16, sumLanes, sumLanes4, wideFor, wideGrid } from './matvec.js';
import { siluMul } from './silu_mul.js';
import { expectShape } from './op.js';
import type { Node } from '../compiler/ir/graph.js';

export type FfnGateUpAttr = { eps: number; epilogues?: readonly EpilogueUse[] };

export const ffnGateUp: Op<FfnGateUpAttr> = overRows<FfnGateUpAttr>({
  name: 'ffn_gate_up',
  describe: () => ['rmsnorm', 'matvec (gate)', 'matvec (up)', 'silu_mul'],
  infer([x, nw, wg, wu], a) {
    const g = matvec.infer([wg!, x!, nw!], { norm: true, eps: a.eps });
    expectShape(matvec.infer([wu!, x!, nw!], { norm: true, eps: a.eps }), g.shape, 'up projection');
    return g;
  },
  reference([x, nw, wg, wu], a, s) {
    const mv = (w: Float64Array, shape: readonly number[]) => matvec.reference([w, x!, nw!], { norm: true, eps: a.eps }, { srcs: [shape, s.srcs[0]!, s.srcs[1]!], out: s.out });
    return siluMul.reference([mv(wg!, s.srcs[2]!), mv(wu!, s.srcs[3]!)], {}, { srcs: [s.out, s.out], out: s.out });
  },
  lower(n, ctx) {
    const [x, nw, wg, wu] = n.srcs;
    const cg = ctx.chunks(wg!), cu = ctx.chunks(wu!);
    const hidden = n.shape[n.shape.length - 1]!, T = rowsOf(n.shape);
    if (cg.length === 1 && cu.length === 1 && !isBlock(n.shape)) {
      // 16-byte loads
      const wide = wideFor([wg!, wu!], x!.shape[0]!);
      if (wide && hidden % wide.ffnRows === 0) {
        const e = lowerEpilogues(n, ctx, wide.ffn, []);
        const { lanes, groups } = wideGrid(wide, hidden, x!.shape[0]!, wide.ffnRows);
        ctx.dispatch(e.kernel, { ...e.bind, x: ctx.buf(x!), nw: ctx.buf(nw!), wg: cg[0]!.buf, wu: cu[0]!.buf, out: ctx.buf(n) },
          { ...e.uniforms, rows: hidden, cols: x!.shape[0]!, eps: n.attr.eps as number, lanes }, groups);
        return;
      }
      const e = lowerEpilogues(n, ctx, 'ffnGateUpKernel', []);
      ctx.dispatch(e.kernel, { ...e.bind, x: ctx.buf(x!), nw: ctx.buf(nw!), wg: cg[0]!.buf, wu: cu[0]!.buf, out: ctx.buf(n) },
        { ...e.uniforms, rows: hidden, cols: x!.shape[0]!, eps: n.attr.eps as number, gtype: WTYPE[wg!.dtype]!, utype: WTYPE[wu!.dtype]! }, hidden);
      return;
    }
    // several positions, or weights too big for one binding: normed matvecs (or matrix products) into
    // scratch (or into the taps' buffers), then silu·mul
    const taps = epiloguesOf(n).map((e) => e.hole);
    const at = (hole: string) => (taps.includes(hole) ? ctx.stored(n, taps.indexOf(hole)) : ctx.scratch(n, hole, hidden * T));
    const g = at('gate'), u = at('up');
    const normed = (w: Node): MatvecCall => ({ owner: n, w, x: x!, norm: { weight: nw!, eps: n.attr.eps as number }, epilogues: [], vectors: [] });
    lowerMatvec(normed(wg!), ctx, g, 0, hidden);
    lowerMatvec(normed(wu!), ctx, u, 0, hidden);
    ctx.dispatch('siluMulKernel', { gate: g, up: u, out: ctx.buf(n) }, { n: n.size }, Math.ceil(n.size / 64));
  },
}, { rows: () => [0] });

/** @kernel @workgroupSize 64 */
export function ffnGateUpKernel(id: Invocation, x: In<f32>, nw: In<f32>, wg: In<u32>, wu: In<u32>, out: Out<f32>,
  rows: u32, cols: u32, eps: f32, gtype: Spec<u32>, utype: Spec<u32>) {
  const gates = sharedF32(64);
  const ups = sharedF32(64);
  const squares = sharedF32(64);
  const row: u32 = id.group;
  if (row >= rows) {
    return;
  }
  let g: f32 = 0;
  let up: f32 = 0;
  let ss: f32 = 0;
  for (let c: u32 = id.local; c < cols; c += id.size) {
    const xv: f32 = x[c];
    ss += xv * xv;
    const xn: f32 = xv * nw[c];
    g += weightAt(wg, gtype, rows, cols, row, c) * xn;
    up += weightAt(wu, utype, rows, cols, row, c) * xn;
  }
  gates[id.local] = g;
  ups[id.local] = up;
  squares[id.local] = ss;
  workgroupSum(gates, id);
  workgroupSum(ups, id);
  workgroupSum(squares, id);
  if (id.local === 0) {
    const scale: f32 = 1 / Math.sqrt(squares[0] / f32(cols) + eps);
    const gv: f32 = epilogue(gates[0] * scale, row, 'gate');
    const uv: f32 = epilogue(ups[0] * scale, row, 'up');
    out[row] = (gv / (1 + Math.exp(-gv))) * uv;
  }
}

/** ffnGateUpKernel for f16 weights in 16-byte loads: 8 rows a workgroup, each row's gate and up. */
/** @kernel @workgroupSize 256 */
export function ffnGateUpF16Kernel(id: Invocation, x: In<f32x4>, nw: In<f32x4>, wg: In<u32x4>, wu: In<u32x4>, out: Out<f32>,
  rows: u32, cols: u32, eps: f32, lanes: Spec<u32>) {
  const gates = sharedF32(256);
  const ups = sharedF32(256);
  const squares = sharedF32(256);
  const lane: u32 = id.local % lanes;
  const row: u32 = id.group * idiv(256, lanes) + idiv(id.local, lanes);
  const c8: u32 = cols >> 3;
  gates[id.local] = 0;
  ups[id.local] = 0;
  squares[id.local] = 0;
  if (row < rows) {
    rowDot2F16(wg, wu, row, c8, x, nw, lane, lanes, gates, ups, squares, id);
  }
  sumLanes(gates, lane, lanes, id);
  sumLanes(ups, lane, lanes, id);
  sumLanes(squares, lane, lanes, id);
  if (lane === 0 && row < rows) {
    const scale: f32 = 1 / Math.sqrt(squares[id.local] / f32(cols) + eps);
    const gv: f32 = epilogue(gates[id.local] * scale, row, 'gate');
    const uv: f32 = epilogue(ups[id.local] * scale, row, 'up');
    out[row] = (gv / (1 + Math.exp(-gv))) * uv;
  }
}

/** ffnGateUpF16Kernel for q8_0 weights (hidden % 2 = 0): a set of `lanes` invocations takes two rows of
 *  each matrix (fourRowsQ8: gate r, r + 1, up r, r + 1), so x is loaded once for four rows. */
/** @kernel @workgroupSize 256 */
export function ffnGateUpQ8Kernel(id: Invocation, x: In<f32x4>, nw: In<f32x4>, wg: In<u32x4>, wu: In<u32x4>, out: Out<f32>,
  rows: u32, cols: u32, eps: f32, lanes: Spec<u32>) {
  const dots = sharedF32(1024);
  const squares = sharedF32(256);
  const lane: u32 = id.local % lanes;
  const r: u32 = 2 * (id.group * idiv(256, lanes) + idiv(id.local, lanes));
  clearSets(dots, squares, id);
  if (r < rows) {
    fourRowsQ8(wg, r, rows, wg, r + 1, rows, wu, r, rows, wu, r + 1, rows, cols, x, nw, 1, lane, lanes, dots, squares, id);
  }
  sumLanes4(dots, squares, lane, lanes, id);
  const first: u32 = id.local - lane;
  if (lane < 2 && r + lane < rows) {
    const scale: f32 = 1 / Math.sqrt(squares[first] / f32(cols) + eps);
    const gv: f32 = epilogue(dots[lane * 256 + first] * scale, r + lane, 'gate');
    const uv: f32 = epilogue(dots[(2 + lane) * 256 + first] * scale, r + lane, 'up');
    out[r + lane] = (gv / (1 + Math.exp(-gv))) * uv;
  }
}
