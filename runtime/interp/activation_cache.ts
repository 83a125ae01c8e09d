// The activation cache a hooked run returns: a Map from hook keys to [batch, pos, ...] values (as
// before), read the way TransformerLens's ActivationCache is: `cache.get('resid_post', 5)`, and its
// residual-stream helpers — accumulatedResid, decomposeResid, stackHeadResults, applyLnToStack and
// logitAttrs — with TL's component order and labels. Stacks are [components, batch, pos, d_model]
// (without the pos axis when one position is picked). RMSNorm models: applying the norm divides by the
// cached hook_scale (there is no mean to remove); the norms' weights are not applied, as in TL with its
// default fold_ln, where they live in the next matrix — logitAttrs reads through W_U with the final
// norm's weight folded in, so the attributions of a decomposed, normed residual add up to the logits.
import { UsageError } from '../../compiler/errors.js';
import { hookName } from '../../compiler/hooks.js';
import type { LlamaConfig } from '../../models/llama.js';
import type { CacheEntry } from './cache.js';

/** Components of the residual stream stacked: `data` is [components, batch, pos, d_model] (or
 *  [components, batch, d_model] for one position), `labels` names each component as TL does. */
export interface ResidStack { labels: string[]; shape: number[]; data: Float32Array; pos?: number }

/** Per-component, per-(batch, pos) attributions: [components, batch, pos] (or [components, batch]). */
export interface Attributions { labels: string[]; shape: number[]; data: Float32Array }

export interface StackOptions {
  /** normalize by the cached norm scale the stack is read at (applyLnToStack) */
  applyLn?: boolean;
  /** one position (negative counts from the end) instead of all */
  pos?: number;
}

/** What the cache needs of its model: the shape, and weights by GGUF name for logitAttrs. */
export interface CacheModel {
  readonly config: LlamaConfig;
  weightValues(name: string): Float64Array;
}

export class ActivationCache extends Map<string, CacheEntry> {
  constructor(private readonly model: CacheModel, entries: Iterable<readonly [string, CacheEntry]> = []) {
    super(entries);
  }

  /** A hook's values: by its key (`blocks.5.hook_resid_post`, `blocks.2.attn.hook_z[head=5]`), or TL's
   *  `cache[name, layer]`: a short name (`resid_post`, `z`, `pattern`) or a name within a block with its layer. */
  override get(name: string, layer?: number): CacheEntry | undefined {
    return super.get(layer === undefined && super.has(name) ? name : hookName(name, layer));
  }

  /** get, or a clear error that says what to cache. */
  need(name: string, layer?: number, why = 'this'): CacheEntry {
    const e = this.get(name, layer);
    if (!e) throw new UsageError(`${why} needs ${hookName(name, layer)} in the cache: run with it among the hooks (e.g. '${hookName(name, layer).replace(/^blocks\.\d+\./, 'blocks.*.')}')`);
    return e;
  }

  /** TL's accumulated_resid: the residual stream entering each layer up to `layer` (resid_pre of
   *  0..layer, with resid_mid of the layers before it when `inclMid`; `layer` = n_layers, the default,
   *  ends with the final resid_post, "final_post"). */
  accumulatedResid(layer = this.model.config.nLayers, o: StackOptions & { inclMid?: boolean; mlpInput?: boolean } = {}): ResidStack {
    const L = this.layerIn(layer, 'accumulatedResid');
    const parts: [string, CacheEntry][] = [];
    for (let l = 0; l <= L; l++) {
      if (l === this.model.config.nLayers) { parts.push(['final_post', this.need('resid_post', l - 1, 'accumulatedResid')]); continue; }
      parts.push([`${l}_pre`, this.need('resid_pre', l, 'accumulatedResid')]);
      if ((o.inclMid && l < L) || (o.mlpInput && l === L)) parts.push([`${l}_mid`, this.need('resid_mid', l, 'accumulatedResid')]);
    }
    const s = this.stack(parts, o.pos);
    return o.applyLn ? this.applyLnToStack(s, L, { mlpInput: o.mlpInput }) : s;
  }

