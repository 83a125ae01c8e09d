// Activation patching: transplant the clean run's activation at one site (layer × position, or
// layer × head for attn.hook_z) into the corrupted run and see how much of the clean behaviour comes
// back: (patched − corrupted) / (clean − corrupted) on the metric, the logit of the target (minus the
// distractor's) at the last position. Each site re-runs the corrupted prompt with a `replace`
// intervention; baselines run through the same compiled plan with an identity intervention, so an
// unchanged activation gives an effect of exactly 0.
import { CancelledError, UsageError } from '../../compiler/errors.js';
import type { Model } from '../model.js';

export const SITES: Readonly<Record<string, string>> = {
  resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post',
  attn_out: 'hook_attn_out', mlp_out: 'hook_mlp_out', z: 'attn.hook_z',
};

export interface PatchSite {
  site: string;
  /** layer names, one row each */
  rows: string[];
  /** positions (token pieces) or heads, one column each */
  cols: string[];
  /** (patched − corrupted) / (clean − corrupted); null where clean and corrupted agree (undefined) */
  scores: (number | null)[][];
  /** patched − corrupted */
  effects: number[][];
}

export interface PatchOptions {
  target: number; distractor?: number; sites?: readonly string[];
  /** after each patched run: runs done, runs in all */
  onProgress?: (done: number, total: number) => void;
  /** checked before each patched run: when aborted, the sweep stops with a CancelledError */
  stop?: { readonly aborted: boolean };
}

/** The checks every sweep makes of its arguments (exact, naive and attribution patching): prompts of one
 *  length, known sites, tokens inside the vocabulary. Returns the sites (resid_pre unless given). */
export function checkPatchArgs(vocabSize: number, clean: readonly number[], corrupt: readonly number[], o: PatchOptions): string[] {
  if (clean.length !== corrupt.length) throw new UsageError(`the clean prompt has ${clean.length} tokens and the corrupted one ${corrupt.length}: they must tokenize to the same length`);
  const sites = o.sites ?? ['resid_pre'];
  for (const s of sites) if (!SITES[s]) throw new UsageError(`unknown site '${s}' (sites: ${Object.keys(SITES).join(', ')})`);
  for (const t of [o.target, o.distractor]) if (t !== undefined && !(Number.isInteger(t) && t >= 0 && t < vocabSize)) throw new UsageError(`token ${t} is outside the vocabulary`);
  return [...sites];
}

export function metricOf(logits: Float32Array | Float64Array, o: PatchOptions): number {
  return logits[o.target]! - (o.distractor === undefined ? 0 : logits[o.distractor]!);
}

/** The plain algorithm: every site re-runs the whole corrupted prompt through every layer. Kept as the
 *  baseline the reactive sweep is measured and checked against. */
export async function activationPatchingNaive(model: Model, clean: number[], corrupt: number[], o: PatchOptions): Promise<{ clean: number; corrupted: number; sites: PatchSite[] }> {
  const sites = checkPatchArgs(model.config.vocabSize, clean, corrupt, o);
  const last = (ls: Float32Array[]) => metricOf(ls[ls.length - 1]!, o);
  const L = model.config.nLayers, n = clean.length;
  const out: PatchSite[] = [];
  let cleanMetric = NaN, corruptMetric = NaN;
  for (const site of sites) {
    const hooks = Array.from({ length: L }, (_, l) => `blocks.${l}.${SITES[site]}`);
    const { cache } = await model.runWithCache(clean, { hooks });
    const perHead = site === 'z';
    const cols = perHead ? Array.from({ length: model.config.nHeads }, (_, h) => `head ${h}`) : clean.map((t) => model.tokenizer.piece(t));
    const scores: (number | null)[][] = [], effects: number[][] = [];
    for (const hook of hooks) {
      const identity = [{ hook, scale: 1 }];
      const base = last((await model.runWithHooks(corrupt, { interventions: identity })).logits);
      const top = last((await model.runWithHooks(clean, { interventions: identity })).logits);
      [cleanMetric, corruptMetric] = [top, base];
      const row: (number | null)[] = [], eff: number[] = [];
      for (let c = 0; c < (perHead ? model.config.nHeads : n); c++) {
        const at = perHead ? `${hook}[head=${c}]` : `${hook}[pos=${c}]`;
        const patched = last((await model.runWithHooks(corrupt, { interventions: [{ hook: at, replace: cache.get(hook)!.data }] })).logits);
        eff.push(patched - base);
        row.push(top === base ? null : (patched - base) / (top - base));
      }
      scores.push(row);
      effects.push(eff);
    }
    out.push({ site, rows: hooks.map((h) => h.replace(`.${SITES[site]}`, '')), cols, scores, effects });
  }
  return { clean: cleanMetric, corrupted: corruptMetric, sites: out };
}

