// Attribution patching (runtime/interp/attribution.ts) on stories260K: every cell against the float64
// reference's (clean − corrupted) · grad (the clean prompt's activations and the corrupted prompt's
// gradient, both from the float64 forward and backward of the same graphs), within 1e-3 of the
// normalised score; per-head cells sum their head's slice; --compare-exact's exact sweep is the exact
// sweep, and the correlation is Pearson's r of the two.
import { afterAll, describe, expect, it } from 'vitest';
import { Model, dtypesOf } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { gradientGraph } from '../runtime/interp/gradients.js';
import { attributionPatching, correlation } from '../runtime/interp/attribution.js';
import { activationPatching, SITES } from '../runtime/interp/patching.js';
import { patchingReport } from '../runtime/interp/patch_report.js';
import { UsageError } from '../compiler/errors.js';
import { GGUF } from './helpers/models.js';

const src = loadModelSource(GGUF);
const model = await Model.create(src, { contextLength: 64 });
afterAll(() => model.dispose());
const clean = model.tokenizer.encode('Once upon a time, there was a little girl named');
const corrupt = model.tokenizer.encode('Once upon a time, there was a little boy named');
const id = (piece: string) => { const t = model.tokenizer.encode(piece); return t[t.length - 1]!; };
const [target, distractor] = [id(' Lily'), id(' Tim')];

describe('attribution patching', () => {
  it('equals the float64 reference of (clean − corrupted) · grad at every cell (resid_pre and z)', async () => {
    expect(clean.length).toBe(corrupt.length);
    const sites = ['resid_pre', 'z'];
    const r = await attributionPatching(model, clean, corrupt, { target, distractor, sites });
    const L = src.config.nLayers, H = src.config.nHeads, n = clean.length;
    const hooks = sites.flatMap((s) => Array.from({ length: L }, (_, l) => `blocks.${l}.${SITES[s]}`));
    const graph = gradientGraph({ ...src.config, contextLength: 64 }, dtypesOf(src.weights), n, hooks);
    const ref = new ReferenceRunner(graph, src.weights);
    const at = (tokens: number[]) => { ref.reset(); return ref.step({ token: tokens, pos: 0, ids: [target, distractor] }); };
    const [c, x] = [at(clean), at(corrupt)];
    const top = c.get(graph.outputs.metric!)![0]!, base = x.get(graph.outputs.metric!)![0]!;
    expect(Math.abs(r.clean - top)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(top)));
    expect(Math.abs(r.corrupted - base)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(base)));
    sites.forEach((site, si) => {
      const s = r.sites[si]!;
      expect(s.scores.length).toBe(L);
      for (let l = 0; l < L; l++) {
        const hook = `blocks.${l}.${SITES[site]}`;
        const a = c.get(graph.outputs[`act:${hook}`]!)!, b = x.get(graph.outputs[`act:${hook}`]!)!, g = x.get(graph.outputs[`grad:${hook}`]!)!;
        const width = a.length / n, cols = site === 'z' ? H : n, want = new Float64Array(cols);
        for (let p = 0; p < n; p++) for (let e = 0; e < width; e++) want[site === 'z' ? Math.floor(e / (width / H)) : p] += (a[p * width + e]! - b[p * width + e]!) * g[p * width + e]!;
        expect(s.scores[l]!.length).toBe(cols);
        for (let k = 0; k < cols; k++) expect(Math.abs(s.scores[l]![k]! - want[k]! / (top - base)), `${hook} cell ${k}`).toBeLessThanOrEqual(1e-3);
      }
    });
    // the estimate is about the patch: at layer 0 only the positions where the prompts differ move the metric
    const differ = clean.map((t, p) => t !== corrupt[p]);
    r.sites[0]!.scores[0]!.forEach((v, p) => { if (!differ[p]) expect(v).toBe(0); });
    expect(r.sites[0]!.scores[0]!.some((v) => v !== 0)).toBe(true);
  });

  it('gives the exact sweep beside it on request, and their correlation', async () => {
    const r = await patchingReport(model, clean, corrupt, { target, distractor, sites: ['resid_pre'], method: 'attribution', compareExact: true });
    const exact = await activationPatching(model, clean, corrupt, { target, distractor, sites: ['resid_pre'] });
    expect(r.method).toBe('attribution');
    expect(r.exact![0]!.scores).toEqual(exact.sites[0]!.scores);
    const rho = r.correlation!.resid_pre!;
    expect(rho).toBeCloseTo(correlation(r.sites[0]!.scores.flat(), exact.sites[0]!.scores.flat())!, 12);
    expect(rho).toBeGreaterThan(0.5); // (at resid_pre the first-order estimate tracks the exact sweep on this pair)
    expect(correlation([1, 2, 3], [2, 4, 6.5])).toBeGreaterThan(0.99);
    expect(correlation([1, 2, null, 3], [3, 2, 5, 1])).toBeCloseTo(-1, 12);
    expect(correlation([1, 1, 1], [1, 2, 3])).toBeNull();
  });

  it('refuses prompts of different lengths, an unknown site, a token outside the vocabulary, compare-exact with the exact method', async () => {
    await expect(attributionPatching(model, clean, corrupt.slice(1), { target, distractor })).rejects.toThrow(/same length/);
    await expect(attributionPatching(model, clean, corrupt, { target, distractor, sites: ['mlp_in'] })).rejects.toThrow(/unknown site/);
    await expect(attributionPatching(model, clean, corrupt, { target: 10 ** 6, distractor })).rejects.toThrow(UsageError);
    await expect(patchingReport(model, clean, corrupt, { target, distractor, compareExact: true })).rejects.toThrow(/method attribution/);
  });
});
