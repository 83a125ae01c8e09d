// Hooked runs: a prompt (or a batch of prompts of one length) through a plan variant with the selected
// hooks tapped and the interventions compiled in, the hooks' values copied out on the GPU after each
// prefill block and read back once at the end. SAE splices are graph edits of the same plan
// (runtime/sae/splice.ts), their latents hooks like any other.
import { UsageError } from '../../compiler/errors.js';
import type { Graph } from '../../compiler/ir/graph.js';
import { hookNamesOf, selectHooks } from '../../compiler/hooks.js';
import { ivName } from '../../ops/intervene.js';
import type { Executor, StageCopy } from '../executor.js';
import type { LlamaConfig } from '../../models/llama.js';
import { saeSplicing, type SaeSplice } from '../sae/splice.js';
import type { WeightMap } from '../weights.js';
import { checkSelection, interventionTables, patternSelection, sliceSelection, type Intervention } from './cache.js';
import type { PlanVariant } from '../variant.js';
import { ActivationCache } from './activation_cache.js';
import { leaseStaging } from '../staging.js';
import { resolveHookFunctions } from './hook_fns.js';

/** What a hooked run needs of a model (runtime/model.ts's Model is one). */
export interface RunHost {
  readonly config: LlamaConfig;
  readonly graph: Graph;
  readonly executor: Executor;
  readonly hookNames: readonly string[];
  checkTokens(tokens: readonly number[]): void;
  /** positions 0..n in prefill blocks ([start, length]) for a batch of B prompts */
  blocks(n: number, batch?: number): [number, number][];
  variant(v: PlanVariant, tensors?: WeightMap): Promise<Executor>;
  /** a weight's values by GGUF name (the cache's logitAttrs reads the unembedding) */
  weightValues(name: string): Float64Array;
}

export interface HookedRunOptions {
  interventions: readonly Intervention[];
  hooks?: string | readonly string[];
  saes?: readonly SaeSplice[];
  /** which logits come back: every position's (the default), each prompt's last position's, or none
   *  (the run computes the unembedding only where it is read, unless a final-norm or logits hook is
   *  tapped) */
  logits?: 'all' | 'last' | 'none';
}

/** One prompt with interventions and cached hooks (and SAE splices); the KV cache then holds it. */
export async function runWithHooks(m: RunHost, tokens: readonly number[], opts: HookedRunOptions): Promise<{ logits: Float32Array[]; cache: ActivationCache }> {
  const r = await runBatchWithHooks(m, [tokens], opts);
  return { logits: r.logits[0]!, cache: r.cache };
}

const tile = (x: Float32Array, times: number) => {
  if (times === 1) return x;
  const out = new Float32Array(x.length * times);
  for (let k = 0; k < times; k++) out.set(x, k * x.length);
  return out;
};

/** What a hooked run of these prompts runs: its hooks (the spliced graph's, with SAEs), the selected
 *  ones, and each prefill block's plan variant with the interventions' tables written. */
export async function preparedRun(m: RunHost, prompts: readonly (readonly number[])[], opts: HookedRunOptions & { head?: 'all' | 'last' }) {
  if (prompts.length === 0) throw new UsageError('no prompts to run');
  prompts.forEach((p) => m.checkTokens(p));
  const n = prompts[0]!.length, B = prompts.length;
  if (prompts.some((p) => p.length !== n)) throw new UsageError(`prompts of ${[...new Set(prompts.map((p) => p.length))].join(' and ')} tokens: a batch needs prompts of one token length`);
  // with SAEs spliced in, the hooks are the spliced graph's (the SAEs' latents among them)
  const splice = opts.saes?.length ? saeSplicing(m.graph, opts.saes) : undefined;
  const hooks = splice?.hooks ?? m.graph.hooks;
  const selector = typeof opts.hooks === 'string' ? opts.hooks : (opts.hooks ?? []).join(',');
  const sels = selector.trim() ? selectHooks(selector, hookNamesOf(hooks)) : [];
  for (const s of sels) checkSelection(s, hooks[s.hook]!.shape, n);
  const names = [...new Set(sels.map((s) => s.hook))];
  // the last position's logits alone, unless a hook needs the final norm or the logits of every position
  const head = opts.head === 'last' && !names.some((h) => h === 'hook_logits' || h.startsWith('ln_final.')) ? 'last' : 'all';
  const tables = interventionTables(opts.interventions, m.graph.hooks, m.hookNames, n);
  const blocks: { ex: Executor; start: number; len: number }[] = [];
  for (const [start, len] of m.blocks(n, B)) {
    const ex = await m.variant({ taps: names, interventions: [...tables.keys()].map((hook) => ({ hook, rows: n })), saes: splice?.specs, positions: len, batch: B, head }, splice?.tensors);
    // every prompt of a batch has its own tables: the same edits, B times
    for (const [hook, t] of tables) { ex.write(ivName(hook, 'a'), tile(t.a, B)); ex.write(ivName(hook, 'b'), tile(t.b, B)); }
    blocks.push({ ex, start, len });
  }
  return { n, B, hooks, sels, names, head, blocks };
}