/** Work done, in layer-steps (one transformer layer at one position): what a sweep costs. */
export interface PatchWork { layerSteps: number; naiveLayerSteps: number }

/** Rows (sequences × positions) a pass of patched runs aims at. A pass of the 1B shape costs about the
 *  same from 16 to 256 rows (H100: 33 ms with 64 rows, 35 with 128, 45 with 256; the matrix products'
 *  tiles and their weight reads dominate), so a pass holds as many patched runs as a prefill block
 *  holds rows; reactivity (groups from p0 on) saves work past that. */
export const PATCH_ROWS = 256;

/** Positions grouped for batched reactive runs: from the last position back, a group grows while its
 *  sequences × the positions they run (from the group's first on) stay within `rows`. */
export function positionGroups(n: number, rows: number): { from: number; cols: number[] }[] {
  const groups: { from: number; cols: number[] }[] = [];
  for (let end = n; end > 0;) {
    let from = end - 1;
    while (from > 0 && (end - from + 1) * (n - from + 1) <= rows) from--;
    groups.push({ from, cols: Array.from({ length: end - from }, (_, i) => from + i) });
    end = from;
  }
  return groups;
}

/** Batched, reactive patching. A patch at (layer l, position p) changes nothing before layer l, at any
 *  position, and nothing before position p. So patched runs start at layer l, fed the corrupted run's
 *  cached hook_resid_pre, and run as batches: a group of positions p ≥ p0 is one batch of sequences
 *  (each patched at its own position, with its own intervention tables) over positions p0..n-1, their
 *  KV-cache rows below p0 copied from the corrupted run. Per-head (attn.hook_z) sites patch every
 *  position, so a batch of heads runs from position 0. Each run's metric (target − distractor logit
 *  at the last position) is picked on the GPU: a few bytes come back per run. Every kernel computes a
 *  position's row the same way whatever the block or batch, so an unchanged activation gives an effect
 *  of exactly 0. `rows`: the rows a pass aims at (PATCH_ROWS; 1 runs every site alone). */
