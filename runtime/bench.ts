// The decode and prefill benchmark: tokens per second, GPU time per token, the bytes a token moves and
// the fraction of the memory roofline that is, against a streaming-read kernel measured on the same
// device in the same run. A benchmark, not a test: it asserts nothing about speed.
import { Model } from './model.js';
import { NormalRng } from './synth/synth.js';
import { headSize } from '../models/llama.js';
import { grid, pipelineFor, uniformData } from './pipelines.js';
import { PassTimer, readBuffer } from './readback.js';
import { selectHooks } from '../compiler/hooks.js';
import { kernels } from '../ops/kernels.gen.js';
import { lanesFor } from '../ops/matvec.js';
import type { KernelIR } from '../compiler/kernel/ir.js';
import { uniformBytes } from '../compiler/kernel/wgsl.js';
import type { GpuContext } from './gpu.js';

export interface BenchOptions {
  promptTokens: number;
  /** the prefill is timed on a prompt of this many tokens (default: promptTokens) */
  prefillTokens?: number;
  genTokens: number;
  seed?: number;
  /** hooks to tap during a second decode run (values kept in GPU buffers, read back once at the end) */
  taps?: string;
  /** compare this many decode steps' logits with the float64 reference forward pass (0: none) */
  check?: number;
  /** called as the phases go: (phase, done, total) */
  progress?: (phase: string, done: number, total: number) => void;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** Four significant digits: a rate of 0.04 GB/s on a loaded CPU must not print as 0. */
const sig = (x: number) => +x.toPrecision(4);

/** GB/s on this device for reading a large buffer once (the roofline for a decode step, which reads
 *  every weight once): the better of a plain streaming read and tapir's own f16 decode matvec over a
 *  1 GiB matrix, each the median of `repeats` passes timed with timestamp queries (else by the clock). */
export async function streamBandwidth(gpu: GpuContext, bytes = 1 << 30, repeats = 10) {
  const d = gpu.device;
  bytes = Math.floor(Math.min(bytes, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / (1 << 16)) * (1 << 16);
  const big = d.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
  const small = d.createBuffer({ size: 1 << 20, usage: GPUBufferUsage.STORAGE });
  const cols = 4096, rows = bytes / (2 * cols), lanes = lanesFor(rows, cols);
  const out = d.createBuffer({ size: rows * 4, usage: GPUBufferUsage.STORAGE });
  try {
    let stream = { ms: Infinity, per: 0 };
    for (const per of [1024, 4096]) { // the share of each workgroup, in 16-byte units
      const ms = await timeKernel(gpu, kernels.streamReadKernel!, { n: bytes / 16, per }, [big, small], bytes / 16 / per, repeats);
      if (ms < stream.ms) stream = { ms, per };
    }
    const mv = await timeKernel(gpu, kernels.matvecF16Kernel!, { rows, cols, outOffset: 0, eps: 0, norm: 0, lanes }, [big, small, small, out], Math.ceil(rows / (256 / lanes)), repeats);
    const GBps = (ms: number) => sig(bytes / ms / 1e6);
    return { bytes, stream: { ms: sig(stream.ms), GBps: GBps(stream.ms) }, matvec: { ms: sig(mv), GBps: GBps(mv) }, GBps: Math.max(GBps(stream.ms), GBps(mv)) };
  } finally {
    for (const b of [big, small, out]) b.destroy();
  }
}

/** Median milliseconds of one dispatch of `k` over `buffers` (its storage parameters, in order). */
async function timeKernel(gpu: GpuContext, k: KernelIR, values: Record<string, number>, buffers: GPUBuffer[], groups: number, repeats: number): Promise<number> {
  const d = gpu.device;
  const ub = d.createBuffer({ size: uniformBytes(k), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  d.queue.writeBuffer(ub, 0, new Uint8Array(uniformData(k, values)));
  const pipeline = pipelineFor(gpu, k, values);
  const entries = buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
  const bind = d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [...entries, { binding: entries.length, resource: { buffer: ub } }] });
  const timer = PassTimer.create(gpu, repeats);
  const run = (i?: number) => {
    const enc = d.createCommandEncoder();
    const pass = enc.beginComputePass(timer && i !== undefined ? { timestampWrites: timer.writes(i) } : {});
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    const [gx, gy] = grid(groups);
    pass.dispatchWorkgroups(gx, gy);
    pass.end();
    d.queue.submit([enc.finish()]);
  };
  try {
    run(); run(); // warm up
    await d.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    for (let i = 0; i < repeats; i++) run(i);
    await d.queue.onSubmittedWorkDone();
    if (!timer) return (performance.now() - t0) / repeats;
    return median(await timer.durationsNs()) / 1e6;
  } finally {
    ub.destroy();
    timer?.destroy();
  }
}

/** Bytes one decode step reads: every weight a matvec reads in full (the embedding table only a row,
 *  unless the unembedding reads it too), and the KV cache up to the position. */
export function bytesPerToken(model: Model, position: number) {
  const c = model.config;
  let weights = 0;
  for (const b of model.plan.buffers.values()) if (b.kind === 'weight') weights += b.bytes;
  if (!c.tiedEmbeddings) {
    const emb = [...model.plan.buffers.values()].filter((b) => b.weight?.name === 'token_embd.weight').reduce((s, b) => s + b.bytes, 0);
    weights -= emb - emb / c.vocabSize;
  }
  const kv = 2 * c.nLayers * (position + 1) * c.nKvHeads * headSize(c) * 4;
  return { weights, kv };
}

/** Weights one position multiplies in the matrix products (every matvec's rows × columns; the
 *  embedding table once, as the unembedding, where it is tied). */
export function matmulWeights(model: Model): number {
  const c = model.config, hd = headSize(c);
  const attn = c.dim * (c.nHeads * hd) * 2 + c.dim * (c.nKvHeads * hd) * 2;
  return c.nLayers * (attn + 3 * c.dim * c.hiddenDim) + c.dim * c.vocabSize;
}

/** Three timed runs of `run`, each after `reset` (the cache again holds the prompt), fastest first. */
async function threeRuns<T>(reset: () => Promise<unknown>, run: () => Promise<T>): Promise<{ ms: number; run: T }[]> {
  const out: { ms: number; run: T }[] = [];
  for (let k = 0; k < 3; k++) {
    await reset();
    const t = performance.now();
    const r = await run();
    out.push({ ms: performance.now() - t, run: r });
  }
  return out.sort((a, b) => a.ms - b.ms);
}

export async function benchmark(model: Model, o: BenchOptions) {
  const gpu = model.executor.gpu;
  const rng = new NormalRng(o.seed ?? 1);
  const V = model.config.vocabSize;
  const prompt = [model.tokenizer.vocab.bos, ...Array.from({ length: o.promptTokens - 1 }, () => Math.floor(rng.uniform() * V))];
  const p = o.progress ?? (() => {});
  p('roofline', 0, 1);
  const roof = await streamBandwidth(gpu);
  p('roofline', 1, 1);
  // prefill: once to warm up (pipelines, buffers), then timed
  p('prefill', 0, 4);
  await model.logits(prompt.slice(0, 8));
  // the prompt in blocks of positions; the greedy next token is chosen on the GPU (4 bytes read back)
  const firstOf = async (tokens: readonly number[] = prompt) => { const next = await model.prefill(tokens, 'next'); return new Int32Array(next.buffer, next.byteOffset, 1)[0]!; };
  const prefillPrompt = o.prefillTokens && o.prefillTokens !== prompt.length
    ? [prompt[0]!, ...Array.from({ length: o.prefillTokens - 1 }, () => Math.floor(rng.uniform() * V))] : prompt;
  await firstOf(prefillPrompt);
  p('prefill', 1, 4);
  const prefillRuns: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    await firstOf(prefillPrompt);
    prefillRuns.push(performance.now() - t0);
    p('prefill', 2 + k, 4);
  }
  const prefillMs = median(prefillRuns);
  const first = await firstOf();
  // decode with the token loop on the GPU: warm-up, timed (wall clock, read back once), timed (GPU)
  const ex = model.executor;
  const P = prompt.length, n = o.genTokens;
  p('decode', 0, 3);
  await ex.greedyOnGpu(first, P, Math.min(8, n));
  p('decode', 1, 3);
  // three timed runs, the median reported (a run's wall clock moves with the host's load)
  const runs = await threeRuns(firstOf, () => ex.greedyOnGpu(first, P, n));
  const { ms: decodeMs, run } = runs[1]!;
  p('decode', 2, 3);
  await firstOf();
  const timed = await ex.greedyOnGpu(first, P, n, true);
  p('decode', 3, 3);
  // the same steps with a round trip to the host per token (the plain generate loop), for comparison
  await firstOf();
  const hostSteps = Math.min(n, 32);
  const t2 = performance.now();
  let tok = first;
  for (let i = 0; i < hostSteps; i++) tok = new Int32Array((await ex.run({ token: tok, pos: P + i }, 'next')).buffer)[0]!;
  const hostMs = performance.now() - t2;
  // the same decode with hooks tapped: each step's values copied on the GPU into one buffer per hook
  let tapped: { hooks: number; tokensPerSecond: number; runsTokensPerSecond: number[]; ratio: number; sameTokens: boolean } | undefined;
  if (o.taps) {
    const names = selectHooks(o.taps, model.hookNames).map((x) => x.hook);
    const tex = await model.variant({ taps: names });
    const per = names.map((h) => model.graph.hooks[h]!.node.size * 4);
    const dst = names.map((_, i) => gpu.device.createBuffer({ size: per[i]! * n, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC }));
    try {
      const stage = (step: number) => names.map((h, i) => ({ output: `hook:${h}`, dst: dst[i]!, offset: step * per[i]!, bytes: per[i]! }));
      await firstOf();
      await tex.greedyOnGpu(first, P, Math.min(8, n), false, stage);
      const tapRuns = await threeRuns(firstOf, async () => {
        const r = await tex.greedyOnGpu(first, P, n, false, stage);
        await readBuffer(gpu, dst[dst.length - 1]!); // read back once, at the end
        return r;
      });
      const { ms } = tapRuns[1]!;
      tapped = { hooks: names.length, tokensPerSecond: sig(n / ms * 1000), runsTokensPerSecond: tapRuns.map((t) => sig(n / t.ms * 1000)), ratio: sig((n / ms) / (n / decodeMs)), sameTokens: tapRuns.every((t) => Array.from(t.run.tokens).every((x, i) => x === run.tokens[i])) };
    } finally {
      dst.forEach((b) => b.destroy());
    }
  }
  // where a step's time goes: each dispatch in its own timed pass (slower in sum than a real step)
  const prof = await ex.profile({ token: first, pos: P + n - 1 });
  const kernelsByTime = prof ? [...prof.entries()].sort((a, b) => b[1].ns - a[1].ns).map(([kernel, v]) => ({ kernel, count: v.count, us: sig(v.ns / 1e3) })) : undefined;
  const gpuMsPerToken = timed.gpuNs ? median(timed.gpuNs) / 1e6 : undefined;
  // the fast plan against the float64 reference (ops' references, weights dequantized), a few positions
  let check: { positions: number; maxRelErr: number } | undefined;
  if (o.check) {
    model.reset();
    const ref = model.reference();
    let worst = 0;
    for (let i = 0; i < o.check; i++) {
      p('check', i, o.check);
      const got = await model.forward(prompt[i]!);
      const want = ref.output({ token: prompt[i]!, pos: i }, 'logits');
      let num = 0, den = 0;
      for (let j = 0; j < V; j++) { num += (got[j]! - want[j]!) ** 2; den += want[j]! ** 2; }
      worst = Math.max(worst, Number.isFinite(num) ? Math.sqrt(num / den) : Infinity);
    }
    p('check', o.check, o.check);
    check = { positions: o.check, maxRelErr: worst };
  }
  const bytes = bytesPerToken(model, P + n / 2);
  const perToken = bytes.weights + bytes.kv;
  const msPerToken = gpuMsPerToken ?? decodeMs / n;
  return {
    device: gpu.adapterInfo, features: gpu.features,
    // which kernels the prefill's matrix products of non-f32 weights took, and why
    matrixProducts: gpu.matrices.ok ? 'tensor cores (f16 subgroup matrices, f32 sums)' : `f32 kernels: ${gpu.matrices.why}`,
    model: { file: model.file, dim: model.config.dim, layers: model.config.nLayers, vocab: V, weightDtype: [...new Set([...model.plan.buffers.values()].filter((b) => b.weight).map((b) => model.weightDtype(b.weight!.name)))] },
    roofline: roof,
    prefill: {
      tokens: prefillPrompt.length, ms: sig(prefillMs), tokensPerSecond: sig(prefillPrompt.length / prefillMs * 1000), runsMs: prefillRuns.map(sig),
      // the matrix products' share of the work: 2 flops a weight a position (the unembedding only of the
      // last position of each block: a prefill computes no other logits)
      matmulTflops: sig(2 * ((matmulWeights(model) - model.config.dim * V) * prefillPrompt.length + model.config.dim * V * model.blocks(prefillPrompt.length).length) / prefillMs / 1e9),
    },
    decode: {
      tokens: n, ms: sig(decodeMs), tokensPerSecond: sig(n / decodeMs * 1000),
      runsTokensPerSecond: runs.map((r) => sig(n / r.ms * 1000)),
      gpuMsPerToken: gpuMsPerToken === undefined ? undefined : sig(gpuMsPerToken),
      hostLoopTokensPerSecond: sig(hostSteps / hostMs * 1000),
      // the host's encoding and submitting alone: when it nears the GPU time, the loop is host-bound
      encodeMsPerToken: sig(run.hostMs / n),
      dispatchesPerToken: model.plan.dispatchesAt(P).length,
      weightBytesPerToken: bytes.weights, kvBytesPerToken: bytes.kv,
      achievedGBps: sig(perToken / msPerToken / 1e6),
      rooflineFraction: sig(perToken / msPerToken / 1e6 / roof.GBps),
      sameTokensTimedAndUntimed: Array.from(run.tokens).every((t, i) => t === timed.tokens[i]),
    },
    tapped,
    kernelsByTime,
    check,
  };
}
