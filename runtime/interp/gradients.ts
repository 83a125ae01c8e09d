// Gradients at hooks on the GPU: the prompt's graph with a metric on its logits, differentiated by the
// compiler (compiler/grad.ts: each op's vector-Jacobian product), compiled and run as one plan — the
// forward, then the backward — on the model's weights and KV cache. d(metric)/d(hook) comes back shaped
// as the forward hook is ([batch, pos, ...]), beside the forward's activation there. Metrics: a logit
// difference, a log-probability, or a node the caller builds, at any position of the prompt. For now
// the prompt runs as one block, as long as a binding holds (gradientPositions). A gradient at a layer's
// attention pattern or scores makes that layer's attention explicit (models/llama.ts explicitAttention).
import { ShapeError, UsageError } from '../../compiler/errors.js';
import { rebuildWith, type Graph, type GraphBuilder } from '../../compiler/ir/graph.js';
import { hookNamesOf, selectHooks } from '../../compiler/hooks.js';
import { gradients } from '../../compiler/grad.js';
import { compile, type CompileOptions } from '../../compiler/passes.js';
import type { Plan } from '../../compiler/plan.js';
import type { Target } from '../../compiler/target.js';
import type { DType } from '../../compiler/ir/dtype.js';
import type { Node } from '../../compiler/ir/op.js';
import { GRAD_OPS, OPSET, ops, type Ops } from '../../ops/index.js';
import { headSize, llama, type LlamaConfig } from '../../models/llama.js';
import { Executor } from '../executor.js';
import { leaseStaging } from '../staging.js';
import { interventionTables, patternSelection, type Intervention } from './cache.js';
import { saeSplicing, type SaeSplice } from '../sae/splice.js';
import { withSaes, type SaeSpliceSpec } from '../../ops/sae_splice.js';
import { ivName, withInterventions, type InterventionSpec } from '../../ops/intervene.js';
import type { WeightMap } from '../weights.js';

/** What is differentiated: a scalar of the logits at one position (the last unless `pos`). */
export type Metric =
  /** logit[target] − logit[distractor] (logit[target] alone without a distractor) */
  | { kind: 'logit_diff'; target: number; distractor?: number; pos?: number }
  /** log p(token) */
  | { kind: 'log_prob'; token: number; pos?: number }
  /** a scalar node built from that position's logits [1, V] with the graph's ops (each needs a backward
   *  rule); `name` keeps its compiled plan between calls; `inputs` feeds the inputs it made (o.input) */
  | { kind: 'custom'; name: string; build: (o: Ops, logits: Node) => Node; pos?: number; inputs?: Readonly<Record<string, Int32Array | Float32Array>> };

export interface GradientOptions {
  metric?: Metric;
  /** shorthand for metric { kind: 'logit_diff', target, distractor } */
  target?: number;
  distractor?: number;
  /** hooks to give d(metric)/d(hook) at (whole hooks, e.g. 'hook_embed, blocks.*.hook_resid_pre') */
  hooks: string | readonly string[];
  /** edits in the forward (as runWithHooks takes them; not hook functions): the backward goes through
   *  them, and a hook's gradient is with respect to its edited value */
  interventions?: readonly Intervention[];
  /** SAEs spliced in (as runWithCache takes them): the backward goes through each encoder and decoder,
   *  and their latents are hooks (`<hook>.hook_sae_acts_post`) like any other */
  saes?: readonly SaeSplice[];
}
export interface GradientResult {
  metric: number;
  /** d(metric)/d(hook) by hook name, [1, pos, ...] (patterns and scores [1, head, query, key]) */
  grads: Map<string, { shape: number[]; data: Float32Array }>;
  /** the forward's activation at each of those hooks, [1, pos, ...] */
  acts: Map<string, { shape: number[]; data: Float32Array }>;
}

/** What a gradient run needs of a model (runtime/model.ts's Model gives it). */
export interface GradientHost {
  readonly config: LlamaConfig;
  /** the model's own graph: its hooks' names and per-position shapes */
  readonly graph: Graph;
  readonly dtypeOf: (name: string) => DType;
  readonly target: Target;
  readonly compileOptions: CompileOptions;
  readonly weights: WeightMap;
  readonly executor: Executor;
  checkTokens(tokens: readonly number[]): void;
  /** plans made before, by prompt length and hooks */
  readonly plans: Map<string, { ex: Executor; plan: Plan }>;
}

/** The most positions a gradient run takes: the whole prompt is one block (its backward reaches every
 *  earlier position through the block's own KV-cache rows), so its widest per-position activation — the
 *  FFN's hidden rows, the fused q/k/v, the attention's scores over the cache — must fit a binding. (Not
 *  the prefill's 256-row block: the head unembeds one row, and a backward is one pass.) */
export function gradientPositions(c: LlamaConfig, target: Target): number {
  const widest = Math.max(c.hiddenDim, c.dim, (c.nHeads + 2 * c.nKvHeads) * headSize(c), c.nHeads * c.contextLength);
  return Math.max(1, Math.floor(target.maxBindingBytes / (4 * widest)));
}