export async function activationPatching(model: Model, clean: number[], corrupt: number[], o: PatchOptions & { rows?: number }):
  Promise<{ clean: number; corrupted: number; sites: PatchSite[]; work: PatchWork }> {
  const sites = checkPatchArgs(model.config.vocabSize, clean, corrupt, o);
  const L = model.config.nLayers, n = clean.length, H = model.config.nHeads;
  const maxBatch = model.maxBatch;
  if (maxBatch < 1) throw new UsageError(`one more KV cache of ${model.contextLength} positions does not fit a binding of this device: use a shorter --context`);
  const work: PatchWork = { layerSteps: 2 * n * L, naiveLayerSteps: 0 };
  const siteHooks = sites.flatMap((s) => Array.from({ length: L }, (_, l) => `blocks.${l}.${SITES[s]}`));
  const cleanRun = await model.runWithCache(clean, { hooks: siteHooks, logits: 'last' });
  const residHooks = Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`);
  const corruptRun = await model.runWithCache(corrupt, { hooks: residHooks, logits: 'last' }); // the model's KV cache now holds it
  // a batch of one patched run writes the model's own cache: put the corrupted run back each layer (within
  // a layer, groups go from the last position down, so rows below a group's first are still its)
  const saved = model.saveState();
  const top = metricOf(cleanRun.logits[0]!, o), base = metricOf(corruptRun.logits[0]!, o);
  const ids = Int32Array.from(o.distractor === undefined ? [o.target] : [o.target, o.distractor]);
  const rowsPerPass = Math.max(1, o.rows ?? PATCH_ROWS);
  const total = sites.reduce((s, site) => s + L * (site === 'z' ? H : n), 0);
  const out: PatchSite[] = [];
  let done = 0;
  // a layer's batches are submitted, then the layer before's results are read while the GPU runs them
  const d = model.executor.gpu.device;
  let pending: (() => Promise<void>) | undefined;
  const staging: GPUBuffer[] = [];
  try {
    for (const site of sites) {
      const perHead = site === 'z';
      const cols = perHead ? Array.from({ length: H }, (_, h) => `head ${h}`) : clean.map((t) => model.tokenizer.piece(t));
      // batches: groups of positions (reactive), or of heads (every position)
      const groups = (perHead ? chunks(H, Math.max(1, Math.floor(rowsPerPass / n))).map((c) => ({ from: 0, cols: c })) : positionGroups(n, rowsPerPass))
        .flatMap((g) => chunks(g.cols.length, maxBatch).map((part) => ({ from: g.from, cols: part.map((i) => g.cols[i]!) })));
      const scores: (number | null)[][] = [], effects: number[][] = [];
      for (let l = 0; l < L; l++) {
        saved.restore();
        const hook = `blocks.${l}.${SITES[site]}`;
        const size = model.graph.hooks[hook]!.node.size, hs = size / H;
        const cleanAct = cleanRun.cache.get(hook)!.data, resid = corruptRun.cache.get(`blocks.${l}.hook_resid_pre`)!.data;
        const row: (number | null)[] = new Array(cols.length).fill(null), eff: number[] = new Array(cols.length).fill(0);
        const dst = d.createBuffer({ size: Math.max(16, groups.reduce((t, g) => t + g.cols.length, 0) * ids.length * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        staging.push(dst);
        const placed: { batch: number[]; at: number }[] = [];
        let at = 0;
        for (const { from, cols: batch } of groups) {
          if (o.stop?.aborted) throw new CancelledError();
          const B = batch.length;
          // each sequence's tables: identity, but its own site takes the clean value
          const a = new Float32Array(B * n * size).fill(1), b = new Float32Array(B * n * size);
          batch.forEach((c, k) => {
            for (let p = perHead ? 0 : c; p < (perHead ? n : c + 1); p++)
              for (let e = perHead ? c * hs : 0; e < (perHead ? (c + 1) * hs : size); e++) { a[(k * n + p) * size + e] = 0; b[(k * n + p) * size + e] = cleanAct[p * size + e]!; }
          });
          await model.submitPatchedRuns({ layer: l, from, batch: B, hook, a, b, ids, tokens: corrupt, resid }, { dst, offset: at * 4 });
          placed.push({ batch, at });
          at += B * ids.length;
          work.layerSteps += B * (n - from) * (L - l);
        }
        scores.push(row);
        effects.push(eff);
        const previous = pending;
        pending = async () => {
          await dst.mapAsync(GPUMapMode.READ);
          const picked = new Float32Array(dst.getMappedRange().slice(0));
          for (const { batch, at: from } of placed) {
            batch.forEach((c, k) => {
              const patched = picked[from + k * ids.length]! - (ids.length > 1 ? picked[from + k * ids.length + 1]! : 0);
              eff[c] = patched - base;
              row[c] = top === base ? null : (patched - base) / (top - base);
            });
            done += batch.length;
            o.onProgress?.(done, total);
          }
          dst.destroy();
        };
        await previous?.();
      }
      work.naiveLayerSteps += cols.length * L * n * L;
      out.push({ site, rows: Array.from({ length: L }, (_, l) => `blocks.${l}`), cols, scores, effects });
    }
    await pending?.();
  } finally {
    saved.destroy();
    for (const b of staging) b.destroy();
  }
  work.naiveLayerSteps += 2 * n * L;
  return { clean: top, corrupted: base, sites: out, work };
}

/** 0..n-1 in runs of at most `size`. */
const chunks = (n: number, size: number) => Array.from({ length: Math.ceil(n / size) }, (_, i) => Array.from({ length: Math.min(size, n - i * size) }, (_, j) => i * size + j));
