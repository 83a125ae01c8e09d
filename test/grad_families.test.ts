// Gradients through every family's graph (the tiny synth preset of each, f32): d(logit difference)/d
// hook_embed and blocks.1.hook_resid_pre from the compiler's backward, evaluated in float64, against
// central differences of the float64 forward along random directions (three as a vector, <= 1e-3
// relative), and the GPU's gradients against that float64 backward (<= 1e-4, vector norm). Families add
// biases (qwen2), per-head q/k norms (qwen3), partial NeoX rotary (phi3), multipliers (granite).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Model, dtypesOf, type ModelSource } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { synthModel } from '../runtime/synth/synth.js';
import { FAMILIES, type FamilyName } from '../models/families.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { gradientGraph } from '../runtime/interp/gradients.js';
import { llama } from '../models/llama.js';
import { rebuildWith, type GraphBuilder } from '../compiler/ir/graph.js';
import { ops } from '../ops/index.js';
import { writeSynth } from './helpers/synth.js';
import { randomSource, relErr } from './helpers/numeric.js';

const rnd = randomSource();
const seedNote = `random seed ${rnd.seed}`;
const NAMES = Object.keys(FAMILIES) as FamilyName[];
const HOOKS = ['hook_embed', 'blocks.1.hook_resid_pre'];
const CONTEXT = 16;
let dir = '';
const sources = {} as Record<FamilyName, ModelSource>;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-grad-families-'));
  for (const f of NAMES) sources[f] = loadModelSource(writeSynth(synthModel('tiny', 'f32', 11, f), path.join(dir, `${f}.gguf`)));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe.each(NAMES)('gradients through the %s graph', (family) => {
  it('equal central differences of the float64 forward, and the GPU equals the float64 backward', async () => {
    const src = sources[family], c = { ...src.config, contextLength: CONTEXT }, dt = dtypesOf(src.weights);
    const tokens = [1, 17, 301, 5, 999, 42, 7], T = tokens.length, [target, distractor] = [3, 500];
    const inputs = { token: tokens, pos: 0, ids: [target, distractor] };
    const ref = new ReferenceRunner(gradientGraph(c, dt, T, HOOKS), src.weights);
    const values = ref.step(inputs);
    // the metric with a perturbation added at a hook: central differences along three directions
    const graph = llama(c, dt, { positions: T, head: 'last' });
    const perturbed = (hook: string) => {
      let b: GraphBuilder | undefined;
      const rebuilt = rebuildWith(graph, (n, m, g) => { b = g; return n === graph.hooks[hook]!.node ? { node: ops(g).add(m, ops(g).input('perturb', [...m.shape], 'f32')) } : undefined; });
      return new ReferenceRunner(b!.finish({ metric: ops(b!).logitDiff(rebuilt.outputs.logits!, ops(b!).input('ids', [2])) }), src.weights);
    };
    for (const hook of HOOKS) {
      const grad = values.get(ref.graph.outputs[`grad:${hook}`]!)!, run = perturbed(hook), eps = 1e-5;
      const analytic: number[] = [], numeric: number[] = [];
      for (let k = 0; k < 3; k++) {
        const v = Float64Array.from(rnd.normal(grad.length));
        analytic.push(v.reduce((s, x, i) => s + x * grad[i]!, 0));
        const at = (sgn: number) => run.output({ ...inputs, perturb: v.map((x) => sgn * eps * x) }, 'metric')[0]!;
        numeric.push((at(1) - at(-1)) / (2 * eps));
      }
      expect(relErr(analytic, numeric), `${family} ${hook}, ${seedNote}`).toBeLessThanOrEqual(1e-3);
    }
    const model = await Model.create(src, { contextLength: CONTEXT });
    try {
      const r = await model.runWithGradients(tokens, { target, distractor, hooks: HOOKS });
      expect(Math.abs(r.metric - values.get(ref.graph.outputs.metric!)![0]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(r.metric)));
      for (const hook of HOOKS) expect(relErr(r.grads.get(hook)!.data, values.get(ref.graph.outputs[`grad:${hook}`]!)!), `${family} ${hook}`).toBeLessThanOrEqual(1e-4);
    } finally {
      model.dispose();
    }
  });
});