  /** TL's decompose_resid: what was written into the residual stream before `layer` — the embedding,
   *  then each layer's attention and MLP outputs (`mode` keeps one kind) — summing to its resid_pre
   *  (the final resid_post at n_layers, the default). */
  decomposeResid(layer = this.model.config.nLayers, o: StackOptions & { mode?: 'all' | 'attn' | 'mlp'; inclEmbeds?: boolean; mlpInput?: boolean } = {}): ResidStack {
    const L = this.layerIn(layer, 'decomposeResid'), mode = o.mode ?? 'all';
    const parts: [string, CacheEntry][] = [];
    if (o.inclEmbeds ?? true) parts.push(['embed', this.need('hook_embed', undefined, 'decomposeResid')]);
    for (let l = 0; l < L; l++) {
      if (mode !== 'mlp') parts.push([`${l}_attn_out`, this.need('attn_out', l, 'decomposeResid')]);
      if (mode !== 'attn') parts.push([`${l}_mlp_out`, this.need('mlp_out', l, 'decomposeResid')]);
    }
    if (o.mlpInput && mode !== 'mlp') parts.push([`${L}_attn_out`, this.need('attn_out', L, 'decomposeResid')]);
    const s = this.stack(parts, o.pos);
    return o.applyLn ? this.applyLnToStack(s, L, { mlpInput: o.mlpInput }) : s;
  }

  /** TL's stack_head_results: every head's output (attn.hook_result, cached on request) of the layers
   *  before `layer`, labelled L{l}H{h}; `inclRemainder` adds what the heads do not explain of resid_post. */
  stackHeadResults(layer = this.model.config.nLayers, o: StackOptions & { inclRemainder?: boolean } = {}): ResidStack {
    const L = this.layerIn(layer, 'stackHeadResults'), H = this.model.config.nHeads, d = this.model.config.dim;
    const parts: [string, CacheEntry][] = [];
    for (let l = 0; l < L; l++) {
      const r = this.need('attn.hook_result', l, 'stackHeadResults'); // [B, n, H, d]
      const [B, n] = r.shape as [number, number];
      for (let h = 0; h < H; h++) {
        const one = new Float32Array(B * n * d);
        for (let i = 0; i < B * n; i++) one.set(r.data.subarray((i * H + h) * d, (i * H + h + 1) * d), i * d);
        parts.push([`L${l}H${h}`, { shape: [B, n, d], data: one }]);
      }
    }
    if (o.inclRemainder) {
      const post = this.need('resid_post', L - 1, 'stackHeadResults');
      const rest = Float32Array.from(post.data);
      for (const [, p] of parts) for (let i = 0; i < rest.length; i++) rest[i]! -= p.data[i]!;
      parts.push(['remainder', { shape: post.shape, data: rest }]);
    }
    const s = this.stack(parts, o.pos);
    return o.applyLn ? this.applyLnToStack(s, L) : s;
  }

  /** TL's apply_ln_to_stack: each component divided by the norm scale cached where the stack is read —
   *  ln_final.hook_scale at n_layers, else blocks.{layer}.ln1 (ln2 with `mlpInput`).hook_scale. */
  applyLnToStack(stack: ResidStack, layer = this.model.config.nLayers, o: { mlpInput?: boolean } = {}): ResidStack {
    const L = this.layerIn(layer, 'applyLnToStack'), d = this.model.config.dim;
    const scale = L === this.model.config.nLayers ? this.need('ln_final.hook_scale', undefined, 'applyLnToStack') : this.need(`ln${o.mlpInput ? 2 : 1}.hook_scale`, L, 'applyLnToStack');
    const [B, n] = scale.shape as [number, number];
    const rows = stack.pos === undefined ? n : 1;
    const data = new Float32Array(stack.data.length);
    for (let c = 0; c < stack.labels.length; c++) for (let b = 0; b < B; b++) for (let t = 0; t < rows; t++) {
      const s = scale.data[b * n + (stack.pos ?? t)]!, at = ((c * B + b) * rows + t) * d;
      for (let i = 0; i < d; i++) data[at + i] = stack.data[at + i]! / s;
    }
    return { ...stack, data };
  }

