// Gradients at hooks on the GPU: the prompt's graph with a metric on its logits, differentiated by the
// compiler (compiler/grad.ts: each op's vector-Jacobian product), compiled and run as one plan — the
// forward, then the backward — on the model's weights and KV cache. d(metric)/d(hook) comes back shaped
// as the forward hook is ([batch, pos, ...]). For now the prompt runs as one block (no backward across
// prefill blocks yet) and the metric is the last position's logit difference.
import { ShapeError, UsageError } from '../../compiler/errors.js';
import { rebuildWith, type Graph, type GraphBuilder } from '../../compiler/ir/graph.js';
import { hookNamesOf, selectHooks } from '../../compiler/hooks.js';
import { gradients } from '../../compiler/grad.js';
import { compile, type CompileOptions } from '../../compiler/passes.js';
import type { Plan } from '../../compiler/plan.js';
import type { Target } from '../../compiler/target.js';
import type { DType } from '../../compiler/ir/dtype.js';
import type { Node } from '../../compiler/ir/op.js';
import { GRAD_OPS, OPSET, ops } from '../../ops/index.js';
import { llama, type LlamaConfig } from '../../models/llama.js';
import { Executor } from '../executor.js';
import type { WeightMap } from '../weights.js';

export interface GradientOptions {
  /** the metric: logit[target] − logit[distractor] at the last position */
  target: number;
  distractor: number;
  /** hooks to give d(metric)/d(hook) at (whole hooks, e.g. 'hook_embed, blocks.*.hook_resid_pre') */
  hooks: string | readonly string[];
}
export interface GradientResult {
  metric: number;
  /** d(metric)/d(hook) by hook name, [1, pos, ...] */
  grads: Map<string, { shape: number[]; data: Float32Array }>;
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
  readonly blockSize: number;
  checkTokens(tokens: readonly number[]): void;
  /** plans made before, by prompt length and hooks */
  readonly plans: Map<string, { ex: Executor; plan: Plan }>;
}

export async function runWithGradients(h: GradientHost, tokens: readonly number[], o: GradientOptions): Promise<GradientResult> {
  h.checkTokens(tokens);
  const V = h.config.vocabSize, T = tokens.length;
  for (const id of [o.target, o.distractor]) if (!Number.isInteger(id) || id < 0 || id >= V) throw new UsageError(`token id ${id} is outside the vocabulary (0..${V - 1})`);
  if (T > h.blockSize) throw new UsageError(`gradients run the prompt as one block for now: at most ${h.blockSize} tokens, got ${T}`);
  const sels = selectHooks(typeof o.hooks === 'string' ? o.hooks : o.hooks.join(','), hookNamesOf(h.graph.hooks));
  if (!sels.length) throw new UsageError('no hooks to give gradients at');
  for (const s of sels) if (s.pos !== undefined || s.head !== undefined) throw new UsageError(`${s.key}: gradients are given for whole hooks; leave out [pos=..] and [head=..]`);
  const names = [...new Set(sels.map((s) => s.hook))];
  const key = `${T}|${names.join(',')}`;
  let p = h.plans.get(key);
  if (!p) {
    const plan = compile(gradientGraph(h.config, h.dtypeOf, T, names), OPSET, h.target, h.compileOptions).plan!;
    p = { ex: await Executor.create(h.executor.gpu, plan, h.weights, h.executor), plan };
    h.plans.set(key, p);
  }
  const metric = (await p.ex.run({ token: Int32Array.from(tokens), pos: 0, ids: Int32Array.of(o.target, o.distractor) }, 'metric'))[0]!;
  const grads = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const n of names) {
    const shape = [1, T, ...h.graph.hooks[n]!.shape], size = shape.reduce((a, c) => a * c, 1);
    grads.set(n, { shape, data: (await p.ex.read(p.plan.outputs[`grad:${n}`]!)).slice(0, size) });
  }
  return { metric, grads };
}

/** The graph a gradient run compiles: the prompt's block of T positions, the metric (logit difference of
 *  the input `ids` [target, distractor] at the last position) and, as outputs `grad:HOOK`, its gradient
 *  at each hook (the float64 reference runs the same graph: test/gradients.test.ts, gpu_check). */
export function gradientGraph(c: LlamaConfig, dtypeOf: (name: string) => DType, T: number, hooks: readonly string[]): Graph {
  let b: GraphBuilder | undefined;
  const rebuilt = rebuildWith(llama(c, dtypeOf, { positions: T, head: 'last' }), (_n, _m, g) => { b = g; return undefined; });
  const o = ops(b!), metric = o.logitDiff(rebuilt.outputs.logits!, o.input('ids', [2]));
  let grads: Map<Node, Node>;
  try {
    grads = gradients(b!, metric, hooks.map((n) => rebuilt.hooks[n]!.node), GRAD_OPS);
  } catch (e) {
    if (e instanceof ShapeError) throw new UsageError(`no gradient at ${hooks.join(', ')}: ${e.message}`);
    throw e;
  }
  return b!.finish({ metric, ...Object.fromEntries(hooks.map((n) => [`grad:${n}`, grads.get(rebuilt.hooks[n]!.node)!])) });
}
