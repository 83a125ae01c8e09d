// The logit lens: the last layer is the model's own output, and every layer equals the CPU's
// unembed(final_norm(resid)) on the same residual stream.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { matvec } from '../ops/matvec.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { logitLens } from '../runtime/interp/lens.js';
import { dequantize } from '../ops/dequant.js';
import { GGUF } from './helpers/models.js';
import { tinySynth } from './helpers/synth.js';
import { lensCellsReference } from './helpers/lens_reference.js';
import { relErr } from './helpers/numeric.js';

const root = path.resolve(import.meta.dirname, '..');

describe('logit lens', () => {
  it('ends at the model\'s logits and equals the CPU unembedding of every layer\'s residual stream', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
    try {
      const tokens = model.tokenizer.encode('Once upon a time, there was a little girl named');
      const lily = model.tokenizer.idOf(' Lily')!;
      const lens = await logitLens(model, tokens, { target: lily, logits: true });
      const final = await model.logits(tokens);
      const L = model.config.nLayers;
      final.forEach((row, p) => expect(relErr(lens.logits![L - 1]![p]!, row)).toBeLessThanOrEqual(1e-6));
      expect(lens.layers[L - 1]!.cells.at(-1)!.target!.rank).toBe(0); // the model says " Lily" here
      expect(lens.layers[L - 1]!.cells.every((c) => c.kl < 1e-6)).toBe(true);
      // CPU: float64 final norm + unembedding of the cached residual stream
      const src = loadModelSource(GGUF);
      const w = src.weights.get('output.weight')!, nw = src.weights.get('output_norm.weight')!;
      const W = dequantize(w.dtype, w.bytes, w.shape[0]! * w.shape[1]!), NW = dequantize('f32', nw.bytes, nw.shape[0]!);
      const { cache } = await model.runWithCache(tokens, { hooks: 'blocks.*.hook_resid_post' });
      for (let l = 0; l < L; l++) {
        const resid = cache.get(`blocks.${l}.hook_resid_post`)!.data;
        tokens.forEach((_, p) => {
          const x = Float64Array.from(resid.subarray(p * 64, (p + 1) * 64));
          const cpu = matvec.reference([W, x, NW], { norm: true, eps: model.config.rmsEps }, { srcs: [w.shape, [64], [64]], out: [w.shape[0]!] });
          expect(relErr(lens.logits![l]![p]!, cpu), `layer ${l} position ${p}`).toBeLessThanOrEqual(1e-5);
        });
      }
    } finally {
      model.dispose();
    }
  });

  it('reports what the pre-change algorithm (every cell sorted in JavaScript) reports, on the same logits', async () => {
    for (const [file, prompt] of [[GGUF, 'Once upon a time, there was a little girl named'], [tinySynth(), 'The cat sat on the mat and']] as const) {
      const model = await Model.create(loadModelSource(file), { contextLength: 64 });
      try {
        const tokens = model.tokenizer.encode(prompt);
        const target = tokens[3]!;
        const timings: Record<string, number> = {};
        const lens = await logitLens(model, tokens, { target, top: 7, logits: true, timings });
        expect(Object.keys(timings)).toEqual(['prepared', 'forward-submitted', 'head-submitted', 'read', 'done']); // (where its time went)
        const old = lensCellsReference(lens.logits!, target, 7);
        lens.layers.forEach((layer, l) => layer.cells.forEach((cell, p) => {
          const want = old[l]![p]!, at = `${file} layer ${l} position ${p}`;
          expect(cell.top.map((t) => t.id), at).toEqual(want.top.map((t) => t.id));
          cell.top.forEach((t, j) => expect(Math.abs(t.prob - want.top[j]!.prob), at).toBeLessThanOrEqual(1e-5 * Math.max(want.top[j]!.prob, 1e-3)));
          expect(cell.target!.rank, at).toBe(want.target!.rank);
          expect(Math.abs(cell.target!.prob - want.target!.prob), at).toBeLessThanOrEqual(1e-5 * Math.max(want.target!.prob, 1e-3));
          expect(Math.abs(cell.kl - want.kl), at).toBeLessThanOrEqual(1e-5 * Math.max(1, want.kl));
        }));
        await expect(logitLens(model, tokens, { top: model.config.vocabSize + 1 })).rejects.toThrow(/vocabulary has/);
      } finally {
        model.dispose();
      }
    }
  });

  it('reads hook_embed and each resid_mid on request: their logits are the CPU unembedding of those hooks, the other rows unchanged', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
    try {
      const tokens = model.tokenizer.encode('Once upon a time, there was a little girl named');
      const L = model.config.nLayers, lily = model.tokenizer.idOf(' Lily')!;
      const [plain, both] = [await logitLens(model, tokens, { target: lily }), await logitLens(model, tokens, { target: lily, embed: true, mid: true, logits: true })];
      expect(both.layers.map((l) => l.hook)).toEqual(['hook_embed', ...Array.from({ length: L }, (_, l) => [`blocks.${l}.hook_resid_mid`, `blocks.${l}.hook_resid_post`]).flat()]);
      // the resid_post rows (and the KL, against the last) are the plain lens's
      for (let l = 0; l < L; l++) {
        const row = both.layers[2 + 2 * l]!;
        row.cells.forEach((c, p) => {
          const want = plain.layers[l]!.cells[p]!;
          expect(c.top.map((t) => t.id)).toEqual(want.top.map((t) => t.id));
          expect(Math.abs(c.kl - want.kl)).toBeLessThanOrEqual(1e-6 * Math.max(1, want.kl));
        });
      }
      const src = loadModelSource(GGUF);
      const w = src.weights.get('output.weight')!, nw = src.weights.get('output_norm.weight')!;
      const W = dequantize(w.dtype, w.bytes, w.shape[0]! * w.shape[1]!), NW = dequantize('f32', nw.bytes, nw.shape[0]!);
      const { cache } = await model.runWithCache(tokens, { hooks: 'hook_embed,resid_mid' });
      both.layers.forEach((layer, r) => {
        if (layer.hook.endsWith('resid_post')) return;
        const resid = cache.get(layer.hook)!.data;
        tokens.forEach((_, p) => {
          const cpu = matvec.reference([W, Float64Array.from(resid.subarray(p * 64, (p + 1) * 64)), NW], { norm: true, eps: model.config.rmsEps }, { srcs: [w.shape, [64], [64]], out: [w.shape[0]!] });
          expect(relErr(both.logits![r]![p]!, cpu), `${layer.hook} position ${p}`).toBeLessThanOrEqual(1e-5);
        });
      });
    } finally {
      model.dispose();
    }
  });

  it('a lens head too wide for one binding runs in chunks of positions, with the same cells', async () => {
    const whole = await Model.create(loadModelSource(GGUF), { contextLength: 32 });
    // 12 rows of 512 logits a binding: chunks of 2 positions of the 5 layers
    const split = await Model.create(loadModelSource(GGUF), { contextLength: 32, maxBindingBytes: 12 * 512 * 4 });
    try {
      const tokens = whole.tokenizer.encode('Once upon a time, there was');
      const calls: [number, number][] = [];
      const [a, b] = [await logitLens(whole, tokens, { target: 7 }), await logitLens(split, tokens, { target: 7, progress: (d, t) => calls.push([d, t]) })];
      expect(b.layers).toEqual(a.layers);
      expect(calls).toEqual(Array.from({ length: Math.ceil(tokens.length / 2) }, (_, k) => [k + 1, Math.ceil(tokens.length / 2)])); // a pass at a time
    } finally {
      whole.dispose();
      split.dispose();
    }
  });

  it('tapir lens prints JSON and an SVG heatmap; an unknown piece is exit code 2', () => {
    fs.mkdirSync(path.join(root, 'test-output'), { recursive: true });
    const svg = path.join(root, 'test-output', 'lens.svg');
    const r = spawnSync(path.join(root, 'bin/tapir.js'), ['lens', '-p', 'Once upon a time', '--target', ' Lily', '--svg', svg, '--json'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.layers).toHaveLength(5);
    expect(o.layers[0].cells).toHaveLength(5);
    expect(o.target.piece).toBe(' Lily');
    // the picture: a colour scale, and pieces' leading spaces visible on the axis
    const pic = fs.readFileSync(svg, 'utf8');
    expect(pic).toMatch(/<g class="legend"><text[^>]*>colour scale<\/text>(<rect [^>]*fill="rgb\(\d+,\d+,\d+\)"\/>){21}/);
    expect(pic).toContain('>\u2423upon</text>');
    // the text output says the target's rank at the last position, layer by layer, as the JSON has it
    const text = spawnSync(path.join(root, 'bin/tapir.js'), ['lens', '-p', 'Once upon a time', '--target', ' Lily'], { cwd: root, encoding: 'utf8' }).stdout;
    const ranks = [...text.matchAll(/^blocks\.(\d)\s+rank\s+(\d+)\s/gm)].map((m) => Number(m[2]));
    expect(ranks).toEqual(o.layers.map((l: { cells: { target: { rank: number } }[] }) => l.cells.at(-1)!.target.rank));
    const bad = spawnSync(path.join(root, 'bin/tapir.js'), ['lens', '-p', 'x', '--target', ' Lilyy'], { cwd: root, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/' Lilyy' is not a vocabulary entry/);
  });
});
