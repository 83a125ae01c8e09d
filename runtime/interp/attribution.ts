// Attribution patching (Nanda 2023; Kramar et al. 2024, "AtP"): a patching sweep estimated to first
// order from one forward of the clean prompt and one forward + backward of the corrupted one. Patching
// site s moves the metric by about (clean_s − corrupted_s) · d(metric)/d(s) at the corrupted run, so
// every cell of every site kind comes from the same two runs: a cell sums that product over its
// position's row (resid_pre/mid/post, attn_out, mlp_out) or over a head's slice at every position (z,
// as exact patching patches a head). Scores are normalised as exact patching's are:
// effect / (clean − corrupted). `compareExact` also runs the exact sweep and gives each site kind's
// correlation between the two. Both runs are in flight at once, so the KV cache afterwards holds either
// prompt: nothing should resume from it (Model.lastLogitsFrom) without a prefill first.
import { CancelledError } from '../../compiler/errors.js';
import type { Model } from '../model.js';
import { SITES, activationPatching, checkPatchArgs, metricOf, type PatchOptions, type PatchSite } from './patching.js';

export interface AttributionReport {
  method: 'attribution';
  clean: number;
  corrupted: number;
  sites: PatchSite[];
  /** with compareExact: the exact sweep, and per site kind the Pearson correlation of the two's scores */
  exact?: PatchSite[];
  correlation?: Record<string, number | null>;
}

/** Pearson's r over the cells both define; null where either is constant or fewer than two cells. */
export function correlation(a: readonly (number | null)[], b: readonly (number | null)[]): number | null {
  const xs: number[] = [], ys: number[] = [];
  a.forEach((x, i) => { const y = b[i]; if (x !== null && y !== null && y !== undefined && Number.isFinite(x) && Number.isFinite(y)) { xs.push(x); ys.push(y); } });
  if (xs.length < 2) return null;
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  const [mx, my] = [mean(xs), mean(ys)];
  let sxy = 0, sxx = 0, syy = 0;
  xs.forEach((x, i) => { sxy += (x - mx) * (ys[i]! - my); sxx += (x - mx) ** 2; syy += (ys[i]! - my) ** 2; });
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : null;
}

export async function attributionPatching(model: Model, clean: number[], corrupt: number[], o: PatchOptions & { compareExact?: boolean }): Promise<AttributionReport> {
  const sites = checkPatchArgs(model.config.vocabSize, clean, corrupt, o);
  const L = model.config.nLayers, H = model.config.nHeads, n = clean.length;
  const hooks = sites.flatMap((s) => Array.from({ length: L }, (_, l) => `blocks.${l}.${SITES[s]}`));
  const total = sites.reduce((s, site) => s + L * (site === 'z' ? H : n), 0);
  // both runs asked for at once: the second is encoded while the GPU runs the first (a backward's
  // hundreds of dispatches take the host milliseconds to encode; in turn, the GPU would wait for them).
  // Each run writes the KV-cache rows it reads before reading them, in its own submission.
  const [cleanRun, g] = await Promise.all([
    model.runWithCache(clean, { hooks, logits: 'last' }),
    model.runWithGradients(corrupt, { metric: { kind: 'logit_diff', target: o.target, distractor: o.distractor }, hooks }),
  ]);
  const top = metricOf(cleanRun.logits[0]!, o);
  if (o.stop?.aborted) throw new CancelledError();
  const base = g.metric;
  const out: PatchSite[] = [];
  let done = 0;
  for (const site of sites) {
    const perHead = site === 'z';
    const cols = perHead ? Array.from({ length: H }, (_, h) => `head ${h}`) : clean.map((t) => model.tokenizer.piece(t));
    const scores: (number | null)[][] = [], effects: number[][] = [];
    for (let l = 0; l < L; l++) {
      const hook = `blocks.${l}.${SITES[site]}`;
      const c = cleanRun.cache.get(hook)!.data, { data: x } = g.acts.get(hook)!, { data: dx } = g.grads.get(hook)!;
      const width = c.length / n, hs = width / H;
      const eff = new Array<number>(cols.length).fill(0);
      // a cell: its position's row, or its head's slice of every position's row
      for (let p = 0; p < n; p++)
        for (let e = 0; e < width; e++) eff[perHead ? Math.floor(e / hs) : p]! += (c[p * width + e]! - x[p * width + e]!) * dx[p * width + e]!;
      effects.push(eff);
      scores.push(eff.map((v) => (top === base ? null : v / (top - base))));
      done += cols.length;
      o.onProgress?.(done, total);
    }
    out.push({ site, rows: Array.from({ length: L }, (_, l) => `blocks.${l}`), cols, scores, effects });
  }
  const report: AttributionReport = { method: 'attribution', clean: top, corrupted: base, sites: out };
  if (o.compareExact) {
    const exact = await activationPatching(model, clean, corrupt, { ...o, onProgress: o.onProgress && ((d, t) => o.onProgress!(total + d, total + t)) });
    report.exact = exact.sites;
    report.correlation = Object.fromEntries(out.map((s, i) => [s.site, correlation(s.scores.flat(), exact.sites[i]!.scores.flat())]));
  }
  return report;
}
