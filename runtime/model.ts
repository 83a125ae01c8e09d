// A loaded model on the GPU: its graph, the plan lowered from it, the executor that runs the plan,
// and the tokenizer. Generation and every-position logits are built on `forward(token, pos)`.
import { FormatError, UsageError } from '../compiler/errors.js';
import { Graph as GraphClass, GraphBuilder, type Graph } from '../compiler/ir/graph.js';
import { OPSET, ops } from '../ops/index.js';
import { interventions as interventionEdit, ivName } from '../ops/intervene.js';
import type { Target } from '../compiler/target.js';
import { type Plan } from '../compiler/plan.js';
import { compile, type CompileOptions } from '../compiler/passes.js';
import { selectHooks, type HookSelection } from '../compiler/hooks.js';
import { readBuffer, type StageCopy } from './executor.js';
import { headSize, llama, type LlamaConfig } from '../models/llama.js';
import { Executor } from './executor.js';
import { checked, getGpu, targetOf, type GpuContext } from './gpu.js';
import { ReferenceRunner } from './reference.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import { type SaeSplice, spliceSaes } from './sae/splice.js';
import { StreamDecoder, makeTokenizer, type Tokenizer, type Vocab } from './tokenizer.js';
import type { WeightMap } from './weights.js';
import { dequantize } from '../ops/dequant.js';
import { leafKind } from '../compiler/ir/op.js';

export interface ModelSource {
  config: LlamaConfig;
  weights: WeightMap;
  vocab: Vocab;
  /** the file it came from, for messages */
  file: string;
}

export interface ModelOptions {
  /** positions the KV cache holds; default min(model's, 4096) */
  contextLength?: number;
  gpu?: GpuContext;
  /** override the device's binding limit (tests use it to force weight splitting) */
  maxBindingBytes?: number;
  /** apply the fusion rules (default true) */
  fuse?: boolean;
  /** fusion rules to leave out */
  disableRules?: readonly string[];
}

export const DEFAULT_CONTEXT_CAP = 4096;
/** most positions one prefill pass takes */
const MAX_BLOCK = 256;

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

/** Check every weight the graph needs is present with the right shape and dtype. */
function checkWeights(graph: Graph, weights: WeightMap, file: string) {
  for (const n of graph.nodes) {
    if (leafKind(n) !== 'weight') continue;
    const name = String(n.attr.name);
    const w = weights.get(name);
    if (!w) throw new FormatError(file, `tensor '${name}' is missing`);
    if (w.shape.join(',') !== n.shape.join(',')) throw new FormatError(file, `tensor '${name}' has shape [${w.shape}], the config implies [${n.shape}]`);
    if (w.dtype !== n.dtype) throw new FormatError(file, `tensor '${name}' is ${w.dtype}, expected ${n.dtype}`);
  }
}

/** An edit at a hook (a selector: `[pos=..]` and `[head=..]` narrow it). `replace` gives the hook's
 *  values at every position ([pos, ...], e.g. another run's cache entry); `add` and `mean` one vector. */
export type Intervention = { hook: string } & (
  | { replace: Float32Array }
  | { add: Float32Array }
  | { scale: number }
  | { zero: true }
  | { mean: Float32Array });

/** A hook's values over the positions of a run: TransformerLens's shape, [batch=1, pos, ...]. */
export interface CacheEntry { shape: number[]; data: Float32Array }

export class Model {
  private pos = 0;
  private tappedExecutors = new Map<string, Executor>();
  private constructor(
    readonly config: LlamaConfig,
    readonly tokenizer: Tokenizer,
    readonly graph: Graph,
    readonly plan: Plan,
    readonly executor: Executor,
    private readonly weights: WeightMap,
    readonly file: string,
    private readonly target: Target,
    private readonly compileOptions: CompileOptions,
  ) {}

