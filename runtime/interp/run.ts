// Hooked runs: a prompt (or a batch of prompts of one length) through a plan variant with the selected
// hooks tapped and the interventions compiled in, the hooks' values copied out on the GPU after each
// prefill block and read back once at the end. SAE splices are graph edits of the same plan
// (runtime/sae/splice.ts), their latents hooks like any other.
import { UsageError } from '../../compiler/errors.js';
import type { Graph } from '../../compiler/ir/graph.js';
import { selectHooks } from '../../compiler/hooks.js';
import { ivName } from '../../ops/intervene.js';
import { readBuffer, type Executor, type StageCopy } from '../executor.js';
import type { LlamaConfig } from '../../models/llama.js';
import { saeSplicing, type SaeSplice } from '../sae/splice.js';
import type { WeightMap } from '../weights.js';
import { checkSelection, interventionTables, patternSelection, sliceSelection, type CacheEntry, type Intervention } from './cache.js';
import type { PlanVariant } from '../variant.js';

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
}

export interface HookedRunOptions {
  interventions: readonly Intervention[];
  hooks?: string | readonly string[];
  saes?: readonly SaeSplice[];
}

/** One prompt with interventions and cached hooks (and SAE splices); the KV cache then holds it. */
export async function runWithHooks(m: RunHost, tokens: readonly number[], opts: HookedRunOptions): Promise<{ logits: Float32Array[]; cache: Map<string, CacheEntry> }> {
  const r = await runBatchWithHooks(m, [tokens], opts);
  return { logits: r.logits[0]!, cache: r.cache };
}

/** Several prompts of one length at once (each with its own KV cache): every pass takes a block of
 *  positions of every prompt. Cache entries are [batch, pos, ...]; interventions apply to every prompt. */
export async function runBatchWithHooks(m: RunHost, prompts: readonly (readonly number[])[], opts: HookedRunOptions):
  Promise<{ logits: Float32Array[][]; cache: Map<string, CacheEntry> }> {
  if (prompts.length === 0) throw new UsageError('no prompts to run');
  prompts.forEach((p) => m.checkTokens(p));
  const n = prompts[0]!.length, B = prompts.length;
  if (prompts.some((p) => p.length !== n)) throw new UsageError(`prompts of ${[...new Set(prompts.map((p) => p.length))].join(' and ')} tokens: a batch needs prompts of one token length`);
  // with SAEs spliced in, the hooks are the spliced graph's (the SAEs' latents among them)
  const splice = opts.saes?.length ? saeSplicing(m.graph, opts.saes) : undefined;
  const hooks = splice?.hooks ?? m.graph.hooks;
  const selector = typeof opts.hooks === 'string' ? opts.hooks : (opts.hooks ?? []).join(',');
  const sels = selector.trim() ? selectHooks(selector, Object.keys(hooks)) : [];
  for (const s of sels) checkSelection(s, hooks[s.hook]!.shape, n);
  const names = [...new Set(sels.map((s) => s.hook))];
  const tables = interventionTables(opts.interventions, m.graph.hooks, m.hookNames, n);
  const blocks: { ex: Executor; start: number; len: number }[] = [];
  for (const [start, len] of m.blocks(n, B)) {
    const ex = await m.variant({ taps: names, interventions: [...tables.keys()].map((hook) => ({ hook, rows: n })), saes: splice?.specs, positions: len, batch: B }, splice?.tensors);
    for (const [hook, t] of tables) { ex.write(ivName(hook, 'a'), t.a); ex.write(ivName(hook, 'b'), t.b); }
    blocks.push({ ex, start, len });
  }
  const d = m.executor.gpu.device;
  const staged = names.map((name) => {
    const bytes = hooks[name]!.node.size * 4; // per position
    return { name, bytes, dst: d.createBuffer({ size: Math.max(16, bytes * n * B), usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC }) };
  });
  try {
    blocks[0]!.ex.reset(); // the batch's caches (for one prompt: the model's own)
    const logits: Float32Array[][] = prompts.map(() => []);
    const V = m.config.vocabSize;
    for (const { ex, start, len } of blocks) {
      // the block's outputs are [B, len, ...]: each prompt's rows go to its positions start.. of [B, n, ...]
      const stage: StageCopy[] = staged.flatMap((s) => prompts.map((_, b) => ({ output: `hook:${s.name}`, dst: s.dst, srcOffset: b * len * s.bytes, offset: (b * n + start) * s.bytes, bytes: len * s.bytes })));
      const token = Int32Array.from(prompts.flatMap((p) => p.slice(start, start + len)));
      const out = await ex.run({ token, pos: start }, 'logits', stage);
      for (let b = 0; b < B; b++) for (let t = 0; t < len; t++) logits[b]!.push(out.slice((b * len + t) * V, (b * len + t + 1) * V));
    }
    const cache = new Map<string, CacheEntry>();
    for (const s of staged) {
      const all = await readBuffer(m.executor.gpu, s.dst);
      const h = hooks[s.name]!;
      const per = s.bytes / 4;
      for (const sel of sels.filter((x) => x.hook === s.name)) {
        const parts = prompts.map((_, b) => {
          const one = all.subarray(b * n * per, (b + 1) * n * per);
          return h.layout === 'pattern' ? patternSelection(sel, one, h.shape, n) : sliceSelection(sel, one, h.shape, n);
        });
        const data = new Float32Array(parts.reduce((k, p) => k + p.data.length, 0));
        parts.reduce((at, p) => (data.set(p.data, at), at + p.data.length), 0);
        cache.set(sel.key, { shape: [B, ...parts[0]!.shape.slice(1)], data });
      }
    }
    return { logits, cache };
  } finally {
    for (const s of staged) s.dst.destroy();
  }
}
