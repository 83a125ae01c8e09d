// Generation with edits at hooks — steering vectors, ablations, scales, SAE splices — at every
// position, prompt and generated tokens alike: a Decoder (runtime/generate.ts) over plan variants with
// the edits compiled in (the same intervene kernel and splice as hooked runs), sharing the model's
// weights and KV cache. Greedy decoding stays on the GPU as it does unsteered.
import { UsageError } from '../compiler/errors.js';
import { selectHooks } from '../compiler/hooks.js';
import { ivName } from '../ops/intervene.js';
import type { Executor } from './executor.js';
import type { Decoder } from './generate.js';
import type { Graph } from '../compiler/ir/graph.js';
import type { PlanVariant } from './variant.js';
import type { WeightMap } from './weights.js';
import { interventionTables, type Intervention } from './interp/cache.js';
import { saeSplicing, type SaeSplice } from './sae/splice.js';

export interface Steering {
  interventions?: readonly Intervention[];
  saes?: readonly SaeSplice[];
}

/** What steering needs of a model (runtime/model.ts's Model is one). */
export interface SteerHost extends Omit<Decoder, 'prefill' | 'forward' | 'decodeGreedy' | 'variant'> {
  readonly graph: Graph;
  readonly hookNames: readonly string[];
  variant(v: PlanVariant, tensors?: WeightMap): Promise<Executor>;
  /** the prompt in blocks, each through the plan `blockPlan` gives (a new sequence in the KV cache) */
  prefill(tokens: readonly number[], output: 'next' | 'logits', blockPlan: (len: number) => Promise<Executor>): Promise<Float32Array>;
}

/** A Decoder that runs `model` with the steering's edits at every position. */
export async function steeredDecoder(model: SteerHost, s: Steering): Promise<Decoder> {
  const ivs = s.interventions ?? [];
  for (const iv of ivs) {
    if ('fn' in iv) throw new UsageError(`${iv.hook}: hook functions are for runs of a fixed prompt, not generation (give the edit as add, scale, zero or mean)`);
    if ('replace' in iv) throw new UsageError(`${iv.hook}: generation edits every position alike; 'replace' gives values per position of a fixed prompt (use add, scale, zero or mean)`);
    for (const sel of selectHooks(iv.hook, model.hookNames)) if (sel.pos !== undefined) throw new UsageError(`${sel.key}: generation edits every position alike; leave out [pos=...]`);
  }
  const splice = s.saes?.length ? saeSplicing(model.graph, s.saes) : undefined;
  // the edits are the same at every position: tables of one row the plan applies at each
  const one = interventionTables(ivs, model.graph.hooks, model.hookNames, 1);
  const made = new Map<number, Executor>();
  // a prefill block of `positions` (its last position unembedded), or the one-token decode plan
  const variant = async (positions?: number) => {
    const key = positions ?? 0;
    let ex = made.get(key);
    if (!ex) {
      ex = await model.variant({ interventions: [...one.keys()].map((hook) => ({ hook, rows: 1, every: true })), saes: splice?.specs, ...(positions ? { positions, head: 'last' as const } : {}) }, splice?.tensors);
      for (const [hook, t] of one) { ex.write(ivName(hook, 'a'), t.a); ex.write(ivName(hook, 'b'), t.b); }
      made.set(key, ex);
    }
    return ex;
  };
  let pos = 0;
  const room = (steps: number) => { if (pos + steps > model.contextLength) throw new UsageError(`the context of ${model.contextLength} positions is full`); };
  return {
    tokenizer: model.tokenizer,
    contextLength: model.contextLength,
    config: model.config,
    checkTokens: (t) => model.checkTokens(t),
    variant: (v) => model.variant(v),
    async prefill(tokens, output) {
      const out = await model.prefill(tokens, output, (len) => variant(len)); // (a new sequence in the model's KV cache)
      pos = tokens.length;
      return out;
    },
    async forward(token) {
      room(1);
      const out = await (await variant()).run({ token, pos }, 'logits');
      pos++;
      return out;
    },
    async decodeGreedy(token, steps) {
      room(steps);
      const { tokens } = await (await variant()).greedyOnGpu(token, pos, steps);
      pos += steps;
      return Array.from(tokens);
    },
  };
}
