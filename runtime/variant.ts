// A plan variant: the model's graph rebuilt for a block of positions (of a batch of sequences, from a
// layer on) and compiled with hooks tapped and interventions in. Variants share the model's weights and
// KV caches; each is built once, found again by its canonical key.
import type { SaeSpliceSpec } from '../ops/sae_splice.js';
import type { InterventionSpec } from '../ops/intervene.js';

export interface PlanVariant {
  /** hooks copied out as extra outputs */
  readonly taps?: readonly string[];
  /** hooks with an intervention table of `rows` positions (or one row for every position) */
  readonly interventions?: readonly InterventionSpec[];
  /** SAEs spliced in at hooks (their tensors are given with the variant) */
  readonly saes?: readonly SaeSpliceSpec[];
  /** the first layer the graph runs (the residual stream before it is an input) */
  readonly startLayer?: number;
  /** positions per pass (a prefill block); left out, the model's own one-token graph */
  readonly positions?: number;
  /** sequences per pass, each with its own KV cache */
  readonly batch?: number;
  /** 'last': logits of each sequence's last position only (models/llama.ts) */
  readonly head?: 'all' | 'last';
  /** an output `picked`: the logits at this many token ids (an input `pick`) */
  readonly pick?: number;
}

/** The variant with every field given, lists in a fixed order, so equal variants are equal records. */
export function normalVariant(v: PlanVariant): Required<PlanVariant> {
  return {
    taps: [...(v.taps ?? [])].sort(),
    interventions: [...(v.interventions ?? [])].sort((a, b) => a.hook.localeCompare(b.hook)).map(({ hook, rows, every }) => ({ hook, rows, every: every ?? false })),
    saes: [...(v.saes ?? [])].sort((a, b) => a.hook.localeCompare(b.hook)).map(({ hook, id, dIn, dSae, arch, k, inputScale, errorTerm }) => ({ hook, id, dIn, dSae, arch, k, inputScale, errorTerm })),
    startLayer: v.startLayer ?? 0,
    positions: v.positions ?? 0,
    batch: v.batch ?? 1,
    head: v.head ?? 'all',
    pick: v.pick ?? 0,
  };
}

/** One string per distinct variant (fields in a fixed order; hook names and SAE ids hold no '|', ';' or ' '). */
export function variantKey(v: PlanVariant): string {
  const n = normalVariant(v);
  const saes = n.saes.map((s) => [s.hook, s.id, s.dIn, s.dSae, s.arch, s.k, s.inputScale, s.errorTerm].join(' '));
  return [n.taps.join(','), n.interventions.map((i) => `${i.hook}*${i.rows}${i.every ? '*every' : ''}`).join(';'), saes.join(';'), n.startLayer, n.positions, n.batch, n.head, n.pick].join('|');
}
