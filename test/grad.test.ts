// Reverse mode (compiler/grad.ts and each op's vjp), in float64: every rule against central differences
// of its op's reference along random directions, then the pass over a small SwiGLU block (a node used
// twice, f16 and q8_0 weights) against central differences of the reference forward.
import { describe, expect, it } from 'vitest';
import { GraphBuilder, rebuildWith, type Graph, type Node } from '../compiler/ir/graph.js';
import { gradients } from '../compiler/grad.js';
import { GRAD_OPS, ops } from '../ops/index.js';
import { intervene } from '../ops/intervene.js';
import { saeEncode } from '../ops/sae_encode.js';
import { saeDecode } from '../ops/sae_decode.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { f32Weight, weightOf, type WeightMap } from '../runtime/weights.js';
import { randomSource, relErr } from './helpers/numeric.js';
import { leafKind } from '../compiler/ir/op.js';
import type { DType } from '../compiler/ir/dtype.js';
import { llama } from '../models/llama.js';
import { loadModelSource } from '../runtime/node/load.js';
import { dtypesOf } from '../runtime/model.js';
import { GGUF } from './helpers/models.js';
import { synthModel } from '../runtime/synth/synth.js';
import { gradientGraph } from '../runtime/interp/gradients.js';
import { compile } from '../compiler/passes.js';
import { OPSET } from '../ops/index.js';

const rnd = randomSource();
const seedNote = `random seed ${rnd.seed}`;
const EPS = 1e-5;
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s; };
const f64 = (x: Float32Array) => Float64Array.from(x);
const along = (x: Float64Array, v: Float64Array, t: number) => x.map((e, i) => e + t * v[i]!);

type Built = { out: Node; x: Node[] };
/** a graph of one op (or a few), its f32 inputs named x0, x1, ..; weights from `w` */
function graphOf(build: (o: ReturnType<typeof ops>, g: GraphBuilder) => Built) {
  const g = new GraphBuilder();
  return { g, ...build(ops(g), g) };
}
function weightsOf(nodes: readonly Node[], w: Record<string, { dtype: DType; values: Float32Array }>): WeightMap {
  const m: WeightMap = new Map();
  for (const n of nodes) if (leafKind(n) === 'weight') {
    const d = w[String(n.attr.name)]!;
    m.set(String(n.attr.name), d.dtype === 'f32' ? f32Weight(n.shape, d.values) : weightOf(n.shape, d.dtype, d.values));
  }
  return m;
}

