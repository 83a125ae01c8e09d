// Epilogues a fused matvec can carry, named in its `epilogues` attribute ("add,scale=0.5"): each is an
// @epilogue fragment (in the op file it comes from) and a float64 reference. `add` takes the next
// source of the node as its vector (a residual or a bias); `scale` takes its factor from the name.
export interface EpilogueDef {
  fragment: string;
  /** vector sources it consumes */
  arrays: number;
  /** the uniform its `=value` sets */
  uniform?: string;
  reference(v: number, i: number, arrays: Float64Array[], value: number): number;
}

export const EPILOGUES: Readonly<Record<string, EpilogueDef>> = {
  add: { fragment: 'addEpilogue', arrays: 1, reference: (v, i, [y]) => v + y![i]! },
  scale: { fragment: 'scaleEpilogue', arrays: 0, uniform: 'factor', reference: (v, _i, _a, f) => v * f },
};

export interface EpilogueUse { name: string; value: number }

export function parseEpilogues(spec: string | undefined): EpilogueUse[] {
  if (!spec) return [];
  return spec.split(',').map((item) => {
    const [name, value] = item.split('=');
    if (!EPILOGUES[name!]) throw new Error(`internal: unknown epilogue '${name}'`);
    return { name: name!, value: value === undefined ? 0 : Number(value) };
  });
}
export const formatEpilogues = (es: readonly EpilogueUse[]) => es.map((e) => (EPILOGUES[e.name]!.uniform ? `${e.name}=${e.value}` : e.name)).join(',');
/** vector sources a list of epilogues consumes */
export const epilogueArrays = (es: readonly EpilogueUse[]) => es.reduce((n, e) => n + EPILOGUES[e.name]!.arrays, 0);
