// The interpretability workloads researchers run, timed with the CLI's default settings beside the
// PyTorch peer (benchmarks/interp_peer.py, run in the same device call):
//   cache128, cache8x128   16 (every layer's) hook_resid_post of 1 or 8 prompts of 128 tokens, on the host
//   lens16                 the logit lens over a 16-token prompt (top 5, the target's rank, KL)
//   patch16x16             resid_pre activation patching, every layer × 16 positions
//   prefill512             a 512-token prompt's prefill (tokens/s)
//   grad128                d(logit diff)/d(every layer's resid_pre) of a 128-token prompt (forward + backward),
//                          beside the prompt's forward alone: backward / forward (issue 19: <= 3)
//   attrib16x16            attribution patching, resid_pre, every layer x 16 positions, beside one forward of
//                          the prompt (issue 19: <= 4)
//   load                   the GGUF file to a ready model (pipelines created at load included)
// Each workload runs in a fresh process (its first call is a first run: after load, nothing compiled
// yet; the runbook turns the NVIDIA driver's shader cache off), then `--warmup` untimed calls (the peer
// runs every workload in one process, so its GPU is already busy and clocked up; here each workload's
// process starts on an idle GPU: run m's steady calls fell 80 → 29 ms over five lens calls; so for at
// least WARMUP_MS), then `--repeat` timed calls (median; `warmup_ms` keeps the untimed ones).
//
//   node --no-concurrent-recompilation dist/benchmarks/interp.js --out DIR [--preset P] [--dtype T]
//        [--peer peer.json] [--decode bench.json] [--decode-base bench.json]
// writes DIR/model.gguf (unless there; --prepare: only that), DIR/tapir.json and, with --peer, DIR/interp.json:
// {"card", "workloads": {name: {"tapir_ms", "peer_ms", "speedup", "first_run_ms"}}, "decode": {...}}.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Model } from '../runtime/model.js';
import { Executor, creation } from '../runtime/executor.js';
import { releaseGpu } from '../runtime/gpu.js';
import { loadModelSource } from '../runtime/node/load.js';
import { writeSynthGGUF } from '../runtime/node/write_file.js';
import { benchWeights, synthModel } from '../runtime/synth/synth.js';
import { logitLens } from '../runtime/interp/lens.js';
import { activationPatching } from '../runtime/interp/patching.js';
import { attributionPatching } from '../runtime/interp/attribution.js';
import { gradientGraph } from '../runtime/interp/gradients.js';
import { compile } from '../compiler/passes.js';
import type { Plan } from '../compiler/plan.js';
import { OPSET } from '../ops/index.js';
import { TRANSPOSED_SPLIT } from '../ops/matvec_t.js';
import { llama } from '../models/llama.js';
import type { DType } from '../compiler/ir/dtype.js';
import type { Target } from '../compiler/target.js';
import { headSize, qWidth } from '../models/llama.js';

const WORKLOADS = ['cache128', 'cache8x128', 'lens16', 'patch16x16', 'prefill512', 'grad128', 'attrib16x16'] as const;
type Workload = (typeof WORKLOADS)[number];

const { values: a } = parseArgs({ options: {
  out: { type: 'string' }, preset: { type: 'string', default: 'llama-3.2-1b' }, dtype: { type: 'string', default: 'f16' },
  repeat: { type: 'string', default: '5' }, warmup: { type: 'string', default: '3' }, workload: { type: 'string' }, prepare: { type: 'boolean' }, peer: { type: 'string' }, decode: { type: 'string' }, 'decode-base': { type: 'string' },
} });
const out = a.out ?? '/tmp/tapir-interp';
const file = path.join(out, 'model.gguf');
const repeat = Number(a.repeat), warmup = Number(a.warmup);
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
/** the least time a workload's untimed calls take before its timed ones */
const WARMUP_MS = 1500;
/** how long the GPU idles before the after-idle call */
const IDLE_MS = 2000;

type GradProfile = { total_ms: number; dispatches: number; top: { kernel: string; ms: number; count: number }[] };
interface One { workload: Workload; load_ms: number; after_idle_ms: number; forward_ms?: number; grad_memory?: Record<string, number>; grad_profile?: GradProfile & { splits: Record<string, number>; f32?: GradProfile | undefined }; first_run_ms: number; first_run?: { variants_ms: number; executors_ms: number; made: number; pipelines_ms: number; build_ms: number; check_ms: number }; warm_variant_ms?: number; new_length_ms?: number; ms: number; runs_ms: number[]; warmup_ms: number[]; device: string; tokens_per_s?: number; matmul?: { positions: number; products_ms: number; tflops: number; variants: Record<string, number | string> } }

