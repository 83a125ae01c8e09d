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
  readonly config: Decoder['config'] & { readonly vocabSize: number };
  variant(v: PlanVariant, tensors?: WeightMap): Promise<Executor>;
  /** a new sequence: the KV cache cleared */
  reset(): void;
  blocks(n: number): [number, number][];
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
  const made = new Map<string, Executor>();
  const variant = async (positions: number | undefined, head: 'all' | 'last') => {
    const key = `${positions ?? 0}|${head}`;
    let ex = made.get(key);
    if (!ex) {
      ex = await model.variant({ interventions: [...one.keys()].map((hook) => ({ hook, rows: 1, every: true })), saes: splice?.specs, ...(positions ? { positions } : {}), head }, splice?.tensors);
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
      model.reset(); // a new sequence in the model's KV cache
      let out: Float32Array | undefined;
      const per = output === 'next' ? 1 : model.config.vocabSize;
      for (const [start, len] of model.blocks(tokens.length)) {
        const ex = await variant(len, 'last');
        const inputs = { token: Int32Array.from(tokens.slice(start, start + len)), pos: start };
        if (start + len < tokens.length) ex.submit(inputs);
        else out = (await ex.run(inputs, output)).slice(0, per);
      }
      pos = tokens.length;
      return out!;
    },
    async forward(token) {
      room(1);
      const out = await (await variant(undefined, 'all')).run({ token, pos }, 'logits');
      pos++;
      return out;
    },
    async decodeGreedy(token, steps) {
      room(steps);
      const { tokens } = await (await variant(undefined, 'all')).greedyOnGpu(token, pos, steps);
      pos += steps;
      return Array.from(tokens);
    },
  };
}
