// Text generation on a model: a prefill of the prompt, then one token a step. Greedy decoding keeps
// the token loop on the GPU; sampling reads the logits each step. Batch sampling runs several
// sequences at once, each with its own KV cache and sampler.
import { UsageError } from '../compiler/errors.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import { StreamDecoder, type Tokenizer } from './tokenizers/common.js';
import type { Executor } from './executor.js';
import type { PlanVariant } from './variant.js';

export interface GenerateOptions extends Partial<SamplerOptions> {
  prompt?: string;
  /** token ids to start from instead of a prompt (BOS included) */
  tokens?: number[];
  maxNewTokens?: number;
  /** called with each new piece of text as it is decoded */
  onText?: (text: string) => void;
  /** stop at EOS / BOS (default true) */
  stopAtEos?: boolean;
  /** more tokens that end the text (a chat turn's end), where EOS does */
  stopTokens?: readonly number[];
}

export interface GenerateResult {
  tokens: number[];
  promptTokens: number;
  text: string;
  timings: { prefillMs: number; decodeMs: number; decodeTokensPerSecond: number };
  seed: number;
}

/** What generation needs of a model (runtime/model.ts's Model is one). */
export interface Decoder {
  readonly tokenizer: Tokenizer;
  readonly contextLength: number;
  readonly config: { readonly vocabSize: number };
  checkTokens(tokens: readonly number[]): void;
  prefill(tokens: readonly number[], output: 'next' | 'logits'): Promise<Float32Array>;
  forward(token: number): Promise<Float32Array>;
  /** `steps` greedy tokens after `token`, chosen on the GPU */
  decodeGreedy(token: number, steps: number): Promise<number[]>;
  variant(v: PlanVariant): Promise<Executor>;
}

export async function generate(m: Decoder, o: GenerateOptions = {}): Promise<GenerateResult> {
  const tokens = o.tokens ? [...o.tokens] : m.tokenizer.encode(o.prompt ?? '');
  // a model whose tokenizer adds no BOS (Qwen's) has nothing to start from without a prompt
  if (tokens.length === 0 && !o.tokens) throw new UsageError("this model's tokenizer adds no BOS token, so there is nothing to start from: give a prompt with -p");
  m.checkTokens(tokens);
  const promptTokens = tokens.length;
  const seed = o.seed ?? Date.now() % 2 ** 31;
  const sampler = new Sampler({ temperature: o.temperature ?? 0, topP: o.topP ?? 0.9, seed });
  const maxNew = Math.min(o.maxNewTokens ?? 256, m.contextLength - promptTokens);
  const { bos, eos } = m.tokenizer.vocab;
  const stream = new StreamDecoder(m.tokenizer);
  if (o.onText) for (const t of tokens) { const s = stream.push(t); if (s) o.onText(s); }
  // greedy decoding keeps the token loop on the GPU (argmax -> next token), read back in chunks that
  // grow, so text streams early and a stop at EOS wastes little; sampling reads the logits each step
  const greedy = sampler.opts.temperature === 0;
  const stops = (t: number) => o.stopAtEos !== false && (t === eos || t === bos || (o.stopTokens?.includes(t) ?? false));
  const t0 = performance.now();
  const last = await m.prefill(tokens, greedy ? 'next' : 'logits');
  let next = greedy ? new Int32Array(last.buffer, last.byteOffset, 1)[0]! : sampler.sample(last);
  const t1 = performance.now();
  const emit = (t: number) => {
    tokens.push(t);
    if (o.onText) { const s = stream.push(t); if (s) o.onText(s); }
  };
  if (greedy) {
    for (let chunk = 8, done = false; !done && tokens.length - promptTokens < maxNew; chunk = Math.min(2 * chunk, 128)) {
      if (stops(next)) break;
      emit(next);
      const steps = Math.min(chunk, maxNew - (tokens.length - promptTokens));
      if (steps === 0) break;
      const chosen = await m.decodeGreedy(next, steps);
      for (const [j, t] of chosen.entries()) {
        if (j === steps - 1) { next = t; break; } // fed to the next chunk, or emitted first there
        if (stops(t)) { done = true; break; }
        emit(t);
      }
    }
  } else {
    for (let i = 0; i < maxNew; i++) {
      if (stops(next)) break;
      emit(next);
      if (i + 1 < maxNew) next = sampler.sample(await m.forward(next));
    }
  }
  const t2 = performance.now();
  const generated = tokens.length - promptTokens;
  return {
    tokens, promptTokens, seed,
    text: m.tokenizer.decode(tokens),
    timings: { prefillMs: t1 - t0, decodeMs: t2 - t1, decodeTokensPerSecond: generated / Math.max(1e-9, (t2 - t1) / 1000) },
  };
}

/** Several stories sampled at once from BOS, one per seed, each with its own KV cache and sampler: the
 *  tokens `generate({ tokens: [bos], temperature, topP: 1, seed, maxNewTokens: maxTokens - 1 })` gives
 *  for each seed, in one pass per position for all of them. Each stops before EOS (or BOS). */
export async function sampleBatch(m: Decoder, seeds: readonly number[], maxTokens: number, temperature: number): Promise<number[][]> {
  const { bos, eos } = m.tokenizer.vocab;
  const V = m.config.vocabSize, B = seeds.length;
  const n = Math.min(maxTokens, m.contextLength);
  const ex = await m.variant({ positions: 1, batch: B });
  ex.reset();
  const samplers = seeds.map((seed) => new Sampler({ temperature, topP: 1, seed }));
  const seqs = seeds.map(() => [bos]);
  const live = seeds.map(() => true);
  for (let p = 0; p + 1 < n && live.some(Boolean); p++) {
    const token = Int32Array.from(seqs.map((s) => s[Math.min(p, s.length - 1)]!)); // finished ones idle
    const out = await ex.run({ token, pos: p }, 'logits');
    for (let b = 0; b < B; b++) {
      if (!live[b]) continue;
      const next = samplers[b]!.sample(out.subarray(b * V, (b + 1) * V));
      if (next === eos || next === bos) live[b] = false;
      else seqs[b]!.push(next);
    }
  }
  return seqs;
}
