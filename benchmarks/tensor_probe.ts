// Where the tensor-core product's time goes (issue 18), without a profiler: the 1B shape's prefill
// products over a block of 256 positions, each dispatch timed alone, by the kernel as it is and by copies
// of its IR with one part taken out: `no_mma` (the multiply-adds dropped: the matrix loads die with
// them), `no_stage` (the stores into the workgroup tiles dropped: the global loads that fed them die
// too: what is left is the multiply from tiles never written), `no_load` (the loads of the next step
// into registers dropped: tiles staged from registers never loaded). The copies' results are wrong;
// only their times are read.
//
//   node --no-concurrent-recompilation dist/benchmarks/tensor_probe.js   (prints JSON)
import { GraphBuilder } from '../compiler/ir/graph.js';
import { lowerGraph } from '../compiler/plan.js';
import type { KernelIR, Stmt } from '../compiler/kernel/ir.js';
import { fragments, kernels } from '../ops/kernels.gen.js';
import { OPSET, ops } from '../ops/index.js';
import { Executor } from '../runtime/executor.js';
import { getGpu, releaseGpu, targetOf } from '../runtime/gpu.js';
import { type WeightMap, f32Weight, weightOf } from '../runtime/weights.js';

const T = 256;
/** [name, rows, cols, norm]: the products of one layer (q as the 2048-row ones, k as 512, the FFN's) */
const SHAPES = [['q', 2048, 2048, true], ['k', 512, 2048, true], ['gate', 8192, 2048, true], ['down', 2048, 8192, false]] as const;

/** the kernel with every statement `drop` matches taken out, at any depth */
function without(k: KernelIR, drop: (s: Stmt) => boolean): KernelIR {
  const walk = (ss: Stmt[]): Stmt[] => ss.filter((s) => !drop(s)).map((s) =>
    s.k === 'if' ? { ...s, then: walk(s.then), else: walk(s.else) } : s.k === 'for' || s.k === 'while' ? { ...s, body: walk(s.body) } : s);
  return { ...k, body: walk(k.body) };
}
const assignsTo = (arrays: string[]) => (s: Stmt) => s.k === 'assign' && s.target.k === 'index' && arrays.includes(s.target.array);
const base = kernels.matmulTensorKernel!;
const PROBES: Record<string, KernelIR> = {
  full: base,
  no_mma: without(base, (s) => s.k === 'assign' && s.value.k === 'call' && s.value.fn === 'matrixMultiplyAdd'),
  no_stage: without(base, assignsTo(['xs', 'ws'])),
  no_load: without(base, assignsTo(['wq', 'xq'])),
};

const gpu = await getGpu();
const out: Record<string, unknown> = { device: gpu.adapterInfo, positions: T };
let seed = 7;
const rnd = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5));
try {
  if (!gpu.matrices.ok) throw new Error(`no subgroup matrices: ${gpu.matrices.why}`);
  for (const [name, rows, cols, norm] of SHAPES) {
    const g = new GraphBuilder(), o = ops(g);
    const srcs = [o.weight('w', [rows, cols], 'f16'), o.weight('x', [T, cols]), ...(norm ? [o.weight('nw', [cols])] : [])];
    const graph = g.finish({ out: g.apply(OPSET.ops.get('matvec')!, srcs, norm ? { norm: true, eps: 1e-5 } : {}) });
    const weights: WeightMap = new Map([['w', weightOf([rows, cols], 'f16', rnd(rows * cols))], ['x', f32Weight([T, cols], rnd(T * cols))], ['nw', f32Weight([cols], rnd(cols))]]);
    const row: Record<string, unknown> = {};
    for (const [probe, k] of Object.entries(PROBES)) {
      const plan = lowerGraph(graph, targetOf(gpu), { kernels: { ...kernels, matmulTensorKernel: k }, fragments });
      const ex = new Executor(gpu, plan, weights);
      try {
        ex.reset();
        for (let i = 0; i < 30; i++) await ex.run({}, 'out'); // clocks up
        let best = Infinity;
        for (let i = 0; i < 5; i++) {
          const p = await ex.profile({});
          const ns = [...(p ?? new Map()).entries()].filter(([kk]) => kk.startsWith('matmulTensorKernel')).reduce((s, [, v]) => s + v.ns, 0);
          best = Math.min(best, ns);
        }
        row[probe] = { us: +(best / 1e3).toFixed(1), tflops: +((2 * T * rows * cols) / best / 1e3).toFixed(1), dispatches: plan.dispatches.map((d) => d.kernel).join(' ') };
      } finally { ex.destroy(); }
    }
    out[name] = row;
  }
} catch (e) { out.error = String(e); }
console.log(JSON.stringify(out));
await releaseGpu();
