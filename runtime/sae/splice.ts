// An SAE spliced into the model at its hook (SAELens's HookedSAETransformer): the hook's value is
// replaced by the SAE's reconstruction (or, with the error term, by reconstruction + error, which is the
// value itself, so that edits to the latents alone change what flows on). The latents are hooks:
// `<hook>.hook_sae_input | acts_pre | acts_post | recons | error | output`, each [1, pos, ...].
// Computed in passes: the value at the first SAE's hook (earlier splices and interventions applied), the
// SAE on the GPU, then the next, then the whole run with every replacement as an intervention.
import { UsageError } from '../../compiler/errors.js';
import type { Graph } from '../../compiler/ir/graph.js';
import type { GpuContext } from '../gpu.js';
import type { CacheEntry, Intervention } from '../interp/cache.js';
import { applySae } from './apply.js';
import type { SaeModel } from './sae.js';

export interface SaeSplice { sae: SaeModel; errorTerm?: boolean }
export const SAE_HOOKS = ['hook_sae_input', 'hook_sae_acts_pre', 'hook_sae_acts_post', 'hook_sae_recons', 'hook_sae_error', 'hook_sae_output'] as const;

/** A run of the model with these interventions, caching these hooks (interp/run.ts gives it). */
type HookedRun = (interventions: readonly Intervention[], hooks: string | readonly string[] | undefined) => Promise<{ logits: Float32Array[]; cache: Map<string, CacheEntry> }>;

export async function spliceSaes(model: { hookNames: readonly string[]; graph: Graph; executor: { gpu: GpuContext } }, tokens: readonly number[],
  opts: { interventions: readonly Intervention[]; hooks?: string | readonly string[]; saes: readonly SaeSplice[] }, run: HookedRun) {
  const order = model.hookNames;
  for (const s of opts.saes) {
    if (!s.sae.hook || !order.includes(s.sae.hook)) throw new UsageError(`the SAE's hook '${s.sae.hook ?? '(none)'}' is not a hook of this model`);
    if (model.graph.hooks[s.sae.hook]!.node.size !== s.sae.dims.dIn) throw new UsageError(`the SAE reads ${s.sae.dims.dIn} values, ${s.sae.hook} has ${model.graph.hooks[s.sae.hook]!.node.size}`);
  }
  const saes = [...opts.saes].sort((a, b) => order.indexOf(a.sae.hook!) - order.indexOf(b.sae.hook!));
  if (new Set(saes.map((s) => s.sae.hook)).size !== saes.length) throw new UsageError('one SAE a hook');
  // the requested names: SAE hooks here, the rest to the model
  const wanted = (typeof opts.hooks === 'string' ? opts.hooks.split(',') : [...(opts.hooks ?? [])]).map((h) => h.trim()).filter(Boolean);
  const saeNames = new Set(saes.flatMap((s) => SAE_HOOKS.map((h) => `${s.sae.hook}.${h}`)));
  for (const w of wanted) if (/\.hook_sae_/.test(w) && !saeNames.has(w)) throw new UsageError(`unknown hook '${w}' (SAE hooks: ${[...saeNames].join(', ')})`);
  const ivs = [...opts.interventions];
  const extra = new Map<string, CacheEntry>();
  const n = tokens.length;
  for (const { sae, errorTerm } of saes) {
    const hook = sae.hook!;
    const x = (await run(ivs, hook)).cache.get(hook)!.data;
    const { dIn, dSae } = sae.dims;
    const pre = new Float32Array(n * dSae), acts = new Float32Array(n * dSae);
    const recons = await applySae(model.executor.gpu, sae, x, async (a, _xh, rows, at, readPre) => {
      acts.set(a, at * dSae);
      pre.set((await readPre()).map((v) => v), at * dSae); // pre-activations in the SAE's scaled units
    });
    const error = x.map((v, i) => v - recons[i]!);
    const output = errorTerm ? recons.map((v, i) => v + error[i]!) : recons;
    const entry = (data: Float32Array, width: number): CacheEntry => ({ shape: [1, n, width], data });
    const values = { hook_sae_input: entry(x, dIn), hook_sae_acts_pre: entry(pre, dSae), hook_sae_acts_post: entry(acts, dSae), hook_sae_recons: entry(recons, dIn), hook_sae_error: entry(error, dIn), hook_sae_output: entry(output, dIn) };
    for (const h of SAE_HOOKS) if (wanted.includes(`${hook}.${h}`)) extra.set(`${hook}.${h}`, values[h]);
    ivs.push({ hook, replace: output });
  }
  const rest = wanted.filter((w) => !saeNames.has(w));
  const r = await run(ivs, rest);
  for (const [k, v] of extra) r.cache.set(k, v);
  return r;
}