describe("each op's vector-Jacobian product equals central differences of its reference", () => {
  // ⟨vjp(dy), v⟩ against ⟨dy, (f(x + εv) − f(x − εv)) / 2ε⟩, every differentiable source moved at once
  const cases: [string, (o: ReturnType<typeof ops>, g: GraphBuilder) => Built][] = [
    ['add', (o) => { const a = o.input('x0', [3, 10], 'f32'), b = o.input('x1', [3, 10], 'f32'); return { out: o.add(a, b), x: [a, b] }; }],
    ['scale', (o) => { const a = o.input('x0', [7], 'f32'); return { out: o.scale(a, -1.75), x: [a] }; }],
    ['bias', (o) => { const a = o.input('x0', [2, 6], 'f32'); return { out: o.bias(a, o.weight('b', [9]), 2), x: [a] }; }],
    ['rmsnorm (a block of rows)', (o) => { const a = o.input('x0', [4, 12], 'f32'); return { out: o.rmsnorm(a, o.weight('nw', [12]), 1e-5), x: [a] }; }],
    ['rmsnorm per head (a weight shorter than the row)', (o) => { const a = o.input('x0', [12], 'f32'); return { out: o.rmsnorm(a, o.weight('hw', [4]), 1e-6), x: [a] }; }],
    ['silu_mul', (o) => { const g = o.input('x0', [3, 9], 'f32'), u = o.input('x1', [3, 9], 'f32'); return { out: o.siluMul(g, u), x: [g, u] }; }],
    ['matvec, f32', (o) => { const a = o.input('x0', [5, 8], 'f32'); return { out: o.matvec(o.weight('w32', [6, 8]), a), x: [a] }; }],
    ['matvec, f16', (o) => { const a = o.input('x0', [8], 'f32'); return { out: o.matvec(o.weight('w16', [6, 8], 'f16'), a), x: [a] }; }],
    ['matvec, q8_0', (o) => { const a = o.input('x0', [2, 64], 'f32'); return { out: o.matvec(o.weight('wq8', [5, 64], 'q8_0'), a), x: [a] }; }],
    ['matvec, q4_0', (o) => { const a = o.input('x0', [32], 'f32'); return { out: o.matvec(o.weight('wq4', [3, 32], 'q4_0'), a), x: [a] }; }],
    ['rope (a block from position 2, partial rotary)', (o) => { const a = o.input('x0', [3, 16], 'f32'); return { out: o.rope(a, o.input('pos', [1]), o.ropeTable(8, 4, 10000), 8), x: [a] }; }],
    ['last_row', (o) => { const a = o.input('x0', [4, 5], 'f32'); return { out: o.lastRow(a), x: [a] }; }],
    ['last_row at row 1 (a batch of two)', (o) => { const a = o.input('x0', [2, 4, 5], 'f32'); return { out: o.lastRow(a, 1), x: [a] }; }],
    ['logit_diff (target − distractor, the last row)', (o) => { const a = o.input('x0', [3, 11], 'f32'); return { out: o.logitDiff(a, o.input('ids2', [2])), x: [a] }; }],
    ['logit_diff (a target alone, row 1)', (o) => { const a = o.input('x0', [3, 11], 'f32'); return { out: o.logitDiff(a, o.input('ids1', [1]), 1), x: [a] }; }],
    ['logit_diff_unembed, f16 (target − distractor, one row of a block\'s shape)', (o) => { const a = o.input('x0', [1, 1, 8], 'f32'); return { out: o.logitDiffUnembed(o.weight('w16', [6, 8], 'f16'), a, o.input('ids2u', [2])), x: [a] }; }],
    ['logit_diff_unembed, q8_0 (a target alone)', (o) => { const a = o.input('x0', [64], 'f32'); return { out: o.logitDiffUnembed(o.weight('wq8', [5, 64], 'q8_0'), a, o.input('ids1u', [1])), x: [a] }; }],
    ['log_prob (the last row)', (o) => { const a = o.input('x0', [2, 11], 'f32'); return { out: o.logProb(a, o.input('ids1', [1])), x: [a] }; }],
    ['intervene (tables of 4 rows over a block of 3 from position 2: the last row left alone)', (o, g) => {
      const a = o.input('x0', [3, 6], 'f32');
      return { out: g.apply(intervene, [a, o.input('pos', [1]), o.input('ia', [4, 6], 'f32'), o.input('ib', [4, 6], 'f32')], {}), x: [a] };
    }],
    ['sae_encode, ReLU (activations: through the kept latents)', (o, g) => {
      const a = o.input('x0', [3, 6], 'f32');
      return { out: g.apply(saeEncode, [a, o.weight('we', [6, 10]), o.weight('be', [10]), o.weight('bd', [6])], { arch: 'relu', k: 0, part: 'acts' }), x: [a] };
    }],
    ['sae_encode, TopK 3', (o, g) => {
      const a = o.input('x0', [2, 6], 'f32');
      return { out: g.apply(saeEncode, [a, o.weight('we', [6, 10]), o.weight('be', [10]), o.weight('bd', [6])], { arch: 'topk', k: 3, part: 'acts' }), x: [a] };
    }],
    ['sae_decode', (o, g) => { const a = o.input('x0', [3, 10], 'f32'); return { out: g.apply(saeDecode, [a, o.weight('wd', [10, 6]), o.weight('bd', [6])], {}), x: [a] }; }],
    ['log_prob (row 0)', (o) => { const a = o.input('x0', [2, 11], 'f32'); return { out: o.logProb(a, o.input('ids1', [1]), 0), x: [a] }; }],
    ['kv_write (the block\'s rows)', (o) => { const k = o.input('x0', [3, 8], 'f32'); return { out: o.kvWrite(o.input('cache', [8, 8], 'f32'), k, o.input('pos', [1])), x: [k] }; }],
    ['attention (grouped heads, a block from position 2)', (o) => {
      const q = o.input('x0', [3, 16], 'f32'), k = o.input('x1', [8, 8], 'f32'), v = o.input('x2', [8, 8], 'f32');
      return { out: o.attention(q, k, v, o.input('pos', [1]), { nHeads: 4, nKvHeads: 2, headSize: 4 }), x: [q, k, v] };
    }],
    // the explicit attention path (gradients at hook_pattern / hook_attn_scores): [T, heads, context] matrices
    ['pattern_softmax (a block from position 2: keys past each row ignored)', (o) => { const s = o.input('x0', [3, 4, 8], 'f32'); return { out: o.patternSoftmax(s, o.input('pos', [1]), 4), x: [s] }; }],
    ['pattern_apply (grouped heads, a block from position 2)', (o) => {
      const p = o.input('x0', [3, 4, 8], 'f32'), v = o.input('x1', [8, 8], 'f32');
      return { out: o.patternApply(p, v, o.input('pos', [1]), { nHeads: 4, nKvHeads: 2, headSize: 4 }), x: [p, v] };
    }],
    // (scores are −∞ past a row's keys, where differences are NaN: the last position alone sees them all)
    ['attention_scores (the last position, attention scale 0.3)', (o) => {
      const q = o.input('x0', [1, 16], 'f32'), k = o.input('x1', [8, 8], 'f32');
      return { out: o.attentionScores(q, k, o.input('pos7', [1]), { nHeads: 4, nKvHeads: 2, headSize: 4, scale: 0.3 }), x: [q, k] };
    }],
  ];
  const fixed = { pos: Float64Array.of(2), pos7: Float64Array.of(7), cache: f64(rnd.normal(64)), ids1: Float64Array.of(4), ids2: Float64Array.of(9, 2), ids1u: Float64Array.of(3), ids2u: Float64Array.of(5, 1), ia: f64(rnd.normal(24)), ib: f64(rnd.normal(24)) };
  const w = {
    b: { dtype: 'f32' as DType, values: rnd.normal(9) }, nw: { dtype: 'f32' as DType, values: rnd.normal(12) }, hw: { dtype: 'f32' as DType, values: rnd.normal(4) },
    w32: { dtype: 'f32' as DType, values: rnd.normal(48) }, w16: { dtype: 'f16' as DType, values: rnd.normal(48) },
    wq8: { dtype: 'q8_0' as DType, values: rnd.normal(320) }, wq4: { dtype: 'q4_0' as DType, values: rnd.normal(96) },
    we: { dtype: 'f32' as DType, values: rnd.normal(60) }, be: { dtype: 'f32' as DType, values: rnd.normal(10, 0.3) }, bd: { dtype: 'f32' as DType, values: rnd.normal(6) }, wd: { dtype: 'f32' as DType, values: rnd.normal(60) },
  };
  it.each(cases)('%s', (_, build) => {
    const { g, out, x } = graphOf(build);
    const dyIn = ops(g).input('dy', [...out.shape], 'f32');
    const shares = out.op.vjp!(out, dyIn, g);
    const picked = x.map((xi) => shares[out.srcs.indexOf(xi)]!);
    const graph = g.finish({ out, ...Object.fromEntries(picked.map((s, i) => [`g${i}`, s])) });
    const ref = new ReferenceRunner(graph, weightsOf(graph.nodes, w));
    const values = x.map((xi) => f64(rnd.normal(xi.size))), dirs = x.map((xi) => f64(rnd.normal(xi.size))), dyv = f64(rnd.normal(out.size));
    const at = (t: number) => ({ ...fixed, ...Object.fromEntries([...x.map((xi, i) => [String(xi.attr.name), along(values[i]!, dirs[i]!, t)] as const), ['dy', dyv] as const]) });
    const run = ref.step(at(0));
    const analytic = picked.reduce((s, share, i) => s + dot(run.get(share)!, dirs[i]!), 0);
    const numeric = dot(dyv, ref.output(at(EPS), 'out').map((v, i) => (v - ref.output(at(-EPS), 'out')[i]!) / (2 * EPS)));
    expect(Math.abs(analytic - numeric) / Math.max(1e-12, Math.abs(numeric)), seedNote).toBeLessThanOrEqual(1e-6);
  });
});