/** Submit every block of a prepared run (the batch's KV caches cleared first), each with its copies
 *  into staging buffers; nothing is waited for. */
export function submitRun(prompts: readonly (readonly number[])[], run: Awaited<ReturnType<typeof preparedRun>>, copies: (block: { start: number; len: number; last: boolean }) => StageCopy[]) {
  run.blocks[0]!.ex.reset(); // the batch's caches (for one prompt: the model's own)
  run.blocks.forEach(({ ex, start, len }, i) => {
    const token = Int32Array.from(prompts.flatMap((p) => p.slice(start, start + len)));
    ex.submit({ token, pos: start }, copies({ start, len, last: i === run.blocks.length - 1 }));
  });
}

/** Several prompts of one length at once (each with its own KV cache): every pass takes a block of
 *  positions of every prompt. Cache entries are [batch, pos, ...]; interventions apply to every prompt.
 *  Every hook's values (and the logits asked for) are copied on the GPU into one buffer after each
 *  block and read back once, at the end. */
export async function runBatchWithHooks(m: RunHost, prompts: readonly (readonly number[])[], opts: HookedRunOptions):
  Promise<{ logits: Float32Array[][]; cache: ActivationCache }> {
  // hook functions first: each becomes a replacement (one more run of the prompt each: hook_fns.ts)
  if (opts.interventions.some((iv) => 'fn' in iv)) {
    const read = async (interventions: readonly Intervention[], hook: string) => (await runBatchWithHooks(m, prompts, { interventions, saes: opts.saes, hooks: hook, logits: 'none' })).cache.get(hook)!.data;
    return runBatchWithHooks(m, prompts, { ...opts, interventions: await resolveHookFunctions(m.graph, m.hookNames, prompts.length, opts.interventions, read) });
  }
  const want = opts.logits ?? 'all';
  const run = await preparedRun(m, prompts, { ...opts, head: want === 'all' ? 'all' : 'last' });
  const { n, B, hooks, sels, names, head } = run;
  const V = m.config.vocabSize;
  // one staging buffer: each hook's [B, n, per-position] values, then the logits
  let at = 0;
  const regions = names.map((name) => {
    const bytes = hooks[name]!.node.size * 4; // per position
    const r = { name, bytes, at };
    at += bytes * n * B;
    return r;
  });
  const logitsAt = at, logitRows = want === 'all' ? n : want === 'last' ? 1 : 0;
  at += logitRows * B * V * 4;
  const limit = m.executor.gpu.limits.maxBufferSize;
  if (at > limit) throw new UsageError(`this run would read back ${(at / 2 ** 20).toFixed(0)} MiB at once, more than the device's largest buffer (${(limit / 2 ** 20).toFixed(0)} MiB): select fewer hooks or positions${want === 'all' ? ", or ask for the last position's logits only" : ''}`);
  const d = m.executor.gpu.device;
  // every hook whole (a cache's usual ask) over several blocks: each block read back as the GPU finishes it
  const isWhole = (x: (typeof sels)[number]) => hooks[x.hook]!.layout !== 'pattern' && x.pos === undefined && x.head === undefined;
  const wholeOnly = sels.every(isWhole);
  if (wholeOnly && want !== 'all' && run.blocks.length > 1) return readByBlock(m, prompts, run, regions, want === 'last');
  const lease = leaseStaging(d, Math.max(16, at)), staging = lease.buffer;
  try {
    submitRun(prompts, run, ({ start, len, last }) => {
      // the block's outputs are [B, len, ...]: each prompt's rows go to its positions start.. of [B, n, ...]
      const stage: StageCopy[] = regions.flatMap((s) => prompts.map((_, b) => ({ output: `hook:${s.name}`, dst: staging, srcOffset: b * len * s.bytes, offset: s.at + (b * n + start) * s.bytes, bytes: len * s.bytes })));
      const row = V * 4;
      if (want === 'all') stage.push(...prompts.map((_, b) => ({ output: 'logits', dst: staging, srcOffset: b * len * row, offset: logitsAt + (b * n + start) * row, bytes: len * row })));
      if (want === 'last' && last) stage.push(...prompts.map((_, b) => ({ output: 'logits', dst: staging, srcOffset: (head === 'last' ? b : b * len + len - 1) * row, offset: logitsAt + b * row, bytes: row })));
      return stage;
    });
    // while the GPU runs, the arrays whole hooks are returned in are made and written once: a fresh
    // array's pages are mapped in on first touch, which for a batch's 134 MB took as long as the GPU's
    // whole pass (benchmarks/interp_profile.ts, readback); touched now, that cost hides behind the GPU
    const whole = new Map(regions.flatMap((s) => sels.filter((x) => x.hook === s.name && isWhole(x)).map((x) => [x.key, new Float32Array(B * n * (s.bytes / 4)).fill(0)] as const)));
    // every value is copied out of the mapping once, straight into what is returned
    const all = new Float32Array(await lease.read(Math.max(16, at)));
    const logits = prompts.map((_, b) => Array.from({ length: logitRows }, (_, t) => all.slice((logitsAt / 4) + (b * logitRows + t) * V, (logitsAt / 4) + (b * logitRows + t + 1) * V)));
    const cache = new ActivationCache(m);
    for (const s of regions) {
      const h = hooks[s.name]!;
      const per = s.bytes / 4;
      for (const sel of sels.filter((x) => x.hook === s.name)) {
        // a whole hook is the batch's [B, n, ...] as staged: one copy out of the mapping
        const made = whole.get(sel.key);
        if (made) {
          made.set(all.subarray(s.at / 4, s.at / 4 + B * n * per));
          cache.set(sel.key, { shape: [B, n, ...h.shape], data: made });
          continue;
        }
        const parts = prompts.map((_, b) => {
          const one = all.subarray(s.at / 4 + b * n * per, s.at / 4 + (b + 1) * n * per);
          return h.layout === 'pattern' ? patternSelection(sel, one, h.shape, n) : sliceSelection(sel, one, h.shape, n);
        });
        const data = parts.length === 1 ? parts[0]!.data : new Float32Array(parts.reduce((k, p) => k + p.data.length, 0));
        if (parts.length > 1) parts.reduce((k, p) => (data.set(p.data, k), k + p.data.length), 0);
        cache.set(sel.key, { shape: [B, ...parts[0]!.shape.slice(1)], data });
      }
    }
    return { logits, cache };
  } finally {
    lease.release();
  }
}