  /** TL's logit_attrs: each component read along the unembedding of `tokens` (minus `incorrect`'s):
   *  W_U[token] with the final norm's weight folded in (and Granite's logit divisor), so normed
   *  components of decomposeResid add up to the logit (difference). A token, or one per position. */
  logitAttrs(stack: ResidStack, tokens: number | readonly number[], incorrect?: number | readonly number[]): Attributions {
    const c = this.model.config, d = c.dim, V = c.vocabSize;
    const [C, B] = stack.shape as [number, number];
    const rows = stack.pos === undefined ? stack.shape[2]! : 1;
    const per = (t: number | readonly number[] | undefined, what: string) => {
      if (t === undefined) return undefined;
      const ids = typeof t === 'number' ? Array<number>(rows).fill(t) : [...t];
      if (ids.length !== rows) throw new UsageError(`logitAttrs: ${ids.length} ${what} for ${rows} positions`);
      for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new UsageError(`logitAttrs: token ${id} is outside the vocabulary (0..${V - 1})`);
      return ids;
    };
    const [good, bad] = [per(tokens, 'tokens'), per(incorrect, 'incorrect tokens')];
    const U = this.model.weightValues(c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight');
    const wf = this.model.weightValues('output_norm.weight');
    const dir = (t: number) => Float64Array.from({ length: d }, (_, i) => ((U[good![t]! * d + i]! - (bad ? U[bad[t]! * d + i]! : 0)) * wf[i]!) / (c.logitScale ?? 1));
    const dirs = Array.from({ length: rows }, (_, t) => dir(t));
    const data = new Float32Array(C * B * rows);
    for (let k = 0; k < C * B * rows; k++) {
      const v = dirs[k % rows]!;
      let s = 0;
      for (let i = 0; i < d; i++) s += v[i]! * stack.data[k * d + i]!;
      data[k] = s;
    }
    return { labels: stack.labels, shape: stack.pos === undefined ? [C, B, rows] : [C, B], data };
  }

  private layerIn(layer: number, what: string): number {
    const L = this.model.config.nLayers;
    const l = layer === -1 ? L : layer;
    if (!Number.isInteger(l) || l < 0 || l > L) throw new UsageError(`${what}: layer ${layer} is out of range (0..${L}; ${L} or -1: after the last block)`);
    return l;
  }

  /** [components, batch, pos, d] (one position: [components, batch, d]) from [batch, pos, d] entries. */
  private stack(parts: readonly [string, CacheEntry][], pos?: number): ResidStack {
    const d = this.model.config.dim;
    if (parts.length === 0) return { labels: [], shape: [0, 0, 0, d], data: new Float32Array(0) };
    const [B, n] = parts[0]![1].shape as [number, number];
    let p: number | undefined;
    if (pos !== undefined) {
      if (!Number.isInteger(pos) || pos >= n || pos < -n) throw new UsageError(`position ${pos} is out of range for ${n} tokens`);
      p = pos < 0 ? n + pos : pos;
    }
    const rows = p === undefined ? n : 1;
    const data = new Float32Array(parts.length * B * rows * d);
    parts.forEach(([label, e], c) => {
      if (e.shape.length !== 3 || e.shape[0] !== B || e.shape[1] !== n || e.shape[2] !== d) throw new UsageError(`${label}: cached as [${e.shape}], but a residual stack needs the whole [${B}, ${n}, ${d}] (cache it without a [pos=] or [head=] filter)`);
      for (let b = 0; b < B; b++) data.set(e.data.subarray((b * n + (p ?? 0)) * d, (b * n + (p ?? 0) + rows) * d), (c * B + b) * rows * d);
    });
    return { labels: parts.map(([l]) => l), shape: p === undefined ? [parts.length, B, n, d] : [parts.length, B, d], data, ...(p === undefined ? {} : { pos: p }) };
  }
}