describe('the gradient pass', () => {
  const dim = 64, hid = 96;
  const w = {
    ln1: { dtype: 'f32' as DType, values: rnd.normal(dim) }, ln2: { dtype: 'f32' as DType, values: rnd.normal(dim) },
    gate: { dtype: 'f16' as DType, values: rnd.normal(hid * dim, 0.2) }, up: { dtype: 'q8_0' as DType, values: rnd.normal(hid * dim, 0.2) },
    down: { dtype: 'f16' as DType, values: rnd.normal(dim * hid, 0.2) }, probe: { dtype: 'f32' as DType, values: rnd.normal(dim) },
  };
  /** x → x + 0.7·down(silu(gate(n1(x)))·up(n1(x))) → probe·n2(·): x feeds the norm and the residual add */
  const block = (o: ReturnType<typeof ops>) => {
    const x = o.input('x', [dim], 'f32');
    const h = o.rmsnorm(x, o.weight('ln1', [dim]), 1e-5);
    const a = o.siluMul(o.matvec(o.weight('gate', [hid, dim], 'f16'), h), o.matvec(o.weight('up', [hid, dim], 'q8_0'), h));
    const y = o.add(x, o.scale(o.matvec(o.weight('down', [dim, hid], 'f16'), a), 0.7));
    return { x, h, metric: o.matvec(o.weight('probe', [1, dim]), o.rmsnorm(y, o.weight('ln2', [dim]), 1e-5)) };
  };

  it('gives d metric / d input and / d an inner node, equal to central differences of the reference forward', () => {
    const g = new GraphBuilder();
    const { x, h, metric } = block(ops(g));
    const grads = gradients(g, metric, [x, h], GRAD_OPS);
    const graph = g.finish({ metric, dx: grads.get(x)!, dh: grads.get(h)! });
    const ref = new ReferenceRunner(graph, weightsOf(graph.nodes, w));
    const x0 = f64(rnd.normal(dim)), v = f64(rnd.normal(dim));
    const dx = ref.output({ x: x0 }, 'dx');
    const numeric = (ref.output({ x: along(x0, v, EPS) }, 'metric')[0]! - ref.output({ x: along(x0, v, -EPS) }, 'metric')[0]!) / (2 * EPS);
    expect(Math.abs(dot(dx, v) - numeric) / Math.abs(numeric), seedNote).toBeLessThanOrEqual(1e-6);
    // through h alone: dx = the norm's backward of dh plus the residual path's gradient, so dh differs from dx
    // and has h's shape; its own check: the metric as a function of h (a graph cut at h)
    const cut = new GraphBuilder(), o = ops(cut), hin = o.input('h', [dim], 'f32');
    const a = o.siluMul(o.matvec(o.weight('gate', [hid, dim], 'f16'), hin), o.matvec(o.weight('up', [hid, dim], 'q8_0'), hin));
    const y = o.add(o.input('x', [dim], 'f32'), o.scale(o.matvec(o.weight('down', [dim, hid], 'f16'), a), 0.7));
    const m2 = o.matvec(o.weight('probe', [1, dim]), o.rmsnorm(y, o.weight('ln2', [dim]), 1e-5));
    const cutRef = new ReferenceRunner(cut.finish({ m2 }), weightsOf(cut.finish({ m2 }).nodes, w));
    const h0 = ref.step({ x: x0 }).get(h)!, u = f64(rnd.normal(dim));
    const dhNumeric = (cutRef.output({ h: along(h0, u, EPS), x: x0 }, 'm2')[0]! - cutRef.output({ h: along(h0, u, -EPS), x: x0 }, 'm2')[0]!) / (2 * EPS);
    expect(Math.abs(dot(ref.output({ x: x0 }, 'dh'), u) - dhNumeric) / Math.abs(dhNumeric), seedNote).toBeLessThanOrEqual(1e-6);
  });

  it('says what it cannot do: a metric that is not a scalar, a node the metric does not depend on, an op with no backward', () => {
    const g = new GraphBuilder(), o = ops(g);
    const { x, metric } = block(o);
    expect(() => gradients(g, o.scale(x, 2), [x], GRAD_OPS)).toThrow(/scalar metric/);
    const other = o.input('other', [dim], 'f32');
    expect(() => gradients(g, metric, [other], GRAD_OPS)).toThrow(/does not depend on/);
    const token = o.input('token', [1]);
    const viaArgmax = o.matvec(o.weight('probe', [1, dim]), o.add(x, o.embedding(o.weight('emb', [4, dim]), token)));
    expect(() => gradients(g, viaArgmax, [x], GRAD_OPS)).not.toThrow(); // (no gradient is asked through the embedding)
    const emb = o.weight('emb2', [4, dim]);
    expect(() => gradients(g, o.matvec(o.weight('probe', [1, dim]), o.embedding(emb, token)), [emb], GRAD_OPS)).toThrow(/no gradient through embedding/);
  });
});

