// Direct logit attribution: with the final norm's scale frozen at its value, the logit of the target
// (minus the distractor's) at the last position is a sum over what was written into the residual
// stream: the embedding, and each layer's attention and MLP outputs — and attention splits further
// into heads, z_h through its slice of W_O. The parts add up to the model's own metric.
import type { Model } from '../model.js';
import { headSize, qWidth } from '../../models/llama.js';

export interface Attribution {
  /** the metric from the model's logits */
  metric: number;
  /** ln_final.hook_scale at the last position */
  scale: number;
  components: { name: string; value: number }[];
  /** [layer][head] */
  heads: number[][];
}

export async function directLogitAttribution(model: Model, tokens: number[], o: { target: number; distractor?: number }): Promise<Attribution> {
  const c = model.config, L = c.nLayers, dim = c.dim, hs = headSize(c), qDim = qWidth(c), last = tokens.length - 1;
  const hooks = ['hook_embed', 'ln_final.hook_scale', 'blocks.*.hook_attn_out', 'blocks.*.hook_mlp_out', 'blocks.*.attn.hook_z'];
  const { logits, cache } = await model.runWithCache(tokens, { hooks });
  const at = (name: string, size = dim) => cache.get(name)!.data.subarray(last * size, (last + 1) * size);
  // the direction a residual vector is read along: (U[target] − U[distractor]) ⊙ w_final / scale
  const U = model.weightValues(c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight');
  const wf = model.weightValues('output_norm.weight');
  const scale = at('ln_final.hook_scale', 1)[0]!;
  // (Granite: the logits are divided by logitScale, and each block's output is scaled before it joins)
  const logitScale = c.logitScale ?? 1, branch = c.residualScale ?? 1;
  const dir = Float64Array.from({ length: dim }, (_, d) => ((U[o.target * dim + d]! - (o.distractor === undefined ? 0 : U[o.distractor * dim + d]!)) * wf[d]!) / scale / logitScale);
  const read = (v: ArrayLike<number>) => { let s = 0; for (let d = 0; d < dim; d++) s += dir[d]! * v[d]!; return s; };
  const components = [{ name: 'embed', value: read(at('hook_embed')) }];
  const heads: number[][] = [];
  for (let l = 0; l < L; l++) {
    components.push({ name: `blocks.${l}.attn`, value: read(at(`blocks.${l}.hook_attn_out`)) });
    components.push({ name: `blocks.${l}.mlp`, value: read(at(`blocks.${l}.hook_mlp_out`)) });
    const WO = model.weightValues(`blk.${l}.attn_output.weight`); // [dim, nHeads*hs]
    const z = at(`blocks.${l}.attn.hook_z`);
    heads.push(Array.from({ length: c.nHeads }, (_, h) => {
      let s = 0;
      for (let d = 0; d < dim; d++) {
        let out = 0;
        for (let i = h * hs; i < (h + 1) * hs; i++) out += WO[d * qDim + i]! * z[i]!;
        s += dir[d]! * out;
      }
      return s * branch;
    }));
  }
  const final = logits[last]!;
  const metric = final[o.target]! - (o.distractor === undefined ? 0 : final[o.distractor]!);
  return { metric, scale, components, heads };
}
