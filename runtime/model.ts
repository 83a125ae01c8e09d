// A loaded model on the GPU: its graph, the plan lowered from it, the executor that runs the plan,
// and the tokenizer. Generation and every-position logits are built on `forward(token, pos)`.
import { FormatError, UsageError } from '../compiler/errors.js';
import { Graph as GraphClass, type Graph } from '../compiler/ir/graph.js';
import { hookNamesOf } from '../compiler/hooks.js';
import { OPSET } from '../ops/index.js';
import { interventions as interventionEdit } from '../ops/intervene.js';
import { saeSplices } from '../ops/sae_splice.js';
import type { Target } from '../compiler/target.js';
import { type Plan } from '../compiler/plan.js';
import { compile, type CompileOptions } from '../compiler/passes.js';
import { headSize, lensHead, llama, type LlamaConfig } from '../models/llama.js';
import { Executor } from './executor.js';
import { planPipelines, preparePipelines } from './pipelines.js';
import { aheadPipelines } from './ahead.js';
import { getGpu, targetOf, type GpuContext } from './gpu.js';
import { ReferenceRunner } from './reference.js';
import { generate, sampleBatch, type GenerateOptions, type GenerateResult } from './generate.js';
import { runBatchWithHooks, runWithHooks, type HookedRunOptions } from './interp/run.js';
import { runWithGradients, type GradientOptions, type GradientResult } from './interp/gradients.js';
import { patchedRuns, submitPatchedRuns, type PatchedRuns } from './interp/patch_run.js';
import type { Intervention } from './interp/cache.js';
import type { ActivationCache } from './interp/activation_cache.js';
import { normalVariant, variantKey, type PlanVariant } from './variant.js';
import { makeTokenizer } from './tokenizer.js';
import { steeredDecoder, type Steering } from './steer.js';
import { tlWeight, type TlWeight } from './tl_weights.js';
import type { Tokenizer, Vocab } from './tokenizers/common.js';
import type { WeightMap } from './weights.js';
import { dequantize } from '../ops/dequant.js';
import { leafKind } from '../compiler/ir/op.js';

export interface ModelSource {
  config: LlamaConfig;
  weights: WeightMap;
  vocab: Vocab;
  /** the file it came from, for messages */
  file: string;
  /** the reader interleaved W_q's and W_k's rows per head for tapir's RoPE (NeoX-RoPE families, Hugging
   *  Face folders): TL-named weights put them back (runtime/tl_weights.ts) */
  qkInterleavedAtLoad?: boolean;
}

/** The plan variant a prefill block of `len` positions runs (its last position unembedded). */
export type BlockPlan = (len: number) => Promise<Executor>;

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
  /** create at load the pipelines prefill-shaped workloads need (runtime/ahead.ts; default true) */
  ahead?: boolean;
}

export const DEFAULT_CONTEXT_CAP = 4096;
/** plan variants with SAE splices kept at once (each holds its SAEs' tensors on the GPU) */
const MAX_SAE_VARIANTS = 8;
/** most sequences one batched pass takes */
const MAX_BATCH = 64;
/** most positions one prefill pass takes (ops/matvec.ts's SPLIT_BLOCK_ROWS follows it): 512 took a
 *  512-token prefill of the 1B shape in 24.8 ms against 26.3 in two blocks of 256 (run 2026-12-07-h100-m,
 *  benchmarks/prefill_study.ts), where the products' tiles are twice as many per weight tile read */
const MAX_BLOCK = 512;

/** Positions one prefill pass of this model takes on this target (Model.blockSize). */
function blockSizeOf(c: LlamaConfig, target: Target): number {
  const widest = Math.max(c.vocabSize, c.hiddenDim, c.dim, (c.nHeads + 2 * c.nKvHeads) * headSize(c), c.nHeads * c.contextLength);
  return Math.max(1, Math.min(MAX_BLOCK, Math.floor(target.maxBindingBytes / (4 * widest))));
}

/** How each weight of a map is stored, as the graph builder asks for it. */
export const dtypesOf = (weights: WeightMap) => (name: string) => weights.get(name)?.dtype ?? 'f32';

