// Where the tensor-core products' time goes (issues 18, 19), without a profiler: the 1B shape's prefill
// products over a block of 256 positions and the backward's transposed ones over 16 (attribution
// patching's prompt), each dispatch timed alone, by the kernel as it is and by copies
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

/** [name, rows, cols, norm]: the products of one layer (q as the 2048-row ones, k as 512, the FFN's) */
const SHAPES = [['q', 2048, 2048, true], ['k', 512, 2048, true], ['gate', 8192, 2048, true], ['down', 2048, 8192, false]] as const;
/** the forward's products over a prefill block, the backward's transposed ones over a 16-token prompt */
const RUNS = [{ kernel: 'matmulTensorKernel', T: 256, stage: ['xs', 'ws'], load: ['wq', 'xq'] }, { kernel: 'matmulTTensorKernel', T: 16, stage: ['ws', 'ds'], load: ['wq', 'dq'] }] as const;

/** the kernel with every statement `drop` matches taken out, at any depth */
function without(k: KernelIR, drop: (s: Stmt) => boolean): KernelIR {
  const walk = (ss: Stmt[]): Stmt[] => ss.filter((s) => !drop(s)).map((s) =>
    s.k === 'if' ? { ...s, then: walk(s.then), else: walk(s.else) } : s.k === 'for' || s.k === 'while' ? { ...s, body: walk(s.body) } : s);
  return { ...k, body: walk(k.body) };
}
const assignsTo = (arrays: string[]) => (s: Stmt) => s.k === 'assign' && s.target.k === 'index' && arrays.includes(s.target.array);
const probes = (base: KernelIR, stage: readonly string[], load: readonly string[]): Record<string, KernelIR> => ({
  full: base,
  no_mma: without(base, (s) => s.k === 'assign' && s.value.k === 'call' && s.value.fn === 'matrixMultiplyAdd'),
  no_stage: without(base, assignsTo([...stage])),
  no_load: without(base, assignsTo([...load])),
});

const gpu = await getGpu();
const out: Record<string, unknown> = { device: gpu.adapterInfo };
let seed = 7;
const rnd = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5));
try {
  if (!gpu.matrices.ok) throw new Error(`no subgroup matrices: ${gpu.matrices.why}`);
  for (const run of RUNS) for (const [name, rows, cols, norm] of SHAPES) {
    const T = run.T, transposed = run.kernel === 'matmulTTensorKernel';
    const g = new GraphBuilder(), o = ops(g);
    const w = o.weight('w', [rows, cols], 'f16');
    const graph = g.finish({ out: transposed ? g.apply(OPSET.ops.get('matvec_t')!, [w, o.weight('dy', [T, rows])], {})
      : g.apply(OPSET.ops.get('matvec')!, [w, o.weight('x', [T, cols]), ...(norm ? [o.weight('nw', [cols])] : [])], norm ? { norm: true, eps: 1e-5 } : {}) });
    const weights: WeightMap = new Map([['w', weightOf([rows, cols], 'f16', rnd(rows * cols))], ['x', f32Weight([T, cols], rnd(T * cols))], ['nw', f32Weight([cols], rnd(cols))], ['dy', f32Weight([T, rows], rnd(T * rows))]]);
    const row: Record<string, unknown> = {};
    for (const [probe, k] of Object.entries(probes(kernels[run.kernel]!, run.stage, run.load))) {
      const plan = lowerGraph(graph, targetOf(gpu), { kernels: { ...kernels, [run.kernel]: k }, fragments });
      const ex = new Executor(gpu, plan, weights);
      try {
        ex.reset();
        // a second of calls first: the clocks up (run f's probe, after 30 calls, ran at half speed)
        for (let t0 = performance.now(), i = 0; i < 30 || performance.now() - t0 < 1000; i++) await ex.run({}, 'out');
        let best = Infinity;
        for (let i = 0; i < 5; i++) {
          const p = await ex.profile({});
          const ns = [...(p ?? new Map()).entries()].filter(([kk]) => kk.startsWith(run.kernel)).reduce((s, [, v]) => s + v.ns, 0);
          best = Math.min(best, ns);
        }
        row[probe] = { us: +(best / 1e3).toFixed(1), tflops: +((2 * T * rows * cols) / best / 1e3).toFixed(1), gbps: Math.round((rows * cols * 2) / best), dispatches: plan.dispatches.map((d) => d.kernel).join(' ') };
      } finally { ex.destroy(); }
    }
    out[`${transposed ? 'T' : ''}${name}_${T}`] = row;
  }
} catch (e) { out.error = String(e); }
console.log(JSON.stringify(out));
await releaseGpu();
