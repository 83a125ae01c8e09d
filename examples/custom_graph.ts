// Your own model in the DSL: a two-layer MLP with a residual connection, not a transformer. Put tap()
// on any value, compile (fusion included), draw it, run it on the GPU, and read the tapped values —
// checked here against the float64 reference of the same graph.
// Run: node --no-concurrent-recompilation dist/examples/custom_graph.js
import fs from 'node:fs';
import { GraphBuilder, compile, toDot, toSvg, OPSET, ops, Executor, getGpu, releaseGpu, targetOf, ReferenceRunner, weightOf, type WeightMap } from 'tapir';

const g = new GraphBuilder();
const { input, weight, matvec, rmsnorm, siluMul, add } = ops(g);
const d = 32, hidden = 96;
const x = input('x', [d], 'f32'); // [32]
const h = g.tap('mlp.hook_normalized', rmsnorm(x, weight('norm', [d]), 1e-5)); // [32]
const act = g.tap('mlp.hook_post', siluMul(matvec(weight('gate', [hidden, d], 'q8_0'), h), matvec(weight('up', [hidden, d], 'q8_0'), h))); // [96]
const y = g.tap('hook_out', add(x, matvec(weight('down', [d, hidden]), act))); // [32], a residual block
const graph = g.finish({ y });

// seeded weights; q8_0 matrices stay quantized on the GPU
let seed = 7;
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => (((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5) * 2 * s);
const weights: WeightMap = new Map([
  ['norm', weightOf([d], 'f32', rand(d, 1))], ['gate', weightOf([hidden, d], 'q8_0', rand(hidden * d, 0.3))],
  ['up', weightOf([hidden, d], 'q8_0', rand(hidden * d, 0.3))], ['down', weightOf([d, hidden], 'f32', rand(d * hidden, 0.2))],
]);

const gpu = await getGpu();
const compiled = compile(graph, OPSET, targetOf(gpu), { taps: Object.keys(graph.hooks) });
console.log(`${compiled.plan!.dispatches.length} dispatches: ${compiled.plan!.dispatches.map((x) => x.kernel).join(', ')}`);
fs.mkdirSync('test-output', { recursive: true });
fs.writeFileSync('test-output/custom_graph.svg', await toSvg(toDot(compiled.graph, compiled.plan, 'a custom MLP block, fused')));

const ex = new Executor(gpu, compiled.plan!, weights);
const xv = rand(d, 2);
await ex.run({ x: xv }, 'y');
const ref = new ReferenceRunner(graph, weights).step({ x: xv });
for (const [name, hook] of Object.entries(graph.hooks)) {
  const got = (await ex.read(compiled.plan!.outputs[`hook:${name}`]!)).subarray(0, hook.node.size);
  const want = ref.get(hook.node)!;
  let num = 0, den = 0;
  want.forEach((w, i) => { num += (got[i]! - w) ** 2; den += w * w; });
  const err = Math.sqrt(num / den);
  console.log(`${name.padEnd(20)} [${hook.shape}]  first values ${Array.from(got.subarray(0, 3), (v) => v.toFixed(4)).join(', ')}  ‖gpu − ref‖/‖ref‖ = ${err.toExponential(1)}`);
  if (!(err <= 1e-5)) throw new Error(`${name} differs from the reference`);
}
ex.destroy();
await releaseGpu();
process.exit(0);
