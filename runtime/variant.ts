// A plan variant: the model's graph rebuilt for a block of positions (of a batch of sequences, from a
// layer on) and compiled with hooks tapped and interventions in. Variants share the model's weights and
// KV caches; each is built once, found again by its canonical key.

export interface PlanVariant {
  /** hooks copied out as extra outputs */
  readonly taps?: readonly string[];
  /** hooks with an intervention table of `rows` positions */
  readonly interventions?: readonly { readonly hook: string; readonly rows: number }[];
  /** the first layer the graph runs (the residual stream before it is an input) */
  readonly startLayer?: number;
  /** positions per pass (a prefill block); left out, the model's own one-token graph */
  readonly positions?: number;
  /** sequences per pass, each with its own KV cache */
  readonly batch?: number;
}

/** The variant with every field given, lists in a fixed order, so equal variants are equal records. */
export function normalVariant(v: PlanVariant): Required<PlanVariant> {
  return {
    taps: [...(v.taps ?? [])].sort(),
    interventions: [...(v.interventions ?? [])].sort((a, b) => a.hook.localeCompare(b.hook)).map(({ hook, rows }) => ({ hook, rows })),
    startLayer: v.startLayer ?? 0,
    positions: v.positions ?? 0,
    batch: v.batch ?? 1,
  };
}

/** One string per distinct variant (fields in a fixed order; hook names hold no '|' or ';'). */
export function variantKey(v: PlanVariant): string {
  const n = normalVariant(v);
  return [n.taps.join(','), n.interventions.map((i) => `${i.hook}*${i.rows}`).join(';'), n.startLayer, n.positions, n.batch].join('|');
}