/** The metric asked for (a logit difference where only target and distractor are given), checked. */
function metricOf(o: GradientOptions, V: number, T: number): Metric {
  const m: Metric | undefined = o.metric ?? (o.target === undefined ? undefined : { kind: 'logit_diff', target: o.target, distractor: o.distractor });
  if (!m) throw new UsageError('gradients need a metric (or a target token for the logit difference)');
  const ids = m.kind === 'logit_diff' ? [m.target, ...(m.distractor === undefined ? [] : [m.distractor])] : m.kind === 'log_prob' ? [m.token] : [];
  for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new UsageError(`token id ${id} is outside the vocabulary (0..${V - 1})`);
  if (m.pos !== undefined && !(Number.isInteger(m.pos) && m.pos >= 0 && m.pos < T)) throw new UsageError(`the metric's position ${m.pos} is outside the prompt's ${T} positions (0..${T - 1})`);
  return m;
}

/** The metric's shape in a graph (what its plan depends on: not the token ids, which are an input). */
export type MetricSpec = { kind: 'logit_diff'; pair: boolean; row?: number } | { kind: 'log_prob'; row?: number } | { kind: 'custom'; build: (o: Ops, logits: Node) => Node; row?: number };
const specOf = (m: Metric): MetricSpec => (m.kind === 'logit_diff' ? { kind: m.kind, pair: m.distractor !== undefined, row: m.pos } : m.kind === 'log_prob' ? { kind: m.kind, row: m.pos } : { kind: m.kind, build: m.build, row: m.pos });
const idsOf = (m: Metric): Record<string, Int32Array | Float32Array> =>
  m.kind === 'logit_diff' ? { ids: Int32Array.from(m.distractor === undefined ? [m.target] : [m.target, m.distractor]) } : m.kind === 'log_prob' ? { ids: Int32Array.of(m.token) } : { ...m.inputs };
const keyOf = (m: Metric) => (m.kind === 'logit_diff' ? `diff${m.distractor === undefined ? 1 : 2}` : m.kind === 'log_prob' ? 'logprob' : `custom:${m.name}`) + `@${m.pos ?? 'last'}`;

export async function runWithGradients(h: GradientHost, tokens: readonly number[], o: GradientOptions): Promise<GradientResult> {
  h.checkTokens(tokens);
  const V = h.config.vocabSize, T = tokens.length;
  const metric = metricOf(o, V, T);
  const most = gradientPositions(h.config, h.target);
  if (T > most) throw new UsageError(`gradients run the prompt as one block: at most ${most} tokens on this device (its largest binding holds ${most} rows of the widest activation), got ${T}`);
  const splice = o.saes?.length ? saeSplicing(h.graph, o.saes) : undefined;
  const graphHooks = splice?.hooks ?? h.graph.hooks;
  const sels = selectHooks(typeof o.hooks === 'string' ? o.hooks : o.hooks.join(','), hookNamesOf(graphHooks));
  if (!sels.length) throw new UsageError('no hooks to give gradients at');
  for (const s of sels) if (s.pos !== undefined || s.head !== undefined) throw new UsageError(`${s.key}: gradients are given for whole hooks; leave out [pos=..] and [head=..]`);
  const names = [...new Set(sels.map((s) => s.hook))];
  if ((o.interventions ?? []).some((iv) => 'fn' in iv)) throw new UsageError('gradients take the built-in edits (replace, add, scale, zero, mean), not hook functions');
  const tables = interventionTables(o.interventions ?? [], h.graph.hooks, hookNamesOf(h.graph.hooks), T);
  const edits = [...tables.keys()].sort();
  const key = `${T}|${keyOf(metric)}|${names.join(',')}|${edits.join(',')}|${(splice?.specs ?? []).map((sp) => `${sp.hook}:${sp.id}:${sp.errorTerm}`).join(',')}`;
  let p = h.plans.get(key);
  if (!p) {
    const plan = compile(gradientGraph(h.config, h.dtypeOf, T, names, specOf(metric), edits.map((hook) => ({ hook, rows: T })), splice?.specs), OPSET, h.target, h.compileOptions).plan!;
    const weights = splice ? new Map([...h.weights, ...splice.tensors]) : h.weights;
    p = { ex: await Executor.create(h.executor.gpu, plan, weights, h.executor), plan };
    // (plans with SAEs hold the SAEs' tensors on the GPU: not kept)
    if (!splice) h.plans.set(key, p);
  }
  // the metric, then every gradient and activation copied after the pass into one staging buffer, mapped once
  const parts = names.flatMap((n) => {
    const shape = [1, T, ...graphHooks[n]!.shape], bytes = 4 * shape.reduce((a, c) => a * c, 1);
    return [{ n, kind: 'grad', shape, bytes }, { n, kind: 'act', shape, bytes }];
  });
  const offsets = parts.map((_, i) => parts.slice(0, i).reduce((a, q) => a + q.bytes, 0));
  const total = offsets.at(-1)! + parts.at(-1)!.bytes;
  const staging = leaseStaging(h.executor.gpu.device, total);
  try {
    for (const [hook, t] of tables) { p.ex.write(ivName(hook, 'a'), t.a); p.ex.write(ivName(hook, 'b'), t.b); }
    const stage = parts.map((q, i) => ({ output: `${q.kind}:${q.n}`, dst: staging.buffer, offset: offsets[i]!, bytes: q.bytes }));
    const value = (await p.ex.run({ token: Int32Array.from(tokens), pos: 0, ...idsOf(metric) }, 'metric', stage))[0]!;
    const all = await staging.read(total);
    const grads = new Map<string, { shape: number[]; data: Float32Array }>(), acts = new Map<string, { shape: number[]; data: Float32Array }>();
    parts.forEach((q, i) => {
      const data = new Float32Array(all.slice(offsets[i]!, offsets[i]! + q.bytes));
      // patterns and scores as TransformerLens gives them: [1, head, query, key] over the prompt's keys
      const entry = graphHooks[q.n]!.layout === 'pattern' ? patternSelection(sels.find((s) => s.hook === q.n)!, data, graphHooks[q.n]!.shape, T) : { shape: q.shape, data };
      (q.kind === 'grad' ? grads : acts).set(q.n, entry);
    });
    return { metric: value, grads, acts };
  } finally {
    staging.release();
    if (splice) p.ex.destroy();
  }
}