/** One workload in this process: load, the first call, then `repeat` calls. */
async function one(w: Workload): Promise<One> {
  const t0 = performance.now();
  const model = await Model.create(loadModelSource(file));
  const loadMs = performance.now() - t0;
  const V = model.config.vocabSize;
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % V);
  const prompt = (n: number) => [model.tokenizer.vocab.bos, ...Array.from({ length: n - 1 }, rand)];
  const resid = 'blocks.*.hook_resid_post';
  const [p128, batch, p16, c16, p512] = [prompt(128), Array.from({ length: 8 }, () => prompt(128)), prompt(16), prompt(16), prompt(512)];
  const target = 1234 % V, distractor = 5678 % V;
  const runs: Record<Workload, () => Promise<unknown>> = {
    // what `tapir cache` runs (no logits read back), for one prompt and a batch
    cache128: () => model.runWithHooks(p128, { interventions: [], hooks: resid, logits: 'none' }),
    cache8x128: () => model.runBatchWithHooks(batch, { interventions: [], hooks: resid, logits: 'none' }),
    // what `tapir lens` and `tapir patch` run by default
    lens16: () => logitLens(model, p16, { target, top: 5, progress: () => {} }), // (the CLI reports progress: it waits for each pass)
    patch16x16: () => activationPatching(model, p16, c16, { target, distractor, sites: ['resid_pre'] }),
    prefill512: () => model.prefill(p512, 'next'),
    grad128: () => model.runWithGradients(p128, { target, distractor, hooks: 'blocks.*.hook_resid_pre' }),
    attrib16x16: () => attributionPatching(model, p16, c16, { target, distractor, sites: ['resid_pre'] }),
  };
  // the gradient workloads' yardstick: one forward of the same prompt (the prefill, next token only)
  const forwardOf: Partial<Record<Workload, () => Promise<unknown>>> = { grad128: () => model.prefill(p128, 'next'), attrib16x16: () => model.prefill(p16, 'next') };
  // an executor's dispatches each timed alone, after half a second of its runs (the clocks up: an idle
  // GPU between profiles ran them at a third of the speed, run 2026-12-07-h100-k), each kernel's least
  // of three profiles
  const warmProfile = async (ex: Executor, inputs: Readonly<Record<string, number | Int32Array>>) => {
    for (const t0 = performance.now(); performance.now() - t0 < 500;) await ex.run(inputs, Object.keys(ex.plan.outputs)[0]!);
    const ps = [await ex.profile(inputs), await ex.profile(inputs), await ex.profile(inputs)];
    if (!ps[0]) return undefined;
    return new Map([...ps[0].entries()].map(([k, v]) => [k, { count: v.count, ns: Math.min(...ps.map((p) => p!.get(k)!.ns)) }]));
  };
  // a plan made for this model (another target or graph), profiled so
  const profilePlan = async (plan: Plan, inputs: Readonly<Record<string, number | Int32Array>>) => {
    const ex = await Executor.create(model.executor.gpu, plan, model['weights'], model.executor);
    try { return await warmProfile(ex, inputs); } finally { ex.destroy(); }
  };
  const timed = async () => { const s = performance.now(); await runs[w](); return performance.now() - s; };
  // where a first run's time goes: plan variants made (compiled, then their executors created)
  const spent = { variants_ms: 0, executors_ms: 0, made: 0 };
  const clock = <A extends unknown[], R>(f: (...a: A) => Promise<R>, add: (ms: number) => void) => async (...a: A) => { const s = performance.now(); try { return await f(...a); } finally { add(performance.now() - s); } };
  const [variant, lensEx, create] = [model.variant.bind(model), model.lensExecutor.bind(model), Executor.create];
  model.variant = clock(variant, (ms) => { spent.variants_ms += ms; });
  model.lensExecutor = clock(lensEx, (ms) => { spent.variants_ms += ms; });
  Executor.create = clock(create, (ms) => { spent.executors_ms += ms; spent.made++; });
  Object.assign(creation, { pipelines_ms: 0, build_ms: 0, check_ms: 0 });
  const first = await timed();
  const fix = (x: number) => +x.toFixed(1);
  const firstRun = { ...spent, variants_ms: fix(spent.variants_ms), executors_ms: fix(spent.executors_ms), pipelines_ms: fix(creation.pipelines_ms), build_ms: fix(creation.build_ms), check_ms: fix(creation.check_ms) };
  [model.variant, model.lensExecutor, Executor.create] = [variant, lensEx, create];
  const ms: number[] = [];
  const warm: number[] = [];
  // untimed calls until the GPU is clocked up: at least `warmup` of them and WARMUP_MS of work (run y:
  // lens16's calls still fell 69 → 42 → 29 ms after three; a warm process ran them at 17 ms)
  const w0 = performance.now();
  while (warm.length < warmup || performance.now() - w0 < WARMUP_MS) warm.push(await timed());
  for (let i = 0; i < repeat; i++) ms.push(await timed());
  // (the gradient workloads) where the backward's time goes: the gradient plan of the prompt, each
  // dispatch timed alone, summed by kernel (the top ones), right after the timed calls (the GPU warm)
  let gradProfile: One['grad_profile'];
  if (w === 'grad128' || w === 'attrib16x16') {
    const tokens = w === 'grad128' ? p128 : c16, hooks = Array.from({ length: model.config.nLayers }, (_, l) => `blocks.${l}.hook_resid_pre`);
    // (and the transposed products split otherwise along their rows, and on the f32 kernel: which the
    // default should be)
    const profileWith = async (over: Partial<Target> = {}) => {
      const t = { ...model['target'], ...over };
      const plan = compile(gradientGraph(model.config, (n) => model.weightDtype(n) ?? 'f32', tokens.length, hooks), OPSET, t, {}).plan!;
      const prof = await profilePlan(plan, { token: Int32Array.from(tokens), pos: 0, ids: Int32Array.of(target, distractor) });
      if (!prof) return undefined;
      const rows = [...prof.entries()].map(([k, v]) => ({ kernel: k, ms: +(v.ns / 1e6).toFixed(3), count: v.count })).sort((x, y) => y.ms - x.ms);
      return { total_ms: +rows.reduce((a, r) => a + r.ms, 0).toFixed(2), dispatches: plan.dispatches.length, top: rows.slice(0, 14) };
    };
    const base = await profileWith();
    if (base) gradProfile = { ...base, splits: { [JSON.stringify(TRANSPOSED_SPLIT)]: base.total_ms } };
    for (const split of [{ groups: 264, minRows: 512 }, { groups: 1056, minRows: 128 }, { groups: 2112, minRows: 64 }].filter((x) => JSON.stringify(x) !== JSON.stringify(TRANSPOSED_SPLIT))) {
      const p = await profileWith({ transposedSplit: split });
      if (p && gradProfile) gradProfile.splits[JSON.stringify(split)] = p.total_ms;
    }
    // without the tensor cores (every product f32, the forward's too): by kernel, to set beside the
    // tensor-core transposed product's
    if (gradProfile && model['target'].matrices) gradProfile.f32 = await profileWith({ matrices: false }).catch((e) => ({ total_ms: NaN, dispatches: 0, top: [{ kernel: String(e), ms: 0, count: 0 }] }));
  }
  // (the gradient workloads) the forward of the same prompt, timed while the GPU is as warm
  let forwardMs: number | undefined, gradMemory: One['grad_memory'];
  if (forwardOf[w]) {
    const f: number[] = [];
    await forwardOf[w]!(); // (its plan made, untimed)
    for (let i = 0; i < repeat; i++) { const s0 = performance.now(); await forwardOf[w]!(); f.push(performance.now() - s0); }
    forwardMs = median(f);
  }
  // the same call once more after the GPU has idled (IDLE_MS): everything it needs made already, so
  // what is left of a first run's excess is the GPU's own (its clocks come down when idle)
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const afterIdleMs = await timed();
  // the same workload on a prompt of another length, once, in this warm process: its new plan variants
  // made and run (what the first run costs beyond what a fresh process adds)
  const other: Partial<Record<Workload, () => Promise<unknown>>> = {
    cache128: () => model.runWithHooks(prompt(120), { interventions: [], hooks: resid, logits: 'none' }),
    lens16: () => logitLens(model, prompt(15), { target, top: 5 }),
  };
  if (w === 'grad128') {
    // the backward's planned memory at context 4096 (compiled, not run): beside the forward's KV cache
    const c = { ...model.config, contextLength: 4096 }, hooks = Array.from({ length: c.nLayers }, (_, l) => `blocks.${l}.hook_resid_pre`);
    const bwd = compile(gradientGraph(c, (n) => model.weightDtype(n) ?? 'f32', 128, hooks), OPSET, model['target'], {}).plan!;
    const fwd = compile(llama(c, (n) => model.weightDtype(n) ?? 'f32', { positions: 128, head: 'last' }), OPSET, model['target'], {}).plan!;
    const mib = (b: number) => +(b / 2 ** 20).toFixed(1);
    gradMemory = { context: 4096, positions: 128, backward_activation_mib: mib(bwd.memory.activationBytes), backward_scratch_mib: mib(bwd.bytesByKind().scratch ?? 0), forward_activation_mib: mib(fwd.memory.activationBytes), forward_scratch_mib: mib(fwd.bytesByKind().scratch ?? 0), kv_cache_mib: mib(fwd.bytesByKind().state ?? 0) };
  }
  let newLengthMs: number | undefined;
  if (other[w]) { const s = performance.now(); await other[w]!(); newLengthMs = +(performance.now() - s).toFixed(1); }
  // a variant made once the process is warm (compiled and created, nothing run): what a new prompt length costs
  const sv = performance.now();
  await model.variant({ taps: Array.from({ length: model.config.nLayers }, (_, l) => `blocks.${l}.hook_resid_post`), positions: 77, head: 'last' });
  const warmVariantMs = +(performance.now() - sv).toFixed(1);
  // the prefill's matrix products (the layers' and the last position's unembedding), GPU time of its first
  // block with each dispatch timed alone, as TFLOP/s: what is compared with torch.matmul at those shapes
  let matmul: One['matmul'];
  if (w === 'prefill512') {
    const [, len] = model.blocks(512)[0]!, c = model.config, kv = c.nKvHeads * headSize(c);
    const ex = await model.variant({ positions: len, head: 'last' });
    const p = await warmProfile(ex, { token: Int32Array.from(p512.slice(0, len)), pos: 0 });
    const products = [...(p ?? new Map()).entries()].filter(([k]) => /^(matmul|splitSum)/.test(k)).reduce((s, [, v]) => s + v.ns, 0) / 1e6;
    const flops = 2 * len * c.nLayers * (c.dim * (qWidth(c) + 2 * kv) + qWidth(c) * c.dim + 3 * c.hiddenDim * c.dim) + 2 * c.vocabSize * c.dim;
    if (p) matmul = { positions: len, products_ms: +products.toFixed(2), tflops: +(flops / products / 1e9).toFixed(2), variants: {} };
    // the same block's products with other tilings (what the defaults should be): the 128 × 128 tensor
    // tiles for every matrix of 2048 rows or more, and other column splits; the default again first and
    // last, made the same way (run b's clocks moved between them: compare within this list only)
    const variants: Record<string, Partial<Target>> = { default: {}, wide2048: { tensorWideRows: 2048 }, wide2048_split1024: { tensorWideRows: 2048, splitCols: 1024 }, split256: { splitCols: 256 }, split1024: { splitCols: 1024 }, default_again: {} };
    for (const [name, over] of Object.entries(variants)) {
      if (!matmul || !model['target'].matrices) break;
      try {
        const plan = compile(llama(c, (n) => model.weightDtype(n) ?? 'f32', { positions: len, head: 'last' }), OPSET, { ...model['target'], ...over }, {}).plan!;
        const q = await profilePlan(plan, { token: Int32Array.from(p512.slice(0, len)), pos: 0 });
        const ms = [...(q ?? new Map()).entries()].filter(([k]) => /^(matmul|splitSum)/.test(k)).reduce((s, [, v]) => s + v.ns, 0) / 1e6;
        matmul.variants[name] = +ms.toFixed(2);
      } catch (e) { matmul.variants[name] = String(e); } // (a variant that fails is reported, not fatal)
    }
  }
  const device = model.executor.gpu.adapterInfo;
  model.dispose();
  await releaseGpu();
  return { workload: w, load_ms: loadMs, first_run_ms: first, after_idle_ms: afterIdleMs, ...(forwardMs !== undefined ? { forward_ms: forwardMs } : {}), ...(gradMemory ? { grad_memory: gradMemory } : {}), ...(gradProfile ? { grad_profile: gradProfile } : {}), first_run: firstRun, warm_variant_ms: warmVariantMs, new_length_ms: newLengthMs, ms: median(ms), runs_ms: ms, warmup_ms: warm, device, ...(matmul ? { matmul } : {}), ...(w === 'prefill512' ? { tokens_per_s: (512 / median(ms)) * 1000 } : {}) };
}