/** A hooked run of whole hooks over several blocks, each block's values staged in a buffer of its own and
 *  copied out as soon as the GPU has finished that block, while it runs the next ones (one buffer for the
 *  whole run is mapped only after the last block: its 134 MB for a batch of eight 128-token prompts were
 *  copied out after the GPU had finished, ~10-14 ms on the H100 host, benchmarks/interp_profile.ts). The
 *  values, and the order they are summed in, are the same as the one-buffer path's. */
async function readByBlock(m: RunHost, prompts: readonly (readonly number[])[], run: Awaited<ReturnType<typeof preparedRun>>,
  regions: readonly { name: string; bytes: number }[], lastLogits: boolean): Promise<{ logits: Float32Array[][]; cache: ActivationCache }> {
  const { n, B, hooks, sels, head } = run, V = m.config.vocabSize, row = V * 4, d = m.executor.gpu.device;
  // a block's staging: [region][prompt][its len rows], then (the last block) each prompt's last logits
  const layout = run.blocks.map(({ len }, i) => {
    let at = 0;
    const where = regions.map((s) => { const r = at; at += B * len * s.bytes; return r; });
    const logitsAt = at;
    if (lastLogits && i === run.blocks.length - 1) at += B * row;
    return { where, logitsAt, bytes: Math.max(16, at) };
  });
  const leases = layout.map((l) => leaseStaging(d, l.bytes));
  try {
    submitRun(prompts, run, ({ start, len, last }) => {
      const i = run.blocks.findIndex((b) => b.start === start), l = layout[i]!, dst = leases[i]!.buffer;
      const stage: StageCopy[] = regions.flatMap((s, k) => prompts.map((_, b) => ({ output: `hook:${s.name}`, dst, srcOffset: b * len * s.bytes, offset: l.where[k]! + b * len * s.bytes, bytes: len * s.bytes })));
      if (lastLogits && last) stage.push(...prompts.map((_, b) => ({ output: 'logits', dst, srcOffset: (head === 'last' ? b : b * len + len - 1) * row, offset: l.logitsAt + b * row, bytes: row })));
      return stage;
    });
    // the arrays returned, made and touched while the GPU runs (see runBatchWithHooks)
    const arrays = regions.map((s) => new Float32Array(B * n * (s.bytes / 4)).fill(0));
    let logits: Float32Array[][] = prompts.map(() => []);
    for (const [i, { start, len }] of run.blocks.entries()) {
      const l = layout[i]!, all = new Float32Array(await leases[i]!.read(l.bytes));
      regions.forEach((s, k) => {
        const per = s.bytes / 4;
        for (let b = 0; b < B; b++) arrays[k]!.set(all.subarray((l.where[k]! / 4) + b * len * per, (l.where[k]! / 4) + (b + 1) * len * per), (b * n + start) * per);
      });
      if (lastLogits && i === run.blocks.length - 1) logits = prompts.map((_, b) => [all.slice(l.logitsAt / 4 + b * V, l.logitsAt / 4 + (b + 1) * V)]);
      leases[i]!.release();
    }
    const cache = new ActivationCache(m);
    regions.forEach((s, k) => {
      for (const sel of sels.filter((x) => x.hook === s.name)) cache.set(sel.key, { shape: [B, n, ...hooks[s.name]!.shape], data: arrays[k]! });
    });
    return { logits, cache };
  } finally {
    for (const l of leases) l.release();
  }
}
