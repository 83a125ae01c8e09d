// The logit lens: what the model would predict if it stopped after each layer — the residual stream
// after every block read through the final RMSNorm and the unembedding (nostalgebraist, 2020).
// One GPU job: the prompt runs with every layer's hook_resid_post tapped into a GPU buffer; the lens
// head (models/llama.ts's lensHead) unembeds all (layer, position) rows as one matrix product and
// reduces each row on the GPU to what is reported (top-k, the target's rank and probability, the KL to
// the final layer; ops/lens_stats.ts); only that is read back, once. The full lens logits are opt-in.
import { UsageError } from '../../compiler/errors.js';
import { lensStatsWidth } from '../../ops/lens_stats.js';
import type { Model } from '../model.js';
import type { StageCopy } from '../executor.js';
import { preparedRun, submitRun } from './run.js';
import { leaseStaging } from '../staging.js';

export interface LensCell {
  top: { id: number; piece: string; prob: number }[];
  /** the target token's rank (0 = top) and probability, when a target was given */
  target?: { rank: number; prob: number };
  /** KL(final output ‖ this layer's prediction), in nats */
  kl: number;
}
export interface LensResult {
  tokens: number[];
  pieces: string[];
  target?: { id: number; piece: string };
  /** one row per hook read (`blocks.{l}.hook_resid_post` of every layer, with hook_embed and each
   *  layer's resid_mid before it on request), one cell per position */
  layers: { hook: string; cells: LensCell[] }[];
  /** with `logits: true`, the lens logits: [layer][position] (the last layer's are the model's logits) */
  logits?: Float32Array[][];
}

export interface LensOptions {
  target?: number;
  /** tokens reported per cell (default 5) */
  top?: number;
  /** also read back every (layer, position)'s logits */
  logits?: boolean;
  /** also read the embedding (a row before the first layer) and each layer's resid_mid (between its
   *  attention and its MLP) through the unembedding */
  embed?: boolean;
  mid?: boolean;
  /** called as each pass of the lens head finishes: a prompt too long for one pass waits for each pass
   *  but the last when this is given (a wait costs the GPU's pipelining: one pass reports only its end) */
  progress?: (done: number, total: number) => void;
  /** filled, when given, with each phase's ms since the one before (prepared, forward-submitted,
   *  head-submitted, read, done): where a lens's time goes (benchmarks/interp_profile.ts) */
  timings?: Record<string, number>;
}

