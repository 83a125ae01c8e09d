// The logit lens: what the model would predict if it stopped after each layer — the residual stream
// after every block read through the final RMSNorm and the unembedding (nostalgebraist, 2020).
import { UsageError } from '../../compiler/errors.js';
import type { Model } from '../model.js';
import { softmax } from '../sampler.js';

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
  /** `blocks.{l}.hook_resid_post`, one row per layer, one cell per position */
  layers: { hook: string; cells: LensCell[] }[];
  /** the lens logits: [layer][position] (the last layer's are the model's logits) */
  logits: Float32Array[][];
}

export async function logitLens(model: Model, tokens: number[], opts: { target?: number; top?: number } = {}): Promise<LensResult> {
  const top = opts.top ?? 5;
  if (opts.target !== undefined && (opts.target < 0 || opts.target >= model.config.vocabSize)) throw new UsageError(`target token ${opts.target} is outside the vocabulary`);
  const L = model.config.nLayers;
  const hooks = Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_post`);
  const { cache } = await model.runWithCache(tokens, { hooks });
  const dim = model.config.dim;
  const logits: Float32Array[][] = [];
  for (const h of hooks) {
    const data = cache.get(h)!.data;
    logits.push(await model.unembed(tokens.map((_, p) => data.slice(p * dim, (p + 1) * dim))));
  }
  const final = logits[L - 1]!.map((r) => softmax(r));
  const piece = (id: number) => model.tokenizer.piece(id);
  const layers = hooks.map((hook, l) => ({
    hook,
    cells: logits[l]!.map((row, p) => {
      const probs = softmax(row);
      const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b);
      let kl = 0;
      const f = final[p]!;
      for (let i = 0; i < f.length; i++) if (f[i]! > 0) kl += f[i]! * (Math.log(f[i]!) - Math.log(Math.max(probs[i]!, 1e-300)));
      const cell: LensCell = { top: order.slice(0, top).map((id) => ({ id, piece: piece(id), prob: probs[id]! })), kl: Math.max(0, kl) };
      if (opts.target !== undefined) cell.target = { rank: order.indexOf(opts.target), prob: probs[opts.target]! };
      return cell;
    }),
  }));
  return { tokens, pieces: tokens.map(piece), target: opts.target === undefined ? undefined : { id: opts.target, piece: piece(opts.target) }, layers, logits };
}