/** logits = matvec(W, x) of one row, or that scaled (Granite): W, x and the factor; undefined for any
 *  other head. */
function unembeddingOf(logits: Node) {
  const scaled = logits.op.name === 'scale' ? logits : undefined;
  const mv = scaled ? scaled.srcs[0]! : logits;
  if (mv.op.name !== 'matvec' || mv.size !== mv.shape[mv.shape.length - 1]) return undefined;
  return { w: mv.srcs[0]!, x: mv.srcs[1]!, factor: scaled?.attr.factor as number | undefined };
}

/** The graph a gradient run compiles: the prompt's block of T positions (with intervention tables at
 *  the `edits` hooks and the `saes` spliced in), the metric of the head's row (`spec`; its token ids an input `ids`) and, as outputs, its gradient `grad:HOOK` and the forward's
 *  activation `act:HOOK` at each hook (the float64 reference runs the same graph: test/gradients.test.ts,
 *  gpu_check). The head unembeds the metric's row alone, so the backward never spreads over [T, vocab];
 *  a logit difference reads only its two rows of the unembedding (ops/logit_diff_unembed.ts). */
export function gradientGraph(c: LlamaConfig, dtypeOf: (name: string) => DType, T: number, hooks: readonly string[], spec: MetricSpec = { kind: 'logit_diff', pair: true },
  edits: readonly InterventionSpec[] = [], saes: readonly SaeSpliceSpec[] = []): Graph {
  let b: GraphBuilder | undefined;
  // a gradient at a layer's pattern or scores needs that layer's attention to run through them
  const explicitAttention = [...new Set(hooks.flatMap((n) => /^blocks\.(\d+)\.attn\.hook_(pattern|attn_scores)$/.exec(n)?.[1] ?? []).map(Number))];
  const plain = llama(c, dtypeOf, { positions: T, head: 'last', headRow: spec.row, explicitAttention });
  // the edits in the order a hooked run's plan makes them (compiler/passes.ts): interventions, then SAEs
  const edited = edits.length ? withInterventions(plain, edits) : plain;
  const forward = saes.length ? withSaes(edited, saes) : edited;
  const rebuilt = rebuildWith(forward, (_n, _m, g) => { b = g; return undefined; });
  const o = ops(b!), logits = rebuilt.outputs.logits!;
  // a logit difference reads two rows of the unembedding, not all V (unless the logits' own gradient is asked)
  const logitDiff = (ids: Node) => {
    const head = hooks.includes('hook_logits') ? undefined : unembeddingOf(logits);
    if (!head) return o.logitDiff(logits, ids);
    const d = o.logitDiffUnembed(head.w, head.x, ids);
    return head.factor === undefined ? d : o.scale(d, head.factor);
  };
  const metric = spec.kind === 'logit_diff' ? logitDiff(o.input('ids', [spec.pair ? 2 : 1]))
    : spec.kind === 'log_prob' ? o.logProb(logits, o.input('ids', [1]))
    : spec.build(o, logits);
  if (metric.size !== 1) throw new UsageError(`a metric is one number; the one built has shape [${metric.shape}]`);
  let grads: Map<Node, Node>;
  try {
    grads = gradients(b!, metric, hooks.map((n) => rebuilt.hooks[n]!.node), GRAD_OPS);
  } catch (e) {
    if (e instanceof ShapeError) throw new UsageError(`no gradient at ${hooks.join(', ')}: ${e.message}`);
    throw e;
  }
  return b!.finish({ metric, ...Object.fromEntries(hooks.flatMap((n) => [[`grad:${n}`, grads.get(rebuilt.hooks[n]!.node)!], [`act:${n}`, rebuilt.hooks[n]!.node]])) });
}
