// A patching sweep as `tapir patch --json` and the viewer report it: exact (runtime/interp/patching.ts)
// or attribution patching (runtime/interp/attribution.ts), the metric's tokens named beside the scores.
import { UsageError } from '../../compiler/errors.js';
import type { Model } from '../model.js';
import { activationPatching, type PatchOptions, type PatchSite } from './patching.js';
import { attributionPatching } from './attribution.js';

export const METHODS = ['exact', 'attribution'] as const;
export type PatchMethod = (typeof METHODS)[number];

export interface PatchReportOptions extends PatchOptions {
  /** 'exact' (default): a patched run per site; 'attribution': the first-order estimate from one backward */
  method?: PatchMethod;
  /** (attribution) the exact sweep too, and the correlation of the two per site kind */
  compareExact?: boolean;
}

/** Clean and corrupted runs that agree on the metric are an error: every score would be 0 / 0. */
export async function patchingReport(model: Model, clean: number[], corrupt: number[], o: PatchReportOptions) {
  const method = o.method ?? 'exact';
  if (o.compareExact && method !== 'attribution') throw new UsageError('compare-exact compares attribution patching with the exact sweep: give the method attribution');
  const r: { clean: number; corrupted: number; sites: PatchSite[]; exact?: PatchSite[]; correlation?: Record<string, number | null> } =
    method === 'attribution' ? await attributionPatching(model, clean, corrupt, o) : await activationPatching(model, clean, corrupt, o);
  if (r.clean === r.corrupted)
    throw new UsageError(`the clean and corrupted prompts give the same metric (${r.clean}), so the normalised score is undefined: choose prompts, target or distractor that differ`);
  const named = (id: number) => ({ id, piece: model.tokenizer.piece(id) });
  return {
    method, target: named(o.target), distractor: o.distractor === undefined ? undefined : named(o.distractor), clean: r.clean, corrupted: r.corrupted, sites: r.sites,
    ...(r.exact ? { exact: r.exact, correlation: r.correlation } : {}),
  };
}