export async function logitLens(model: Model, tokens: number[], opts: LensOptions = {}): Promise<LensResult> {
  const top = opts.top ?? 5, V = model.config.vocabSize, L = model.config.nLayers, dim = model.config.dim;
  if (!Number.isInteger(top) || top < 1 || top > V) throw new UsageError(`the lens reports the top ${top} tokens, but the vocabulary has ${V}: choose 1..${V}`);
  if (opts.target !== undefined && (!Number.isInteger(opts.target) || opts.target < 0 || opts.target >= V)) throw new UsageError(`target token ${opts.target} is outside the vocabulary`);
  const n = tokens.length;
  let since = performance.now();
  const lap = (phase: string) => {
    if (!opts.timings) return;
    const now = performance.now();
    opts.timings[phase] = +(now - since).toFixed(2);
    since = now;
  };
  // the rows read, in the order the residual stream passes them; the last (the final resid_post) is
  // what the KL is measured against
  const hooks = [...(opts.embed ? ['hook_embed'] : []), ...Array.from({ length: L }, (_, l) => [...(opts.mid ? [`blocks.${l}.hook_resid_mid`] : []), `blocks.${l}.hook_resid_post`]).flat()];
  const R = hooks.length;
  // positions per pass of the lens head: its logits ([layers · positions, vocab]) fit one binding
  const chunk = Math.max(1, Math.min(n, Math.floor(Math.floor(model.bindingBytes / (4 * Math.max(V, dim))) / R)));
  const W = lensStatsWidth(top);
  const statsBytes = R * n * W * 4, logitsBytes = opts.logits ? R * n * V * 4 : 0;
  const gpu = model.executor.gpu, d = gpu.device;
  if (statsBytes + logitsBytes > gpu.limits.maxBufferSize) throw new UsageError(`the lens logits of ${R} rows × ${n} positions (${((R * n * V * 4) / 2 ** 20).toFixed(0)} MiB) do not fit one buffer of this device: leave them out or use fewer positions`);
  // the prompt's plan and the lens head's, their pipelines compiled side by side
  const [run, ...heads] = await Promise.all([preparedRun(model, [tokens], { interventions: [], hooks, head: 'last' }),
    ...[...new Set([chunk, n % chunk || chunk])].map(async (c) => [c, await model.lensExecutor(R, c, top)] as const)]);
  const headFor = new Map(heads);
  lap('prepared');
  const resid = d.createBuffer({ size: R * n * dim * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC }); // [layer, pos, dim]
  const lease = leaseStaging(d, statsBytes + logitsBytes), staging = lease.buffer;
  try {
    submitRun([tokens], run, ({ start, len }) => hooks.map((h, l) => ({ output: `hook:${h}`, dst: resid, srcOffset: 0, offset: (l * n + start) * dim * 4, bytes: len * dim * 4 })));
    lap('forward-submitted');
    const passes = Math.ceil(n / chunk);
    for (let p0 = 0; p0 < n; p0 += chunk) {
      const c = Math.min(chunk, n - p0), ex = headFor.get(c)!;
      const enc = d.createCommandEncoder();
      for (let l = 0; l < R; l++) enc.copyBufferToBuffer(resid, (l * n + p0) * dim * 4, ex.buffer('input', 'resid'), l * c * dim * 4, c * dim * 4);
      d.queue.submit([enc.finish()]);
      // the chunk's rows are layer-major; they land at [layer, position] in the staging buffer
      const stage: StageCopy[] = [];
      for (let l = 0; l < R; l++) {
        stage.push({ output: 'stats', dst: staging, srcOffset: l * c * W * 4, offset: (l * n + p0) * W * 4, bytes: c * W * 4 });
        if (opts.logits) stage.push({ output: 'logits', dst: staging, srcOffset: l * c * V * 4, offset: statsBytes + (l * n + p0) * V * 4, bytes: c * V * 4 });
      }
      ex.submit({ target: Int32Array.of(opts.target ?? V) }, stage);
      const k = p0 / chunk + 1;
      if (opts.progress && k < passes) { await d.queue.onSubmittedWorkDone(); opts.progress(k, passes); }
    }
    lap('head-submitted');
    const all = new Float32Array((await lease.read(statsBytes + logitsBytes)).slice(0));
    lap('read');
    lease.release();
    opts.progress?.(passes, passes);
    const piece = (id: number) => model.tokenizer.piece(id);
    const layers = hooks.map((hook, l) => ({
      hook,
      cells: tokens.map((_, p): LensCell => {
        const s = all.subarray((l * n + p) * W, (l * n + p + 1) * W);
        const cell: LensCell = { top: Array.from({ length: top }, (_, j) => ({ id: s[3 + j]!, piece: piece(s[3 + j]!), prob: s[3 + top + j]! })), kl: s[0]! };
        if (opts.target !== undefined) cell.target = { rank: s[1]!, prob: s[2]! };
        return cell;
      }),
    }));
    const logits = opts.logits ? hooks.map((_, l) => tokens.map((_, p) => all.subarray(statsBytes / 4 + (l * n + p) * V, statsBytes / 4 + (l * n + p + 1) * V))) : undefined;
    lap('done');
    return { tokens, pieces: tokens.map(piece), target: opts.target === undefined ? undefined : { id: opts.target, piece: piece(opts.target) }, layers, ...(logits ? { logits } : {}) };
  } finally {
    resid.destroy();
    lease.release();
  }
}
