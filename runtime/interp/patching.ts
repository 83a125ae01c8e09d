// Activation patching: transplant the clean run's activation at one site (layer × position, or
// layer × head for attn.hook_z) into the corrupted run and see how much of the clean behaviour comes
// back: (patched − corrupted) / (clean − corrupted) on the metric, the logit of the target (minus the
// distractor's) at the last position. Each site re-runs the corrupted prompt with a `replace`
// intervention; baselines run through the same compiled plan with an identity intervention, so an
// unchanged activation gives an effect of exactly 0.
import { UsageError } from '../../compiler/errors.js';
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

export interface PatchOptions { target: number; distractor?: number; sites?: readonly string[] }

export function metricOf(logits: Float32Array | Float64Array, o: PatchOptions): number {
  return logits[o.target]! - (o.distractor === undefined ? 0 : logits[o.distractor]!);
}

export async function activationPatching(model: Model, clean: number[], corrupt: number[], o: PatchOptions): Promise<{ clean: number; corrupted: number; sites: PatchSite[] }> {
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
