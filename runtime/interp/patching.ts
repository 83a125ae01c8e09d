// Activation patching: transplant the clean run's activation at one site (layer × position, or
// layer × head for attn.hook_z) into the corrupted run and see how much of the clean behaviour comes
// back: (patched − corrupted) / (clean − corrupted) on the metric, the logit of the target (minus the
// distractor's) at the last position. Each site re-runs the corrupted prompt with a `replace`
// intervention; baselines run through the same compiled plan with an identity intervention, so an
// unchanged activation gives an effect of exactly 0.
import { CancelledError, UsageError } from '../../compiler/errors.js';
import type { Model } from '../model.js';
import { interventionTables } from './cache.js';
import { ivName } from '../../ops/intervene.js';

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

export function metricOf(logits: Float32Array | Float64Array, o: PatchOptions): number {
  return logits[o.target]! - (o.distractor === undefined ? 0 : logits[o.distractor]!);
}

/** The plain algorithm: every site re-runs the whole corrupted prompt through every layer. Kept as the
 *  baseline the reactive sweep is measured and checked against. */
export async function activationPatchingNaive(model: Model, clean: number[], corrupt: number[], o: PatchOptions): Promise<{ clean: number; corrupted: number; sites: PatchSite[] }> {
  if (clean.length !== corrupt.length) throw new UsageError(`the clean prompt has ${clean.length} tokens and the corrupted one ${corrupt.length}: they must tokenize to the same length`);
  const sites = o.sites ?? ['resid_pre'];
  for (const s of sites) if (!SITES[s]) throw new UsageError(`unknown site '${s}' (sites: ${Object.keys(SITES).join(', ')})`);
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

/** Reactive patching: a patch at (layer l, position p) changes nothing before layer l, at any position,
 *  and nothing before position p. So each patched run starts at layer l, fed the corrupted run's cached
 *  hook_resid_pre, and at position p, reusing the KV-cache rows below p: positions are swept from last
 *  to first, so the rows below p are still the corrupted run's (restored once per layer). Positions
 *  p..n-1 run as one prefill pass of the layers from l. Per head (attn.hook_z) sites patch every
 *  position, so they reuse only the layers below. Every kernel computes a position's row the same way
 *  whatever the block, so an unchanged activation gives an effect of exactly 0. */
export async function activationPatching(model: Model, clean: number[], corrupt: number[], o: PatchOptions):
  Promise<{ clean: number; corrupted: number; sites: PatchSite[]; work: PatchWork }> {
  if (clean.length !== corrupt.length) throw new UsageError(`the clean prompt has ${clean.length} tokens and the corrupted one ${corrupt.length}: they must tokenize to the same length`);
  const sites = o.sites ?? ['resid_pre'];
  for (const s of sites) if (!SITES[s]) throw new UsageError(`unknown site '${s}' (sites: ${Object.keys(SITES).join(', ')})`);
  const L = model.config.nLayers, n = clean.length, dim = model.config.dim, V = model.config.vocabSize;
  const last = (ls: Float32Array[]) => metricOf(ls[ls.length - 1]!, o);
  const work: PatchWork = { layerSteps: 2 * n * L, naiveLayerSteps: 0 };
  const siteHooks = sites.flatMap((s) => Array.from({ length: L }, (_, l) => `blocks.${l}.${SITES[s]}`));
  const cleanRun = await model.runWithCache(clean, { hooks: siteHooks });
  const residHooks = Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`);
  const corruptRun = await model.runWithCache(corrupt, { hooks: residHooks });
  const top = last(cleanRun.logits), base = last(corruptRun.logits);
  const saved = model.saveState(); // the corrupted run's KV cache
  const out: PatchSite[] = [];
  const total = sites.reduce((s, site) => s + L * (site === 'z' ? model.config.nHeads : n), 0);
  let done = 0;
  try {
    for (const site of sites) {
      const perHead = site === 'z';
      const cols = perHead ? Array.from({ length: model.config.nHeads }, (_, h) => `head ${h}`) : clean.map((t) => model.tokenizer.piece(t));
      const scores: (number | null)[][] = [], effects: number[][] = [];
      for (let l = 0; l < L; l++) {
        const hook = `blocks.${l}.${SITES[site]}`;
        const resid = corruptRun.cache.get(`blocks.${l}.hook_resid_pre`)!.data;
        const row: (number | null)[] = new Array(cols.length).fill(null), eff: number[] = new Array(cols.length).fill(0);
        saved.restore();
        // positions last to first; heads all start at position 0
        const order = perHead ? [...cols.keys()] : [...cols.keys()].reverse();
        for (const c of order) {
          if (o.stop?.aborted) throw new CancelledError();
          const at = perHead ? `${hook}[head=${c}]` : `${hook}[pos=${c}]`;
          const t = interventionTables([{ hook: at, replace: cleanRun.cache.get(hook)!.data }], model.graph.hooks, model.hookNames, n).get(hook)!;
          // positions from..n-1 in one pass of the layers from l (a prefill of the tail)
          const from = perHead ? 0 : c;
          const ex = await model.variant({ interventions: [{ hook, rows: n }], startLayer: l, positions: n - from });
          ex.write(ivName(hook, 'a'), t.a);
          ex.write(ivName(hook, 'b'), t.b);
          const inputs: Record<string, number | Int32Array | Float32Array> = l === 0 ? { token: Int32Array.from(corrupt.slice(from)), pos: from } : { resid: resid.subarray(from * dim, n * dim), pos: from };
          const logits = (await ex.run(inputs, 'logits')).subarray((n - from - 1) * V, (n - from) * V);
          work.layerSteps += (n - from) * (L - l);
          const patched = metricOf(logits, o);
          eff[c] = patched - base;
          row[c] = top === base ? null : (patched - base) / (top - base);
          o.onProgress?.(++done, total);
        }
        scores.push(row);
        effects.push(eff);
      }
      work.naiveLayerSteps += cols.length * L * n * L;
      out.push({ site, rows: Array.from({ length: L }, (_, l) => `blocks.${l}`), cols, scores, effects });
    }
  } finally {
    saved.destroy();
  }
  work.naiveLayerSteps += 2 * n * L;
  return { clean: top, corrupted: base, sites: out, work };
}

/** The sweep as `tapir patch --json` and the viewer report it: the metric's tokens named beside the
 *  scores. Clean and corrupted runs that agree on the metric are an error: every score would be 0 / 0. */
export async function patchingReport(model: Model, clean: number[], corrupt: number[], o: PatchOptions) {
  const r = await activationPatching(model, clean, corrupt, o);
  if (r.clean === r.corrupted)
    throw new UsageError(`the clean and corrupted prompts give the same metric (${r.clean}), so the normalised score is undefined: choose prompts, target or distractor that differ`);
  const named = (id: number) => ({ id, piece: model.tokenizer.piece(id) });
  return { target: named(o.target), distractor: o.distractor === undefined ? undefined : named(o.distractor), clean: r.clean, corrupted: r.corrupted, sites: r.sites };
}
