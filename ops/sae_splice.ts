// A sparse autoencoder spliced into the model at a hook (SAELens's HookedSAETransformer), as ops of
// the graph: the hook's value x is encoded and decoded, and every reader of the hook (the hook itself
// included, as for interventions) sees the reconstruction, or with the error term reconstruction +
// (x − reconstruction), so that edits to the latents alone change what flows on. The SAE's values
// are hooks of their own: `<hook>.hook_sae_input | acts_pre | acts_post | recons | error | output`.
// Because the splice is in the graph, it runs inside the plan (one pass, no read-back between), and
// the float64 reference and later passes see through it.
import { UsageError } from '../compiler/errors.js';
import { rebuildWith, type Graph, type GraphBuilder, type Node } from '../compiler/ir/graph.js';
import type { GraphEdit } from '../compiler/passes.js';
import { add } from './add.js';
import { saeDecode } from './sae_decode.js';
import { saeEncode, type SaeArch } from './sae_encode.js';
import { scale } from './scale.js';
import { weight } from './weight.js';

/** One splice: the SAE's shape, its input scale, and `id`, the prefix of its tensors' names. */
export interface SaeSpliceSpec {
  readonly hook: string;
  readonly id: string;
  readonly dIn: number;
  readonly dSae: number;
  readonly arch: SaeArch;
  readonly k: number;
  /** inputs are multiplied by this before encoding, reconstructions divided by it after */
  readonly inputScale: number;
  readonly errorTerm: boolean;
}

export const SAE_HOOKS = ['hook_sae_input', 'hook_sae_acts_pre', 'hook_sae_acts_post', 'hook_sae_recons', 'hook_sae_error', 'hook_sae_output'] as const;
export type SaeTensor = 'W_enc' | 'b_enc' | 'W_dec' | 'b_dec';
/** The weight name an SAE's tensor is bound under. */
export const saeTensorName = (id: string, t: SaeTensor) => `${id}.${t}`;
/** The shape of each of an SAE's tensors (SAELens's layout). */
export const saeTensorShapes = (s: Pick<SaeSpliceSpec, 'dIn' | 'dSae'>): Record<SaeTensor, number[]> =>
  ({ W_enc: [s.dIn, s.dSae], b_enc: [s.dSae], W_dec: [s.dSae, s.dIn], b_dec: [s.dIn] });

/** The graph edit that splices each SAE in at its hook. */
export const saeSplices = (list: readonly SaeSpliceSpec[]): GraphEdit => (graph) => (list.length ? withSaes(graph, list) : graph);

export function withSaes(graph: Graph, list: readonly SaeSpliceSpec[]): Graph {
  const at = new Map<Node, SaeSpliceSpec>();
  const read = new Set(graph.nodes.flatMap((n) => n.srcs));
  for (const s of list) {
    const h = graph.hooks[s.hook];
    if (!h) throw new UsageError(`the SAE's hook '${s.hook}' is not a hook of this model`);
    const size = h.shape.reduce((a, b) => a * b, 1);
    if (size !== s.dIn) throw new UsageError(`the SAE reads ${s.dIn} values, ${s.hook} has ${size}`);
    if (!read.has(h.node)) throw new UsageError(`'${s.hook}' can be read but not edited: an SAE there would change nothing downstream`);
    if (at.has(h.node)) throw new UsageError('one SAE a hook');
    at.set(h.node, s);
  }
  return rebuildWith(graph, (n, m, g) => {
    const s = at.get(n);
    if (!s) return undefined;
    const values = spliced(g, m, s);
    const hooks = Object.fromEntries(SAE_HOOKS.map((h) => [`${s.hook}.${h}`, { node: values[h], shape: [h === 'hook_sae_acts_pre' || h === 'hook_sae_acts_post' ? s.dSae : s.dIn] }]));
    return { node: values.hook_sae_output, hooks, after: s.hook }; // an SAE's hooks follow its own, in graph order
  });
}

/** The SAE's values, from the hook's value x ([rows, d_in]). */
function spliced(g: GraphBuilder, x: Node, s: SaeSpliceSpec): Record<(typeof SAE_HOOKS)[number], Node> {
  const shapes = saeTensorShapes(s);
  const w = (t: SaeTensor) => g.apply(weight, [], { name: saeTensorName(s.id, t), shape: shapes[t], dtype: 'f32' });
  const scaled = s.inputScale === 1 ? x : g.apply(scale, [x], { factor: s.inputScale });
  const encode = (part: 'pre' | 'acts') => g.apply(saeEncode, [scaled, w('W_enc'), w('b_enc'), w('b_dec')], { arch: s.arch, k: s.k, part });
  const acts = encode('acts');
  const decoded = g.apply(saeDecode, [acts, w('W_dec'), w('b_dec')], {});
  const recons = s.inputScale === 1 ? decoded : g.apply(scale, [decoded], { factor: 1 / s.inputScale });
  // with the error term, the error is x minus a second, clean reconstruction (as SAELens makes it): its
  // own encoder node (hash-consing would merge an identical one), so the latents' gradient and an edit of
  // them reach the output through the decoder alone, not cancelled by the error term
  let clean = recons;
  if (s.errorTerm) {
    const again = g.apply(saeDecode, [g.apply(saeEncode, [scaled, w('W_enc'), w('b_enc'), w('b_dec')], { arch: s.arch, k: s.k, part: 'acts', clean: true }), w('W_dec'), w('b_dec')], {});
    clean = s.inputScale === 1 ? again : g.apply(scale, [again], { factor: 1 / s.inputScale });
  }
  const error = g.apply(add, [x, g.apply(scale, [clean], { factor: -1 })], {});
  const output = s.errorTerm ? g.apply(add, [recons, error], {}) : recons;
  return { hook_sae_input: x, hook_sae_acts_pre: encode('pre'), hook_sae_acts_post: acts, hook_sae_recons: recons, hook_sae_error: error, hook_sae_output: output };
}
