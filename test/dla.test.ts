// Direct logit attribution adds up: components sum to the model's metric, heads to their layer's
// attention, and every part equals the same computation on the float64 reference's activations.
import { describe, expect, it } from 'vitest';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { directLogitAttribution } from '../runtime/interp/dla.js';
import { GGUF } from './helpers/models.js';

describe('direct logit attribution', () => {
  it('components sum to the logit difference; heads sum to their layer; all match the float64 reference', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
    try {
      const tokens = model.tokenizer.encode('Once upon a time, there was a little girl named');
      const o = { target: model.tokenizer.idOf(' Lily')!, distractor: model.tokenizer.idOf(' Sue') ?? model.tokenizer.idOf(' Tim')! };
      const a = await directLogitAttribution(model, tokens, o);
      const sum = a.components.reduce((s, c) => s + c.value, 0);
      expect(Math.abs(sum - a.metric)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(a.metric)));
      a.heads.forEach((hs, l) => {
        const attn = a.components.find((c) => c.name === `blocks.${l}.attn`)!.value;
        expect(Math.abs(hs.reduce((s, v) => s + v, 0) - attn)).toBeLessThanOrEqual(1e-4);
      });
      // the same sums on the float64 reference's activations
      const ref = model.reference();
      let values = new Map();
      tokens.forEach((token, pos) => { values = ref.step({ token, pos }); });
      const h = (name: string) => values.get(model.graph.hooks[name]!.node)! as Float64Array;
      const dim = model.config.dim;
      const U = model.weightValues('output.weight'), wf = model.weightValues('output_norm.weight');
      const scale = h('ln_final.hook_scale')[0]!;
      const read = (v: Float64Array) => { let s = 0; for (let d = 0; d < dim; d++) s += ((U[o.target * dim + d]! - U[o.distractor * dim + d]!) * wf[d]! / scale) * v[d]!; return s; };
      expect(Math.abs(a.scale - scale)).toBeLessThanOrEqual(1e-5 * scale);
      expect(a.components[0]!.value).toBeCloseTo(read(h('hook_embed')), 3);
      for (let l = 0; l < model.config.nLayers; l++) {
        expect(a.components.find((c) => c.name === `blocks.${l}.attn`)!.value).toBeCloseTo(read(h(`blocks.${l}.hook_attn_out`)), 3);
        expect(a.components.find((c) => c.name === `blocks.${l}.mlp`)!.value).toBeCloseTo(read(h(`blocks.${l}.hook_mlp_out`)), 3);
      }
    } finally {
      model.dispose();
    }
  });
});