/** The model's graph with a KV cache of `contextLength` positions (default: the model's, at most
 *  4096), its weights checked against it: what Model.create compiles and `tapir compile` shows. */
export function modelGraph(src: ModelSource, contextLength?: number): { config: LlamaConfig; graph: Graph } {
  const ctx = contextLength ?? Math.min(src.config.contextLength, DEFAULT_CONTEXT_CAP);
  if (!Number.isInteger(ctx) || ctx < 1 || ctx > src.config.contextLength)
    throw new UsageError(`context length ${ctx} must be between 1 and the model's ${src.config.contextLength}`);
  const config = { ...src.config, contextLength: ctx };
  const graph = llama(config, dtypesOf(src.weights));
  checkWeights(graph, src.weights, src.file);
  return { config, graph };
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
    readonly qkInterleavedAtLoad: boolean,
  ) {}

  static async create(src: ModelSource, opts: ModelOptions = {}): Promise<Model> {
    const { config, graph } = modelGraph(src, opts.contextLength);
    const gpu = opts.gpu ?? (await getGpu());
    const target = targetOf(gpu, opts.maxBindingBytes);
    const compileOptions: CompileOptions = { fuse: opts.fuse, disableRules: opts.disableRules };
    const plan = compile(graph, OPSET, target, compileOptions).plan!;
    await preparePipelines(gpu, planPipelines(plan));
    // the pipelines prefill-shaped workloads will need, created while the weights upload (runtime/ahead.ts)
    const ahead = opts.ahead === false ? undefined : preparePipelines(gpu, aheadPipelines(config, dtypesOf(src.weights), target, compileOptions, blockSizeOf(config, target)));
    const executor = await Executor.create(gpu, plan, src.weights);
    await ahead;
    return new Model(config, makeTokenizer(src.vocab), graph, plan, executor, src.weights, src.file, target, compileOptions, src.qkInterleavedAtLoad ?? false);
  }

  get contextLength() { return this.config.contextLength; }

  /** Sequences one batched pass may hold: each has its own KV cache, and a layer's caches of the
   *  batch are one binding. */
  get maxBatch(): number {
    return Math.min(MAX_BATCH, Math.floor(this.target.maxBindingBytes / (this.contextLength * this.config.nKvHeads * headSize(this.config) * 4)));
  }

  /** B patched runs of a prompt from a layer and position on (runtime/interp/patch_run.ts). */
  patchedRuns(r: PatchedRuns): Promise<Float32Array> { return patchedRuns(this, r); }
  /** The same, submitted without waiting; the picked logits land in `stage.dst` at `stage.offset`. */
  submitPatchedRuns(r: PatchedRuns, stage: { dst: GPUBuffer; offset: number }): Promise<void> { return submitPatchedRuns(this, r, stage); }

  /** the largest storage binding the model's plans are compiled for */
  get bindingBytes() { return this.target.maxBindingBytes; }

  /** How each weight is stored, as the graph builder asks for it. */
  private readonly dtypeOf = (name: string) => dtypesOf(this.weights)(name);

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
  get blockSize(): number { return blockSizeOf(this.config, this.target); }

  /** Positions split into prefill blocks ([start, length] pairs); a batch of prompts shares a block's rows. */
  blocks(n: number, batch = 1): [number, number][] {
    const size = Math.max(1, Math.floor(this.blockSize / batch)), out: [number, number][] = [];
    for (let s = 0; s < n; s += size) out.push([s, Math.min(size, n - s)]);
    return out;
  }

  /** Run the prompt from position 0 in blocks of positions; returns the last position's output
   *  ('next': the greedy token; 'logits': its logits). The KV cache then holds the prompt. `blockPlan`:
   *  the plan a block of `len` positions runs (default: the plain one, unembedding its last position;
   *  steering gives its edited variants). */
  async prefill(tokens: readonly number[], output: 'next' | 'logits', blockPlan?: BlockPlan): Promise<Float32Array> {
    this.reset();
    return this.runFrom(tokens, 0, output, blockPlan);
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
  private async runFrom(tokens: readonly number[], from: number, output: 'next' | 'logits', blockPlan: BlockPlan = (len) => this.variant({ positions: len, head: 'last' })): Promise<Float32Array> {
    let out: Float32Array | undefined;
    const per = output === 'next' ? 1 : this.config.vocabSize;
    // each block's last position alone is unembedded (head 'last'): only the final one is read
    for (const [start, len] of this.blocks(tokens.length - from)) {
      const ex = await blockPlan(len);
      const inputs = { token: Int32Array.from(tokens.slice(from + start, from + start + len)), pos: from + start };
      if (start + len < tokens.length - from) ex.submit(inputs);
      else out = (await ex.run(inputs, output)).slice(0, per);
    }
    this.pos = tokens.length;
    return out!;
  }

  /** `steps` greedy tokens after `token` at the next positions, chosen on the GPU. */
  async decodeGreedy(token: number, steps: number): Promise<number[]> {
    if (this.pos + steps > this.contextLength) throw new UsageError(`the context of ${this.contextLength} positions is full`);
    const { tokens } = await this.executor.greedyOnGpu(token, this.pos, steps);
    this.pos += steps;
    return Array.from(tokens);
  }

  /** Generate text from a prompt (runtime/generate.ts); with interventions or SAEs, steered: the edits
   *  apply at every position, the prompt's and the generated ones (runtime/steer.ts). */
  async generate(o: GenerateOptions & Steering = {}): Promise<GenerateResult> {
    return generate(o.interventions?.length || o.saes?.length ? await steeredDecoder(this, o) : this, o);
  }

  /** Several stories sampled at once from BOS, one per seed (runtime/generate.ts). */
  sampleBatch(seeds: readonly number[], maxTokens: number, temperature: number): Promise<number[][]> { return sampleBatch(this, seeds, maxTokens, temperature); }

  /** The hook names this model has (TransformerLens's), in graph order. */
  get hookNames(): readonly string[] { return hookNamesOf(this.graph.hooks); }

  /** The plan with these hooks tapped, interventions and SAE splices compiled in, for a block of
   *  positions of a batch (built once per variant; weights and KV cache shared with the plain plan).
   *  `tensors`: the weights the variant adds (its SAEs'). */
  async variant(v: PlanVariant, tensors?: WeightMap): Promise<Executor> {
    const key = variantKey(v);
    let ex = this.tappedExecutors.get(key);
    if (!ex) {
      const { taps, interventions, saes, startLayer, positions, batch, head, pick } = normalVariant(v);
      if (saes.length && batch > 1) throw new UsageError('SAE splices run one prompt at a time');
      const graph = startLayer || positions || pick ? llama(this.config, this.dtypeOf, { startLayer, ...(positions ? { positions } : {}), batch, head, pick }) : this.graph;
      const plan = compile(graph, OPSET, this.target, { ...this.compileOptions, taps, edits: [interventionEdit(interventions), saeSplices(saes)] }).plan!;
      const weights = tensors?.size ? new Map([...this.weights, ...tensors]) : this.weights;
      for (const b of plan.buffers.values()) if (b.weight && !weights.has(b.weight.name)) throw new Error(`internal: no tensor '${b.weight.name}' for this plan`);
      // one prompt shares the model's KV cache; a batch of B shares the caches of the first plan for B
      const share = batch > 1 ? this.batchCaches.get(batch) ?? this.executor : this.executor;
      ex = await Executor.create(this.executor.gpu, plan, weights, share);
      if (batch > 1 && !this.batchCaches.has(batch)) this.batchCaches.set(batch, ex);
      this.tappedExecutors.set(key, ex);
      // variants with SAEs hold their tensors: keep the last few
      if (saes.length) {
        this.saeVariants.push(key);
        if (this.saeVariants.length > MAX_SAE_VARIANTS) {
          const old = this.saeVariants.shift()!;
          this.tappedExecutors.get(old)?.destroy();
          this.tappedExecutors.delete(old);
        }
      }
    }
    return ex;
  }
  private saeVariants: string[] = [];
  private batchCaches = new Map<number, Executor>();

  /** Run `tokens` (BOS included) and collect the selected hooks at every position, e.g.
   *  `runWithCache(ids, { hooks: 'blocks.*.hook_resid_post' })`. Returns every position's logits too
   *  (`logits: 'last'` or `'none'` reads back less and unembeds only the last position). The prompt
   *  runs as a prefill (blocks of positions, one pass each); hooks are extra outputs of the compiled
   *  plan, copied out on the GPU after each pass and read back once. */
  runWithCache(tokens: readonly number[], opts: { hooks: string | readonly string[]; logits?: HookedRunOptions['logits'] }) {
    return this.runWithHooks(tokens, { hooks: opts.hooks, interventions: [], logits: opts.logits });
  }

  /** Run with interventions at hooks (replace/patch, add, scale, zero- or mean-ablate; a hook's
   *  `[pos=..]` and `[head=..]` restrict them), optionally caching hooks (which then hold the edited
   *  values, as in TransformerLens) and splicing SAEs in (runtime/interp/run.ts). */
  async runWithHooks(tokens: readonly number[], opts: HookedRunOptions): Promise<{ logits: Float32Array[]; cache: ActivationCache }> {
    const r = await runWithHooks(this, tokens, opts);
    this.pos = tokens.length; // the KV cache now holds these tokens (edited if there were interventions)
    return r;
  }

  /** Several prompts of one length at once (each with its own KV cache): every pass takes a block of
   *  positions of every prompt. Cache entries are [batch, pos, ...]; interventions apply to every prompt. */
  runBatchWithCache(prompts: readonly (readonly number[])[], opts: { hooks: string | readonly string[]; logits?: HookedRunOptions['logits'] }) {
    return this.runBatchWithHooks(prompts, { hooks: opts.hooks, interventions: [], logits: opts.logits });
  }

  runBatchWithHooks(prompts: readonly (readonly number[])[], opts: { interventions: readonly Intervention[]; hooks?: string | readonly string[]; logits?: HookedRunOptions['logits'] }) {
    return runBatchWithHooks(this, prompts, opts);
  }

  /** d(metric)/d(hook) at whole hooks, the metric the last position's logit difference (target −
   *  distractor): the compiler's backward of the prompt's graph, run on the GPU (runtime/interp/gradients.ts).
   *  The KV cache then holds the prompt. */
  async runWithGradients(tokens: readonly number[], opts: GradientOptions): Promise<GradientResult> {
    const r = await runWithGradients({ config: this.config, graph: this.graph, dtypeOf: this.dtypeOf, target: this.target, compileOptions: this.compileOptions, weights: this.weights, executor: this.executor, checkTokens: (t) => this.checkTokens(t), plans: this.gradientPlans }, tokens, opts);
    this.pos = tokens.length;
    return r;
  }
  private gradientPlans = new Map<string, { ex: Executor; plan: Plan }>();

  /** How a weight is stored (f32, f16, q8_0, ...). */
  weightDtype(name: string) { return this.weights.get(name)?.dtype; }

  /** A weight by TransformerLens's name and in its shape (`W_U`, `blocks.3.attn.W_Q`: runtime/tl_weights.ts). */
  tlWeight(name: string): TlWeight { return tlWeight(this, name); }

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

  private lensExecutors = new Map<string, Executor>();

  /** The logit lens's head (models/llama.ts's lensHead) for `layers` blocks of `positions` rows,
   *  reporting the top `top` tokens of each; built once, on the model's own weight buffers. */
  async lensExecutor(layers: number, positions: number, top: number): Promise<Executor> {
    const key = `${layers}|${positions}|${top}`;
    let ex = this.lensExecutors.get(key);
    if (!ex) {
      const plan = compile(lensHead(this.config, this.dtypeOf, { layers, positions, top }), OPSET, this.target, this.compileOptions).plan!;
      ex = await Executor.create(this.executor.gpu, plan, this.weights, this.executor);
      this.lensExecutors.set(key, ex);
    }
    return ex;
  }

  dispose() {
    this.executor.destroy();
    for (const ex of this.lensExecutors.values()) ex.destroy();
    for (const ex of this.tappedExecutors.values()) ex.destroy();
    for (const { ex } of this.gradientPlans.values()) ex.destroy();
  }
}
