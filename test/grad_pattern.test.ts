// Gradients at attention patterns and scores (blocks.L.attn.hook_pattern / hook_attn_scores) on
// stories260K: the layers asked for run their attention through the explicit path (scores -> softmax ->
// pattern · V) instead of flash attention. Directional derivatives at the pattern and the scores equal
// central differences of the float64 forward (<= 1e-3); the GPU equals the float64 backward (<= 1e-4,
// vector norm); the gradients elsewhere equal those of a run without the explicit path (<= 1e-5), so the
// path changes where the gradient can be read, not what it is; shapes are TransformerLens's.
import { afterAll, describe, expect, it } from 'vitest';
import { Model, dtypesOf } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { gradientGraph } from '../runtime/interp/gradients.js';
import { patternSelection } from '../runtime/interp/cache.js';
import { llama } from '../models/llama.js';
import { rebuildWith, type GraphBuilder } from '../compiler/ir/graph.js';
import { ops } from '../ops/index.js';
import { randomSource, relErr } from './helpers/numeric.js';
import { GGUF } from './helpers/models.js';

const rnd = randomSource();
const seedNote = `random seed ${rnd.seed}`;
const CONTEXT = 32;
const src = loadModelSource(GGUF);
const model = await Model.create(src, { contextLength: CONTEXT });
afterAll(() => model.dispose());

describe('gradients at attention patterns and scores', () => {
  const c = { ...src.config, contextLength: CONTEXT }, dt = dtypesOf(src.weights);
  const tokens = model.tokenizer.encode('Once upon a time, there was a little girl named'), T = tokens.length;
  const [target, distractor] = [model.tokenizer.encode(' Lily'), model.tokenizer.encode(' Tim')].map((t) => t[t.length - 1]!) as [number, number];
  const inputs = { token: tokens, pos: 0, ids: [target, distractor] };
  const patterns = ['blocks.1.attn.hook_pattern', 'blocks.1.attn.hook_attn_scores', 'blocks.3.attn.hook_pattern'];
  const others = ['hook_embed', 'blocks.1.hook_resid_pre', 'blocks.2.attn.hook_z'];
  const ref = new ReferenceRunner(gradientGraph(c, dt, T, [...patterns, ...others]), src.weights);
  const values = ref.step(inputs);
  const refGrad = (h: string) => values.get(ref.graph.outputs[`grad:${h}`]!)!;

  it('equal central differences of the float64 forward along random directions over the keys each query sees', () => {
    const heads = c.nHeads;
    for (const hook of patterns) {
      const layer = Number(hook.split('.')[1]);
      const graph = llama(c, dt, { positions: T, head: 'last', explicitAttention: [layer] });
      let b: GraphBuilder | undefined;
      const rebuilt = rebuildWith(graph, (n, m, g) => { b = g; return n === graph.hooks[hook]!.node ? { node: ops(g).add(m, ops(g).input('perturb', [...m.shape], 'f32')) } : undefined; });
      const run = new ReferenceRunner(b!.finish({ metric: ops(b!).logitDiff(rebuilt.outputs.logits!, ops(b!).input('ids', [2])) }), src.weights);
      const grad = refGrad(hook), eps = 1e-5, analytic: number[] = [], numeric: number[] = [];
      for (let k = 0; k < 3; k++) {
        // a direction over the keys each query row sees (past them the scores are −∞ and the pattern unread)
        const v = new Float64Array(grad.length);
        for (let r = 0; r < T; r++) for (let h = 0; h < heads; h++) for (let t = 0; t <= r; t++) v[(r * heads + h) * CONTEXT + t] = rnd.normal(1)[0]!;
        analytic.push(v.reduce((s, x, i) => s + x * grad[i]!, 0));
        const at = (sgn: number) => run.output({ ...inputs, perturb: v.map((x) => sgn * eps * x) }, 'metric')[0]!;
        numeric.push((at(1) - at(-1)) / (2 * eps));
      }
      expect(relErr(analytic, numeric), `${hook}, ${seedNote}`).toBeLessThanOrEqual(1e-3);
    }
  });

  it('on the GPU equal the float64 backward, shaped [batch, head, query, key], and leave the other gradients as they were', async () => {
    const r = await model.runWithGradients(tokens, { target, distractor, hooks: [...patterns, ...others] });
    expect(Math.abs(r.metric - values.get(ref.graph.outputs.metric!)![0]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(r.metric)));
    for (const h of patterns) {
      const got = r.grads.get(h)!, act = r.acts.get(h)!;
      expect(got.shape).toEqual([1, c.nHeads, T, T]);
      const want = patternSelection({ key: h, hook: h }, Float32Array.from(refGrad(h)), [c.nHeads, CONTEXT], T);
      expect(relErr(got.data, want.data), h).toBeLessThanOrEqual(1e-4);
      // past the diagonal: no gradient; the pattern itself 0 there, each row summing to 1
      for (let hd = 0; hd < c.nHeads; hd++)
        for (let q = 0; q < T; q++) {
          const row = (hd * T + q) * T;
          expect(Array.from(got.data.subarray(row + q + 1, row + T)).every((x) => x === 0)).toBe(true);
          if (h.endsWith('hook_pattern')) expect(Math.abs(act.data.subarray(row, row + T).reduce((s, x) => s + x, 0) - 1)).toBeLessThanOrEqual(1e-5);
        }
    }
    for (const h of others) expect(relErr(r.grads.get(h)!.data, refGrad(h)), h).toBeLessThanOrEqual(1e-4);
    // through flash attention instead (no pattern asked): the same gradients and metric
    const flash = await model.runWithGradients(tokens, { target, distractor, hooks: others });
    expect(Math.abs(flash.metric - r.metric)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(r.metric)));
    for (const h of others) expect(relErr(r.grads.get(h)!.data, flash.grads.get(h)!.data), h).toBeLessThanOrEqual(1e-5);
    // the scores' gradient is the pattern's pulled back through the softmax: P ⊙ (dP − Σ P·dP) per row
    const P = r.acts.get(patterns[0]!)!.data, dP = r.grads.get(patterns[0]!)!.data, dS = r.grads.get(patterns[1]!)!.data;
    const chained = new Float32Array(dS.length);
    for (let row = 0; row < c.nHeads * T; row++) {
      let m = 0;
      for (let t = 0; t < T; t++) m += P[row * T + t]! * dP[row * T + t]!;
      for (let t = 0; t < T; t++) chained[row * T + t] = P[row * T + t]! * (dP[row * T + t]! - m);
    }
    expect(relErr(dS, chained)).toBeLessThanOrEqual(1e-4);
  });
});