  static async create(src: ModelSource, opts: ModelOptions = {}): Promise<Model> {
    const ctx = opts.contextLength ?? Math.min(src.config.contextLength, DEFAULT_CONTEXT_CAP);
    if (!Number.isInteger(ctx) || ctx < 1 || ctx > src.config.contextLength)
      throw new UsageError(`context length ${ctx} must be between 1 and the model's ${src.config.contextLength}`);
    const config = { ...src.config, contextLength: ctx };
    const graph = llama(config, (name) => src.weights.get(name)?.dtype ?? 'f32');
    checkWeights(graph, src.weights, src.file);
    const gpu = opts.gpu ?? (await getGpu());
    const target = targetOf(gpu, opts.maxBindingBytes);
    const compileOptions: CompileOptions = { fuse: opts.fuse, disableRules: opts.disableRules };
    const plan = compile(graph, OPSET, target, compileOptions).plan!;
    const executor = await checked(gpu, () => new Executor(gpu, plan, src.weights));
    return new Model(config, makeTokenizer(src.vocab), graph, plan, executor, src.weights, src.file, target, compileOptions);
  }

  get contextLength() { return this.config.contextLength; }

  /** The float64 reference forward pass over the model's (unfused) graph and the same weights; it
   *  also computes every hook (some, like attention patterns, exist only to be read). */
  reference(): ReferenceRunner {
    const hookOutputs = Object.fromEntries(Object.entries(this.graph.hooks).map(([k, h]) => [`hook:${k}`, h.node]));
    return new ReferenceRunner(new GraphClass({ ...this.graph.outputs, ...hookOutputs }, this.graph.hooks), this.weights);
  }