describe('gradients through a whole model (stories260K, float64)', () => {
  const src = loadModelSource(GGUF), c = src.config, V = c.vocabSize;
  const tokens = [1, 403, 407, 261, 378, 380], T = tokens.length;
  const target = 3, distractor = 7;
  const probe = new Float32Array(V);
  probe[target] = 1; probe[distractor] = -1;
  const weights: WeightMap = new Map([...src.weights, ['probe', f32Weight([1, V], probe)]]);
  const graph = llama(c, dtypesOf(src.weights), { positions: T, head: 'last' });
  const inputs = { token: tokens, pos: 0 };
  /** the model rebuilt with the metric (the last position's logit difference, target − distractor) and
   *  `perturb` added at `hook` (for central differences), or the gradients at `hooks` */
  const build = (edit: (g: GraphBuilder, hooks: Graph['hooks']) => { at?: string; grads?: readonly string[] }) => {
    let b: GraphBuilder | undefined;
    const spec = edit(new GraphBuilder(), graph.hooks);
    const rebuilt = rebuildWith(graph, (n, m, g) => {
      b = g;
      return spec.at && n === graph.hooks[spec.at]!.node ? { node: ops(g).add(m, ops(g).input('perturb', [...m.shape], 'f32')) } : undefined;
    });
    const o = ops(b!);
    const metric = o.matvec(o.weight('probe', [1, V]), rebuilt.outputs.logits!);
    const grads = spec.grads ? gradients(b!, metric, spec.grads.map((h) => rebuilt.hooks[h]!.node), GRAD_OPS) : new Map<Node, Node>();
    const outs = Object.fromEntries((spec.grads ?? []).map((h) => [`d:${h}`, grads.get(rebuilt.hooks[h]!.node)!]));
    return new ReferenceRunner(b!.finish({ metric, ...outs }), weights);
  };
  const metricAt = (hook: string, delta: Float64Array) => build(() => ({ at: hook })).output({ ...inputs, perturb: delta }, 'metric')[0]!;

  it.each(['hook_embed', 'blocks.0.hook_resid_pre', 'blocks.3.hook_resid_pre'])('d (logit difference) / d %s along random directions equals central differences', (hook) => {
    const ref = build(() => ({ grads: [hook] }));
    const grad = ref.output(inputs, `d:${hook}`);
    expect(grad.length).toBe(T * c.dim);
    // three directions' derivatives compared as a vector (one direction alone may be nearly orthogonal to
    // the gradient, its derivative a difference of near-equal numbers)
    const eps = 1e-5, analytic: number[] = [], numeric: number[] = [];
    for (let k = 0; k < 3; k++) {
      const v = f64(rnd.normal(T * c.dim));
      analytic.push(dot(grad, v));
      numeric.push((metricAt(hook, v.map((x) => x * eps)) - metricAt(hook, v.map((x) => -x * eps))) / (2 * eps));
    }
    expect(relErr(analytic, numeric), seedNote).toBeLessThanOrEqual(1e-5);
  });
});