if (a.workload) {
  console.log(JSON.stringify(await one(a.workload as Workload)));
  process.exit(0);
}

fs.mkdirSync(out, { recursive: true });
if (!fs.existsSync(file)) {
  const t0 = performance.now();
  const m = synthModel(a.preset!, a.dtype as DType, 1);
  writeSynthGGUF(m, file, undefined, benchWeights(m));
  console.error(`interp: wrote ${file} (${(fs.statSync(file).size / 2 ** 30).toFixed(2)} GiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
if (a.prepare) process.exit(0); // the model file only (benchmarks/interp_profile.ts reads it)
const results: Record<string, One> = {};
for (const w of WORKLOADS) {
  const r = spawnSync(process.execPath, ['--no-concurrent-recompilation', process.argv[1]!, '--workload', w, '--out', out, '--repeat', String(repeat), '--warmup', String(warmup)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) { console.error(`interp: ${w} failed (exit ${r.status})`); continue; }
  results[w] = JSON.parse(r.stdout.trim().split('\n').pop()!);
  console.error(`interp: ${w}: first ${results[w]!.first_run_ms.toFixed(0)} ms, then ${results[w]!.ms.toFixed(1)} ms (load ${results[w]!.load_ms.toFixed(0)} ms)`);
}
fs.writeFileSync(path.join(out, 'tapir.json'), JSON.stringify(results, null, 1));

// with the peer's numbers (and the decode benches): the interp.json the runbook keeps
if (a.peer) {
  const peer = JSON.parse(fs.readFileSync(a.peer, 'utf8')) as { card: string; workloads: Record<string, { ms: number; first_ms: number }> };
  const row = (mine: string, theirs: string) => {
    const t = results[mine], p = peer.workloads[theirs];
    return t ? { tapir_ms: t.ms, peer_ms: p?.ms ?? null, speedup: p ? p.ms / t.ms : null, first_run_ms: t.first_run_ms, after_idle_ms: t.after_idle_ms } : null;
  };
  const decodeOf = (f?: string) => (f && fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as { decode: { gpuMsPerToken?: number; tokensPerSecond: number }; tapped?: { ratio: number } }) : undefined);
  const [now, base] = [decodeOf(a.decode), decodeOf(a['decode-base'])];
  const loads = Object.values(results).map((r) => r.load_ms);
  const interp = {
    card: peer.card, tapir_device: Object.values(results)[0]?.device,
    workloads: {
      cache128: row('cache128', 'cache128'), cache8x128: row('cache8x128', 'cache8x128'), lens16: row('lens16', 'lens16'),
      patch16x16: row('patch16x16', 'patch16x16'), patch16x16_batched: row('patch16x16', 'patch16x16_batched'), prefill512: row('prefill512', 'prefill512'),
      load: { tapir_ms: loads.length ? median(loads) : null },
    },
    // the products' TFLOP/s in a prefill block, and torch.matmul's at that block's layer products
    prefill512_matmul: (() => {
      const mine = results.prefill512?.matmul, theirs = (peer as { matmul?: Record<string, { tflops: number }> }).matmul?.[String(mine?.positions)];
      return mine ? { ...mine, torch_matmul_tflops: theirs?.tflops ?? null, fraction_of_torch_matmul: theirs ? mine.tflops / theirs.tflops : null } : null;
    })(),
    prefill512_tokens_per_s: { tapir: results.prefill512?.tokens_per_s ?? null, peer: (peer.workloads.prefill512 as { tokens_per_s?: number } | undefined)?.tokens_per_s ?? null },
    // issue 19: the backward beside the forward of the same prompt; the attribution sweep beside one forward
    gradients: {
      grad128: results.grad128 ? { grad_ms: results.grad128.ms, forward_ms: results.grad128.forward_ms, backward_over_forward: (results.grad128.ms - results.grad128.forward_ms!) / results.grad128.forward_ms!, first_run_ms: results.grad128.first_run_ms } : null,
      attrib16x16: results.attrib16x16 ? { sweep_ms: results.attrib16x16.ms, forward_ms: results.attrib16x16.forward_ms, sweep_over_forward: results.attrib16x16.ms / results.attrib16x16.forward_ms!, first_run_ms: results.attrib16x16.first_run_ms } : null,
      memory: results.grad128?.grad_memory ?? null,
    },
    decode: { gpu_ms_per_token: now?.decode.gpuMsPerToken ?? null, base_gpu_ms_per_token: base?.decode.gpuMsPerToken ?? null, tapped_ratio: now?.tapped?.ratio ?? null },
  };
  fs.writeFileSync(path.join(out, 'interp.json'), JSON.stringify(interp, null, 1));
  console.log(JSON.stringify(interp));
}
process.exit(0);
