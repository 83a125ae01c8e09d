// Evaluating an SAE on an activation store's held-out split: L0, FVU, dead fraction and the density
// histogram over its rows, and the CE loss recovered with the SAE spliced in at its hook:
// (CE_zero − CE_sae) / (CE_zero − CE_clean), CE_zero with the hook zero-ablated.
import { UsageError } from '../../compiler/errors.js';
import type { GpuContext } from '../gpu.js';
import type { Model } from '../model.js';
import { SaeMetrics, type SaeModel } from './sae.js';
import { readManifest, readSplit } from './store.js';
import { applySae } from './apply.js';

export interface SaeEval {
  tokens: number; l0: number; fvu: number; deadFraction: number;
  /** latents by log10 firing frequency: bins of width 0.5 from −7 (the first also counts dead ones) */
  densityHistogram: { from: number; to: number; count: number }[];
  ce?: { sequences: number; clean: number; sae: number; zero: number; recovered: number };
}

/** Mean next-token cross-entropy (nats) of a sequence's logits. */
function crossEntropy(logits: Float32Array[], tokens: readonly number[]): number {
  let s = 0;
  for (let t = 0; t + 1 < tokens.length; t++) {
    const l = logits[t]!;
    let max = -Infinity;
    for (const v of l) max = Math.max(max, v);
    let z = 0;
    for (const v of l) z += Math.exp(v - max);
    s += Math.log(z) + max - l[tokens[t + 1]!]!;
  }
  return s / (tokens.length - 1);
}

export async function evalSae(gpu: GpuContext, sae: SaeModel, store: string, o: { model?: Model; sequences?: number; progress?: (done: number, total: number) => void } = {}): Promise<SaeEval> {
  const m = readManifest(store);
  if (m.dIn !== sae.dims.dIn) throw new UsageError(`the store's rows have ${m.dIn} dimensions, the SAE's input ${sae.dims.dIn}`);
  const held = readSplit(store, m, true);
  if (held.rows === 0) throw new UsageError(`${store} has no held-out rows`);
  const metrics = new SaeMetrics(m.dIn, sae.dims.dSae);
  const xHat = await applySae(gpu, sae, held.x, (acts, xh, n, at) => metrics.add(held.x.subarray(at * m.dIn, (at + n) * m.dIn), acts, xh, n));
  const bins: SaeEval['densityHistogram'] = [];
  for (let from = -7; from < 0; from += 0.5) bins.push({ from, to: from + 0.5, count: 0 });
  for (const d of metrics.logDensity) bins[Math.min(bins.length - 1, Math.max(0, Math.floor((d + 7) * 2)))]!.count++;
  const out: SaeEval = { tokens: metrics.tokens, l0: metrics.l0, fvu: metrics.fvu, deadFraction: metrics.deadFraction, densityHistogram: bins };
  if (o.model) {
    if (!o.model.hookNames.includes(m.hook)) throw new UsageError(`the store's hook '${m.hook}' is not a hook of this model`);
    let row = 0; // each sequence's first row
    const seqs = held.tokens.map((t) => ({ t, at: (row += t.length) - t.length })).filter((s) => s.t.length > 1).slice(0, o.sequences ?? 32);
    let clean = 0, spliced = 0, zero = 0;
    for (const [i, { t, at }] of seqs.entries()) {
      const recon = xHat.slice(at * m.dIn, (at + t.length) * m.dIn);
      clean += crossEntropy(await o.model.logits(t), t);
      spliced += crossEntropy((await o.model.runWithHooks(t, { interventions: [{ hook: m.hook, replace: recon }] })).logits, t);
      zero += crossEntropy((await o.model.runWithHooks(t, { interventions: [{ hook: m.hook, zero: true }] })).logits, t);
      o.progress?.(i + 1, seqs.length);
    }
    const n = seqs.length;
    if (n > 0) out.ce = { sequences: n, clean: clean / n, sae: spliced / n, zero: zero / n, recovered: (zero - spliced) / (zero - clean) };
  }
  return out;
}