describe("the backward's sums of gradients (1B shape; compiled, not run)", () => {
  // a value read twice gets the sum of two gradients: each made by the kernel that makes one of them
  // (ops/rules.ts, add_into_grad), five a layer (the residual stream twice, q/k/v's input twice, gate/up's once)
  it.each([16, 128])('%i positions: no add dispatched, every sum fused', (T) => {
    const c = { ...synthModel('llama-3.2-1b', 'f16').config, contextLength: 4096 };
    const target = { maxBindingBytes: 2 ** 31 - 4, maxStorageBuffers: 10, subgroups: true, matrices: true };
    const hooks = Array.from({ length: c.nLayers }, (_, l) => `blocks.${l}.hook_resid_pre`);
    const s = compile(gradientGraph(c, () => 'f16', T, hooks), OPSET, target, {});
    expect(s.fired.add_into_grad).toBe(5 * c.nLayers);
    expect(s.plan!.dispatches.filter((d) => d.kernel.startsWith('addKernel'))).toEqual([]);
  });
});

describe("the backward's planned memory (1B shape, context 4096; compiled, not run)", () => {
  // the stated bound: the forward's KV cache, plus per position what the backward keeps of each layer
  // (the residual, the two normed inputs, q, k, v, z and its gradient, the FFN's gate, up and product:
  // 4·dim + 2·qDim + 2·kvDim + 3·hidden floats) and flash attention's partial sums over the key chunks,
  // plus 16 MiB. No [pos, pos] (or [pos, context]) matrix: one per layer would be 64 MiB at 128 positions.
  it.each([16, 128, 512])('%i positions: activations and scratch under the KV cache plus the bound', (T) => {
    const c = { ...synthModel('llama-3.2-1b', 'f16').config, contextLength: 4096 };
    const target = { maxBindingBytes: 2 ** 31 - 4, maxStorageBuffers: 10, subgroups: true, matrices: true };
    const hooks = Array.from({ length: c.nLayers }, (_, l) => `blocks.${l}.hook_resid_pre`);
    const plan = compile(gradientGraph(c, () => 'f16', T, hooks), OPSET, target, {}).plan!;
    const hs = c.dim / c.nHeads, q = c.nHeads * hs, kv = c.nKvHeads * hs, splits = 64; // (ops/attention.ts: 64 chunks of 64 keys at 4096)
    const perPosition = 4 * (c.nLayers * (4 * c.dim + 2 * q + 2 * kv + 3 * c.hiddenDim) + c.nHeads * splits * (hs + 2));
    const kinds = plan.bytesByKind(), used = plan.memory.activationBytes + (kinds.scratch ?? 0);
    expect(kinds.state).toBe(2 * c.nLayers * c.contextLength * kv * 4); // (the KV cache)
    expect(used).toBeLessThanOrEqual(kinds.state! + T * perPosition + 16 * 2 ** 20);
    // gradients at a pattern and at scores: those two layers take the explicit path, which costs each at
    // most four [T, nHeads, context] matrices (scores, pattern and their gradients) and the key and value
    // caches' gradients [context, kvDim] (measured at 128 positions: 205 and 185 MiB of 272 allowed)
    const explicit = compile(gradientGraph(c, () => 'f16', T, [...hooks, 'blocks.5.attn.hook_pattern', 'blocks.9.attn.hook_attn_scores']), OPSET, target, {}).plan!;
    const perLayer = 4 * (4 * T * c.nHeads * c.contextLength + 2 * c.contextLength * kv);
    expect(explicit.memory.activationBytes + (explicit.bytesByKind().scratch ?? 0)).toBeLessThanOrEqual(used + 2 * perLayer);
  });
});
