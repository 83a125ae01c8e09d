// The fusing compiler end to end: fused and unfused plans agree on real and synthetic models, the
// schedule is built once, and a fused matvec takes new epilogues without new kernel source.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { GraphBuilder } from '../compiler/ir/graph.js';
import { compile } from '../compiler/passes.js';
import { withEpilogues } from '../compiler/kernel/compose.js';
import { toWGSL } from '../compiler/kernel/wgsl.js';
import { OPSET, ops } from '../ops/index.js';
import { target } from '../compiler/target.js';
import { fragments, kernels } from '../ops/kernels.gen.js';
import { Executor } from '../runtime/executor.js';
import { getGpu } from '../runtime/gpu.js';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { ReferenceRunner } from '../runtime/reference.js';
import { synthModel } from '../runtime/synth/synth.js';
import { CORPUS } from '../runtime/synth/corpus.js';
import { weightOf } from '../runtime/weights.js';
import { GGUF } from './helpers/models.js';
import { randomSource, relErr } from './helpers/numeric.js';
import { writeSynth } from './helpers/synth.js';

const root = path.resolve(import.meta.dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-fusion-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function agree(file: string, n: number, context: number) {
  const src = loadModelSource(file);
  const fused = await Model.create(src, { contextLength: context });
  const plain = await Model.create(src, { contextLength: context, fuse: false });
  try {
    expect(fused.plan.dispatches.length).toBeLessThan(plain.plan.dispatches.length);
    const tokens = fused.tokenizer.encode(CORPUS + CORPUS).slice(0, n);
    const a = await fused.logits(tokens), b = await plain.logits(tokens);
    a.forEach((row, i) => expect(relErr(row, b[i]!), `position ${i}`).toBeLessThanOrEqual(1e-5));
  } finally {
    fused.dispose();
    plain.dispose();
  }
}

describe('fused and unfused plans agree at every position', () => {
  it('stories260K (GQA, 3 tiles of flash attention)', () => agree(GGUF, 150, 256));
  it('tiny synth (GQA, Llama 3 RoPE scaling, q8_0), past position 256', () => agree(writeSynth(synthModel('tiny', 'q8_0', 4), path.join(dir, 't.gguf')), 270, 300));
});

// Decode steps (one position at a time: the matvec kernels, not the prefill's matrix products), fused,
// against the float64 reference forward pass.
async function decodeMatchesReference(file: string, n: number) {
  const model = await Model.create(loadModelSource(file), { contextLength: 64 });
  try {
    const ref = model.reference();
    const tokens = model.tokenizer.encode(CORPUS).slice(0, n);
    for (const [pos, token] of tokens.entries()) {
      const got = await model.forward(token);
      expect(relErr(got.subarray(0, model.config.vocabSize), ref.output({ token, pos }, 'logits')), `position ${pos}`).toBeLessThanOrEqual(1e-5);
    }
    return model.plan.dispatches.map((d) => d.kernel);
  } finally {
    model.dispose();
  }
}

describe('decode steps agree with the float64 reference', () => {
  it('tiny synth in f16: the wide kernels (16-byte weight loads)', async () => {
    const kernels = await decodeMatchesReference(writeSynth(synthModel('tiny', 'f16', 5), path.join(dir, 'f16.gguf')), 12);
    expect(kernels).toContain('qkvRopeF16Kernel');
    expect(kernels).toContain('ffnGateUpF16Kernel');
    expect(kernels.some((k) => k.startsWith('matvecF16Kernel+addEpilogue'))).toBe(true);
  });
  it('tiny synth in q8_0: the 16-byte q8_0 kernels', async () => {
    const kernels = await decodeMatchesReference(writeSynth(synthModel('tiny', 'q8_0', 6), path.join(dir, 'q8.gguf')), 12);
    expect(kernels).toContain('qkvRopeQ8Kernel');
    expect(kernels).toContain('ffnGateUpQ8Kernel');
    expect(kernels.some((k) => k.startsWith('matvecQ8Kernel+addEpilogue'))).toBe(true);
  });
});

describe('the schedule', () => {
  it('is built once: no pipeline, bind group, buffer or shader module is created over 100 decode steps', async () => {
    const model = await Model.create(loadModelSource(GGUF), { contextLength: 128 });
    const d = (await getGpu()).device;
    const counts: Record<string, number> = {};
    const originals: [string, unknown][] = [];
    for (const name of ['createComputePipeline', 'createBindGroup', 'createBuffer', 'createShaderModule', 'createBindGroupLayout', 'createPipelineLayout']) {
      const f = (d as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!;
      originals.push([name, f]);
      counts[name] = 0;
      (d as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => { counts[name]!++; return f.apply(d, a); };
    }
    try {
      model.reset();
      let t = 1;
      for (let i = 0; i < 100; i++) t = await model.forwardGreedy(t);
      await model.forward(t);
      expect(counts).toEqual({ createComputePipeline: 0, createBindGroup: 0, createBuffer: 0, createShaderModule: 0, createBindGroupLayout: 0, createPipelineLayout: 0 });
    } finally {
      for (const [name, f] of originals) (d as unknown as Record<string, unknown>)[name] = f;
      model.dispose();
    }
  });

  it('uses at most 6 dispatches per layer at context <= 1024, as `tapir compile --json` reports', () => {
    const r = spawnSync(path.join(root, 'bin/tapir.js'), ['compile', '--context', '1024', '--json'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.dispatchesPerLayer).toBeLessThanOrEqual(6);
    expect(o.layers).toBe(5);
    expect(o.dispatches).toBe(5 * o.dispatchesPerLayer + 3); // + embedding, final norm + logits, argmax
    expect(o.byPosition).toEqual([{ from: 0, dispatches: o.dispatches, dispatchesPerLayer: o.dispatchesPerLayer }]);
    const plain = JSON.parse(spawnSync(path.join(root, 'bin/tapir.js'), ['compile', '--context', '1024', '--json', '--no-fuse'], { cwd: root, encoding: 'utf8' }).stdout);
    expect(plain.dispatchesPerLayer).toBeGreaterThan(10);
  });

  it('past 1024 positions of context, adds split-K attention (and its merge) only from position 1024 on', () => {
    const r = spawnSync(path.join(root, 'bin/tapir.js'), ['compile', '--context', '2048', '--json'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.byPosition).toEqual([{ from: 0, dispatches: 33, dispatchesPerLayer: 6 }, { from: 1024, dispatches: 38, dispatchesPerLayer: 7 }]);
  });
});

describe('epilogues compose without new kernel source', () => {
  it('a bias add and a scale join a fused matvec: one kernel, correct results', async () => {
    const rnd = randomSource();
    const rows = 72, cols = 96; // rows % 4 = 0: the 16-byte q8_0 matvec
    const g = new GraphBuilder();
    const o = ops(g);
    const x = o.weight('x', [cols]), nw = o.weight('nw', [cols]), w = o.weight('w', [rows, cols], 'q8_0'), b = o.weight('b', [rows]);
    const graph = g.finish({ out: o.scale(o.add(o.matvec(w, o.rmsnorm(x, nw, 1e-5)), b), 0.5) });
    const c = compile(graph, OPSET, target({ maxBindingBytes: 1 << 27 }));
    const plan = c.plan!;
    // (q8_0 rows of whole 16-byte loads: the 16-byte q8_0 matvec)
    expect(plan.dispatches.map((d) => d.kernel)).toEqual(['matvecQ8Kernel+addEpilogue+scaleEpilogue']);
    // the kernel is the matvec template with the two fragments spliced in; no such kernel is written anywhere
    expect(Object.keys(kernels)).not.toContain('matvecQ8Kernel+addEpilogue+scaleEpilogue');
    expect(toWGSL(plan.kernels.get('matvecQ8Kernel+addEpilogue+scaleEpilogue')!)).toBe(toWGSL(withEpilogues(kernels.matvecQ8Kernel!, [fragments.addEpilogue!, fragments.scaleEpilogue!])));
    const weights = new Map([
      ['x', weightOf([cols], 'f32', rnd.normal(cols))], ['nw', weightOf([cols], 'f32', rnd.normal(cols))],
      ['w', weightOf([rows, cols], 'q8_0', rnd.normal(rows * cols))], ['b', weightOf([rows], 'f32', rnd.normal(rows))],
    ]);
    const ex = new Executor(await getGpu(), plan, weights);
    try {
      const out = (await ex.run({}, 'out')).subarray(0, rows);
      const ref = new ReferenceRunner(graph, weights).output({}, 'out'); // the unfused graph
      expect(relErr(out, ref), `seed ${rnd.seed}`).toBeLessThanOrEqual(1e-5);
    } finally {
      ex.destroy();
    }
  });
});
