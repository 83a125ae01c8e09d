// SAEs spliced into the model at their hooks (SAELens's HookedSAETransformer): the SaeModels a user
// passes, turned into the graph edit's specs (ops/sae_splice.ts: the splice runs inside the plan) and
// the tensors the spliced plan binds. An SaeModel is read when it is first spliced: its tensors stay
// on the GPU with the plan, so give a changed SAE as a new object.
import type { Graph } from '../../compiler/ir/graph.js';
import { saeTensorName, saeTensorShapes, withSaes, type SaeSpliceSpec, type SaeTensor } from '../../ops/sae_splice.js';
import { f32Weight, type WeightMap } from '../weights.js';
import type { SaeModel } from './sae.js';

export interface SaeSplice { sae: SaeModel; errorTerm?: boolean }

const ids = new WeakMap<SaeModel, string>();
let made = 0;
/** A name for this SaeModel's tensors, the same each time it is spliced. */
const idOf = (sae: SaeModel) => ids.get(sae) ?? (ids.set(sae, `sae${++made}`), ids.get(sae)!);

/** The splices as graph-edit specs, the tensors they read, and the hooks of the spliced model (its
 *  own and the SAEs' `<hook>.hook_sae_*`, checked: a hook the model lacks, a width that differs, two
 *  SAEs at one hook are usage errors). */
export function saeSplicing(graph: Graph, saes: readonly SaeSplice[]): { specs: SaeSpliceSpec[]; tensors: WeightMap; hooks: Graph['hooks'] } {
  const specs = saes.map(({ sae, errorTerm }): SaeSpliceSpec => ({
    hook: sae.hook ?? '(none)', id: idOf(sae), dIn: sae.dims.dIn, dSae: sae.dims.dSae, arch: sae.dims.arch, k: sae.dims.arch === 'topk' ? sae.dims.k : 0,
    inputScale: sae.inputScale, errorTerm: errorTerm ?? false,
  }));
  const tensors: WeightMap = new Map();
  saes.forEach(({ sae }, i) => {
    const shapes = saeTensorShapes(specs[i]!);
    for (const t of Object.keys(shapes) as SaeTensor[]) tensors.set(saeTensorName(specs[i]!.id, t), f32Weight(shapes[t], sae.params[t]));
  });
  return { specs, tensors, hooks: withSaes(graph, specs).hooks };
}

/** That an SAE fits this model (its hook exists, is as wide as its d_in, can be edited): a usage
 *  error before any work when not. An SAE without a hook (trained on external rows) is not checked. */
export function checkSaeFits(graph: Graph, sae: SaeModel): void {
  if (sae.hook !== undefined) saeSplicing(graph, [{ sae }]);
}