  checkTokens(tokens: readonly number[]) {
    if (tokens.length === 0) throw new UsageError('no tokens to run');
    if (tokens.length > this.contextLength)
      throw new UsageError(`the prompt has ${tokens.length} tokens but the context holds ${this.contextLength} (try --context)`);
    const bad = tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= this.config.vocabSize);
    if (bad !== undefined) throw new UsageError(`token id ${bad} is outside the vocabulary (0..${this.config.vocabSize - 1})`);
  }

  /** Start a new sequence (clears the KV cache). */
  reset() { this.executor.reset(); this.pos = 0; }

  /** Run one token at the next position; returns its next-token logits. */
  async forward(token: number): Promise<Float32Array> {
    return this.step(token, 'logits');
  }

  /** Run one token; returns the greedy next token, chosen on the GPU (4 bytes read back). */
  async forwardGreedy(token: number): Promise<number> {
    return new Int32Array((await this.step(token, 'next')).buffer)[0]!;
  }

  private async step(token: number, output: string): Promise<Float32Array> {
    if (this.pos >= this.contextLength) throw new UsageError(`the context of ${this.contextLength} positions is full`);
    const out = await this.executor.run({ token, pos: this.pos }, output);
    this.pos++;
    return out;
  }

  /** Logits after every position of `tokens` (a prefill: blocks of positions per pass). */
  async logits(tokens: readonly number[]): Promise<Float32Array[]> {
    return (await this.runWithHooks(tokens, { interventions: [] })).logits;
  }

  /** Positions one prefill pass takes: every activation of the pass (logits, attention patterns, the
   *  FFN's inner width) must fit one storage binding. */
  get blockSize(): number {
    const c = this.config;
    const widest = Math.max(c.vocabSize, c.hiddenDim, c.dim, (c.nHeads + 2 * c.nKvHeads) * headSize(c), c.nHeads * c.contextLength);
    return Math.max(1, Math.min(MAX_BLOCK, Math.floor(this.target.maxBindingBytes / (4 * widest))));
  }

  /** Positions split into prefill blocks ([start, length] pairs); a batch of prompts shares a block's rows. */
  private blocks(n: number, batch = 1): [number, number][] {
    const size = Math.max(1, Math.floor(this.blockSize / batch)), out: [number, number][] = [];
    for (let s = 0; s < n; s += size) out.push([s, Math.min(size, n - s)]);
    return out;
  }

  /** Run the prompt from position 0 in blocks of positions; returns the last position's output
   *  ('next': the greedy token; 'logits': its logits). The KV cache then holds the prompt. */
  async prefill(tokens: readonly number[], output: 'next' | 'logits'): Promise<Float32Array> {
    this.reset();
    return this.runFrom(tokens, 0, output);
  }

  /** The last position's logits for `tokens`, running only positions `from` on: the KV cache must hold
   *  tokens[0, from) already (what the previous run left there), so edits late in a prompt re-run
   *  only its tail. */
  async lastLogitsFrom(tokens: readonly number[], from: number): Promise<Float32Array> {
    this.checkTokens(tokens);
    if (!Number.isInteger(from) || from < 0 || from >= tokens.length || from > this.pos) throw new UsageError(`cannot resume at position ${from}: the cache holds ${this.pos} positions`);
    return this.runFrom(tokens, from, 'logits');
  }

  /** Positions `from`.. of `tokens` in blocks, on the cache as it is; the last position's output. */
  private async runFrom(tokens: readonly number[], from: number, output: 'next' | 'logits'): Promise<Float32Array> {
    let out: Float32Array | undefined;
    const per = output === 'next' ? 1 : this.config.vocabSize;
    for (const [start, len] of this.blocks(tokens.length - from)) {
      const ex = await this.variant([], [], 0, len);
      const all = await ex.run({ token: Int32Array.from(tokens.slice(from + start, from + start + len)), pos: from + start }, output);
      out = all.slice((len - 1) * per, len * per);
    }
    this.pos = tokens.length;
    return out!;
  }

  async generate(o: GenerateOptions = {}): Promise<GenerateResult> {
    const tokens = o.tokens ? [...o.tokens] : this.tokenizer.encode(o.prompt ?? '');
    this.checkTokens(tokens);
    const promptTokens = tokens.length;
    const seed = o.seed ?? Date.now() % 2 ** 31;
    const sampler = new Sampler({ temperature: o.temperature ?? 0, topP: o.topP ?? 0.9, seed });
    const maxNew = Math.min(o.maxNewTokens ?? 256, this.contextLength - promptTokens);
    const { bos, eos } = this.tokenizer.vocab;
    const stream = new StreamDecoder(this.tokenizer);
    if (o.onText) for (const t of tokens) { const s = stream.push(t); if (s) o.onText(s); }
    this.reset();
    // greedy decoding keeps the token loop on the GPU (argmax -> next token), read back in chunks that
    // grow, so text streams early and a stop at EOS wastes little; sampling reads the logits each step
    const greedy = sampler.opts.temperature === 0;
    const stops = (t: number) => o.stopAtEos !== false && (t === eos || t === bos || (o.stopTokens?.includes(t) ?? false));
    const t0 = performance.now();
    const last = await this.prefill(tokens, greedy ? 'next' : 'logits');
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
        const { tokens: chosen } = await this.executor.greedyOnGpu(next, this.pos, steps);
        this.pos += steps;
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
        if (i + 1 < maxNew) next = sampler.sample(await this.forward(next));
      }
    }
    const t2 = performance.now();
    const generated = tokens.length - promptTokens;
    return {
      tokens, promptTokens, seed,
      text: this.tokenizer.decode(tokens),
      timings: { prefillMs: t1 - t0, decodeMs: t2 - t1, decodeTokensPerSecond: generated / Math.max(1e-9, (t2 - t1) / 1000) },
    };
  }

  /** Several stories sampled at once from BOS, one per seed, each with its own KV cache and sampler: the
   *  tokens `generate({ tokens: [bos], temperature, topP: 1, seed, maxNewTokens: maxTokens - 1 })` gives
   *  for each seed, in one pass per position for all of them. Each stops before EOS (or BOS). */
  async sampleBatch(seeds: readonly number[], maxTokens: number, temperature: number): Promise<number[][]> {
    const { bos, eos } = this.tokenizer.vocab;
    const V = this.config.vocabSize, B = seeds.length;
    const n = Math.min(maxTokens, this.contextLength);
    const ex = await this.variant([], [], 0, 1, B);
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

  /** The hook names this model has (TransformerLens's), in graph order. */
  get hookNames(): string[] { return Object.keys(this.graph.hooks); }

  /** The plan with these hooks tapped and interventions compiled in (built once per combination;
   *  weights and KV cache shared with the plain plan). */
  async variant(taps: readonly string[], interventions: readonly { hook: string; rows: number }[], startLayer = 0, positions?: number, batch = 1): Promise<Executor> {
    const key = JSON.stringify([[...taps].sort(), [...interventions].sort((a, b) => a.hook.localeCompare(b.hook)), startLayer, positions ?? 0, batch]);
    let ex = this.tappedExecutors.get(key);
    if (!ex) {
      const graph = startLayer || positions !== undefined ? llama(this.config, (n) => this.weights.get(n)?.dtype ?? 'f32', { startLayer, positions, batch }) : this.graph;
      const plan = compile(graph, OPSET, this.target, { ...this.compileOptions, taps, edits: [interventionEdit(interventions)] }).plan!;
      // one prompt shares the model's KV cache; a batch of B shares the caches of the first plan for B
      const share = batch > 1 ? this.batchCaches.get(batch) ?? this.executor : this.executor;
      ex = await checked(this.executor.gpu, () => new Executor(this.executor.gpu, plan, this.weights, undefined, share));
      if (batch > 1 && !this.batchCaches.has(batch)) this.batchCaches.set(batch, ex);
      this.tappedExecutors.set(key, ex);
    }
    return ex;
  }
  private batchCaches = new Map<number, Executor>();

  /** Run `tokens` (BOS included) and collect the selected hooks at every position, e.g.
   *  `runWithCache(ids, { hooks: 'blocks.*.hook_resid_post' })`. Returns every position's logits too.
   *  The prompt runs as a prefill (blocks of positions, one pass each); hooks are extra outputs of the
   *  compiled plan, copied out on the GPU after each pass and read back once. */
  runWithCache(tokens: readonly number[], opts: { hooks: string | readonly string[] }) {
    return this.runWithHooks(tokens, { hooks: opts.hooks, interventions: [] });
  }

  /** Run with interventions at hooks (replace/patch, add, scale, zero- or mean-ablate; a hook's
   *  `[pos=..]` and `[head=..]` restrict them), optionally caching hooks (which then hold the edited
   *  values, as in TransformerLens). */
  async runWithHooks(tokens: readonly number[], opts: { interventions: readonly Intervention[]; hooks?: string | readonly string[]; saes?: readonly SaeSplice[] }):
    Promise<{ logits: Float32Array[]; cache: Map<string, CacheEntry> }> {
    if (opts.saes?.length) return spliceSaes(this, tokens, { ...opts, saes: opts.saes });
    const r = await this.runBatchWithHooks([tokens], opts);
    this.pos = tokens.length; // the KV cache now holds these tokens (edited if there were interventions)
    return { logits: r.logits[0]!, cache: r.cache };
  }

  /** Several prompts of one length at once (each with its own KV cache): every pass takes a block of
   *  positions of every prompt. Cache entries are [batch, pos, ...]; interventions apply to every prompt. */
  runBatchWithCache(prompts: readonly (readonly number[])[], opts: { hooks: string | readonly string[] }) {
    return this.runBatchWithHooks(prompts, { hooks: opts.hooks, interventions: [] });
  }

  async runBatchWithHooks(prompts: readonly (readonly number[])[], opts: { interventions: readonly Intervention[]; hooks?: string | readonly string[] }):
    Promise<{ logits: Float32Array[][]; cache: Map<string, CacheEntry> }> {
    if (prompts.length === 0) throw new UsageError('no prompts to run');
    prompts.forEach((p) => this.checkTokens(p));
    const n = prompts[0]!.length, B = prompts.length;
    if (prompts.some((p) => p.length !== n)) throw new UsageError(`prompts of ${[...new Set(prompts.map((p) => p.length))].join(' and ')} tokens: a batch needs prompts of one token length`);
    const selector = typeof opts.hooks === 'string' ? opts.hooks : (opts.hooks ?? []).join(',');
    const sels = selector.trim() ? selectHooks(selector, this.hookNames) : [];
    for (const s of sels) checkSelection(s, this.graph.hooks[s.hook]!.shape, n);
    const names = [...new Set(sels.map((s) => s.hook))];
    const tables = interventionTables(opts.interventions, this.graph.hooks, this.hookNames, n);
    const blocks: { ex: Executor; start: number; len: number }[] = [];
    for (const [start, len] of this.blocks(n, B)) {
      const ex = await this.variant(names, [...tables.keys()].map((hook) => ({ hook, rows: n })), 0, len, B);
      for (const [hook, t] of tables) { ex.write(ivName(hook, 'a'), t.a); ex.write(ivName(hook, 'b'), t.b); }
      blocks.push({ ex, start, len });
    }
    const d = this.executor.gpu.device;
    const staged = names.map((name) => {
      const bytes = this.graph.hooks[name]!.node.size * 4; // per position
      return { name, bytes, dst: d.createBuffer({ size: Math.max(16, bytes * n * B), usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC }) };
    });
    try {
      blocks[0]!.ex.reset(); // the batch's caches (for one prompt: the model's own)
      const logits: Float32Array[][] = prompts.map(() => []);
      const V = this.config.vocabSize;
      for (const { ex, start, len } of blocks) {
        // the block's outputs are [B, len, ...]: each prompt's rows go to its positions start.. of [B, n, ...]
        const stage: StageCopy[] = staged.flatMap((s) => prompts.map((_, b) => ({ output: `hook:${s.name}`, dst: s.dst, srcOffset: b * len * s.bytes, offset: (b * n + start) * s.bytes, bytes: len * s.bytes })));
        const token = Int32Array.from(prompts.flatMap((p) => p.slice(start, start + len)));
        const out = await ex.run({ token, pos: start }, 'logits', stage);
        for (let b = 0; b < B; b++) for (let t = 0; t < len; t++) logits[b]!.push(out.slice((b * len + t) * V, (b * len + t + 1) * V));
      }
      const cache = new Map<string, CacheEntry>();
      for (const s of staged) {
        const all = await readBuffer(this.executor.gpu, s.dst);
        const h = this.graph.hooks[s.name]!;
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

  /** How a weight is stored (f32, f16, q8_0, ...). */
  weightDtype(name: string) { return this.weights.get(name)?.dtype; }

  /** A weight's values in float64, dequantized (for CPU-side analysis). */
  weightValues(name: string): Float64Array {
    const w = this.weights.get(name);
    if (!w) throw new UsageError(`the model has no weight '${name}'`);
    return dequantize(w.dtype, w.bytes, w.shape.reduce((a, b) => a * b, 1));
  }

  /** Copy the KV cache aside (on the GPU); `restore()` puts it back. */
  saveState(): { restore(): void; destroy(): void } {
    const d = this.executor.gpu.device;
    const states = [...this.plan.buffers.values()].filter((b) => b.kind === 'state').map((b) => this.executor.buffers.get(b.id)!);
    const copies = states.map((s) => d.createBuffer({ size: s.size, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC }));
    const copy = (from: GPUBuffer[], to: GPUBuffer[]) => {
      const enc = d.createCommandEncoder();
      from.forEach((f, i) => enc.copyBufferToBuffer(f, 0, to[i]!, 0, f.size));
      d.queue.submit([enc.finish()]);
    };
    copy(states, copies);
    return { restore: () => copy(copies, states), destroy: () => copies.forEach((c) => c.destroy()) };
  }

  private lensExecutor: Executor | undefined;

  /** The logits the final norm and unembedding give for residual-stream vectors (the logit lens);
   *  one GPU run per vector, on the model's own weight buffers. */
  async unembed(resid: readonly Float32Array[]): Promise<Float32Array[]> {
    if (!this.lensExecutor) {
      const g = new GraphBuilder();
      const o = ops(g);
      const c = this.config;
      const dtypeOf = (name: string) => this.weights.get(name)?.dtype ?? 'f32';
      const x = o.input('resid', [c.dim], 'f32'); // [dim]
      const unembed = c.tiedEmbeddings ? o.weight('token_embd.weight', [c.vocabSize, c.dim], dtypeOf('token_embd.weight')) : o.weight('output.weight', [c.vocabSize, c.dim], dtypeOf('output.weight'));
      const logits = o.matvec(unembed, o.rmsnorm(x, o.weight('output_norm.weight', [c.dim]), c.rmsEps)); // [vocab]
      const plan = compile(g.finish({ logits }), OPSET, this.target, this.compileOptions).plan!;
      const gpu = this.executor.gpu;
      this.lensExecutor = await checked(gpu, () => new Executor(gpu, plan, this.weights, undefined, this.executor));
    }
    const out: Float32Array[] = [];
    for (const r of resid) out.push((await this.lensExecutor.run({ resid: r }, 'logits')).subarray(0, this.config.vocabSize));
    return out;
  }

  dispose() {
    this.executor.destroy();
    this.lensExecutor?.destroy();
    for (const ex of this.tappedExecutors.values()) ex.destroy();
  }
}

function checkSelection(s: HookSelection, shape: readonly number[], positions: number) {
  if (s.head !== undefined && (shape.length !== 2 || s.head < 0 || s.head >= shape[0]!))
    throw new UsageError(shape.length !== 2 ? `${s.hook} has no heads` : `${s.key}: head ${s.head} is out of range (0..${shape[0]! - 1})`);
  if (s.pos !== undefined && (s.pos >= positions || s.pos < -positions))
    throw new UsageError(`${s.key}: position ${s.pos} is out of range for ${positions} tokens`);
}

/** A hook's [pos, ...shape] values, narrowed to one head and/or one position; shaped [1, pos, ...]. */
function sliceSelection(s: HookSelection, all: Float32Array, shape: readonly number[], positions: number): CacheEntry {
  const per = shape.reduce((a, b) => a * b, 1);
  const ps = s.pos === undefined ? [...Array(positions).keys()] : [s.pos < 0 ? positions + s.pos : s.pos];
  const inner = s.head === undefined ? per : shape[1]!;
  const data = new Float32Array(ps.length * inner);
  ps.forEach((p, i) => data.set(all.subarray(p * per + (s.head ?? 0) * inner, p * per + (s.head ?? 0) * inner + inner), i * inner));
  return { shape: [1, ps.length, ...(s.head === undefined ? shape : [shape[1]!])], data };
}

/** Per hook, the tables a, b of x -> x * a + b over [rows, size]; untouched entries stay (1, 0). */
export function interventionTables(list: readonly Intervention[], hooks: Graph['hooks'], names: readonly string[], rows: number) {
  const tables = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const iv of list) {
    for (const sel of selectHooks(iv.hook, names)) {
      const h = hooks[sel.hook]!;
      checkSelection(sel, h.shape, rows);
      const size = h.node.size;
      let t = tables.get(sel.hook);
      if (!t) tables.set(sel.hook, (t = { a: new Float32Array(rows * size).fill(1), b: new Float32Array(rows * size) }));
      const positions = sel.pos === undefined ? [...Array(rows).keys()] : [sel.pos < 0 ? rows + sel.pos : sel.pos];
      const [e0, e1] = sel.head === undefined ? [0, size] : [sel.head * h.shape[1]!, (sel.head + 1) * h.shape[1]!];
      const need = (v: Float32Array, n: number, what: string) => { if (v.length !== n) throw new UsageError(`${iv.hook}: ${what} has ${v.length} values, expected ${n}`); };
      if ('replace' in iv) need(iv.replace, rows * size, 'the replacement');
      if ('add' in iv) need(iv.add, size, 'the added vector');
      if ('mean' in iv) need(iv.mean, size, 'the mean');
      for (const p of positions)
        for (let e = e0; e < e1; e++) {
          const k = p * size + e;
          if ('replace' in iv) { t.a[k] = 0; t.b[k] = iv.replace[k]!; }
          else if ('add' in iv) t.b[k]! += iv.add[e]!;
          else if ('scale' in iv) { t.a[k]! *= iv.scale; t.b[k]! *= iv.scale; }
          else if ('zero' in iv) { t.a[k] = 0; t.b[k] = 0; }
          else { t.a[k] = 0; t.b[k] = iv.mean[e]!; }
        }
    }
  }
  return tables;
}

/** Attention patterns are staged as one [head, context] row per query; TransformerLens gives them as
 *  [batch, head, query, key] over the keys of this run. */
function patternSelection(s: HookSelection, all: Float32Array, shape: readonly number[], n: number): CacheEntry {
  const [heads, ctx] = shape as [number, number];
  const hs = s.head === undefined ? [...Array(heads).keys()] : [s.head];
  const qs = s.pos === undefined ? [...Array(n).keys()] : [s.pos < 0 ? n + s.pos : s.pos];
  const data = new Float32Array(hs.length * qs.length * n);
  hs.forEach((h, i) => qs.forEach((q, j) => data.set(all.subarray(q * heads * ctx + h * ctx, q * heads * ctx + h * ctx + n), (i * qs.length + j) * n)));
  return { shape: s.head === undefined ? [1, heads, qs.length, n] : [1, qs.length, n], data };
}
