// Every model family against llama.cpp (node-llama-cpp 3.21.1, CPU, F32 KV cache, flash attention
// off) reading the same synthetic GGUF: log-probabilities at every position of a teacher-forced
// sequence, greedy tokens, and token ids on tricky strings. Then mutations of the loaded model (the
// wrong RoPE pairing, a dropped bias, a skipped q/k norm, a dropped multiplier) must fail the same
// comparison, so the test is known to bite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Model, type ModelSource } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { synthModel } from '../runtime/synth/synth.js';
import { FAMILIES, type FamilyName } from '../models/families.js';
import { permuteRows } from '../runtime/formats/hf_llama.js';
import { writeSynth } from './helpers/synth.js';
import { llamaCpp } from './helpers/oracle.js';
import { runProcess } from './helpers/process.js';
import { makeTokenizer } from '../runtime/tokenizer.js';

const TOL = 1e-3;
const STEPS = 32;
const NAMES = Object.keys(FAMILIES) as FamilyName[];
const TRICKY = [
  'Hello world!', ' leading space', '  two  spaces  ', '\ttabs\tand\nnewlines\n\n\nthree', 'line\r\nwindows', "don't I'M we'LL",
  '12345 1234567 3.14159', 'emoji 🙂🚀🦙', '日本語のテキスト 中文文本 한국어', 'русский язык', 'café naïve Straße', '   ', '',
  'Once upon a time, there was a tapir who lived near a river.', '<|im_start|>user\nhi<|im_end|>', '<|begin_of_text|>Hello<|eot_id|>', '<s>hi</s>',
];

let dir = '';
const files = {} as Record<FamilyName, string>;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-families-'));
  for (const f of NAMES) files[f] = writeSynth(synthModel('tiny', 'f32', 7, f), path.join(dir, `${f}.gguf`));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** log-softmax in float64 */
const logSoftmax = (x: ArrayLike<number>) => {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]!);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i]! - max);
  const lse = max + Math.log(s);
  return Float64Array.from(x, (v) => v - lse);
};

/** The worst position's ‖tapir − llama.cpp‖ / ‖llama.cpp‖ over the log-probabilities of `ids`. */
async function worstRelErr(src: ModelSource, ids: number[], want: (number | null)[][]) {
  const model = await Model.create(src, { contextLength: 64 });
  try {
    const logits = await model.logits(ids);
    let worst = 0;
    logits.forEach((row, i) => {
      const got = logSoftmax(row);
      let num = 0, den = 0;
      got.forEach((g, v) => {
        const w = want[i]![v] ?? -1e4; // a probability llama.cpp rounds to 0
        num += (g - w) ** 2; den += w * w;
      });
      worst = Math.max(worst, Number.isFinite(num) ? Math.sqrt(num / den) : Infinity);
    });
    return worst;
  } finally {
    model.dispose();
  }
}

/** A family's greedy continuation by tapir, and llama.cpp's log-probabilities along it (once a family). */
const runs = new Map<FamilyName, Promise<{ ids: number[]; want: (number | null)[][] }>>();
const greedyRun = (family: FamilyName) => {
  if (!runs.has(family)) runs.set(family, (async () => {
    const model = await Model.create(loadModelSource(files[family]), { contextLength: 64 });
    try {
      const r = await model.generate({ prompt: 'Once upon a time, there was', maxNewTokens: STEPS, temperature: 0, stopAtEos: false });
      const ids = Array.from(r.tokens);
      return { ids, want: llamaCpp({ model: files[family], logprobs: ids }).logprobs as (number | null)[][] };
    } finally {
      model.dispose();
    }
  })());
  return runs.get(family)!;
};

describe.each(NAMES)('%s against llama.cpp', (family) => {
  let ids: number[] = [], generated: number[] = [], want: (number | null)[][] = [];
  beforeAll(async () => {
    ({ ids, want } = await greedyRun(family));
    generated = ids.slice(ids.length - STEPS);
  }, 120_000);

  it(`log-probabilities at every position within ${TOL} (norm-wise), on peaked distributions`, async () => {
    expect(ids.length).toBeGreaterThan(STEPS);
    const err = await worstRelErr(loadModelSource(files[family]), ids, want);
    expect(err).toBeLessThanOrEqual(TOL);
    // peaked: the synthetic weights give the top token a real lead at most positions
    const top = want.map((row) => Math.max(...row.map((v) => v ?? -Infinity)));
    expect(top.filter((lp) => lp > Math.log(0.2)).length).toBeGreaterThan(ids.length / 4);
  });

  it(`greedy tokens equal llama.cpp's for ${STEPS} steps wherever its top-2 gap exceeds ${TOL}`, () => {
    let compared = 0;
    generated.forEach((tok, k) => {
      const row = want[ids.length - STEPS - 1 + k]!.map((v) => v ?? -Infinity);
      const order = row.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
      if (order[0]![0] - order[1]![0] <= TOL) return;
      compared++;
      expect(tok, `step ${k}`).toBe(order[0]![1]);
    });
    expect(compared).toBeGreaterThan(STEPS / 2);
  });

  it('token ids equal llama.cpp\'s on tricky strings (special tokens parsed and not)', async () => {
    const src = loadModelSource(files[family]);
    const tok = makeTokenizer(src.vocab);
    for (const special of [false, true]) {
      const got = llamaCpp({ model: files[family], tokenize: TRICKY.map((text) => ({ text, special })) }).tokens as number[][];
      TRICKY.forEach((text, i) => expect(tok.encode(text, { bos: false, special }), `${JSON.stringify(text)} special=${special}`).toEqual(got[i]));
    }
  });
});

describe('the differential test bites', () => {
  /** a family's loaded model, changed as a bug would change it, must miss llama.cpp */
  const mutated = async (family: FamilyName, mutate: (s: ModelSource) => ModelSource) => {
    const src = loadModelSource(files[family]);
    const { ids, want } = await greedyRun(family);
    return { ok: await worstRelErr(src, ids, want), bad: await worstRelErr(mutate(src), ids, want) };
  };
  const unpermute = (s: ModelSource): ModelSource => {
    const c = s.config, weights = new Map(s.weights);
    for (const [name, w] of weights) {
      const m = /\.(attn_q|attn_k)(\.weight|\.bias|_norm\.weight)$/.exec(name);
      if (m) weights.set(name, permuteRows(w, m[2] === '_norm.weight' ? 1 : m[1] === 'attn_q' ? c.nHeads : c.nKvHeads, false, c.rotDim));
    }
    return { ...s, weights };
  };
  it.each([
    ['qwen2', 'RoPE on neighbouring pairs instead of NeoX halves', unpermute],
    ['phi3', 'partial NeoX RoPE as neighbouring pairs', unpermute],
    ['qwen2', 'the q/k/v biases dropped', (s: ModelSource) => ({ ...s, config: { ...s.config, qkvBias: false } })],
    ['qwen3', 'the per-head q/k norms skipped', (s: ModelSource) => ({ ...s, config: { ...s.config, qkNorm: false } })],
    ['granite', 'the residual multiplier dropped', (s: ModelSource) => ({ ...s, config: { ...s.config, residualScale: undefined } })],
    ['granite', 'the attention multiplier dropped', (s: ModelSource) => ({ ...s, config: { ...s.config, attentionScale: undefined } })],
  ] as const)('%s with %s fails it', async (family, _, mutate) => {
    const { ok, bad } = await mutated(family as FamilyName, mutate);
    expect(ok).toBeLessThanOrEqual(TOL);
    expect(bad).toBeGreaterThan(10 * TOL);
  });
});

describe.each(NAMES)('tapir generate, lens, patch and hooks on a %s GGUF', (family) => {
  const bin = path.resolve(import.meta.dirname, '..', 'bin', 'tapir.js');
  // (awaited: a run of synchronous tests holds the worker's event loop, and vitest's RPC times out)
  const tapir = (...args: string[]) => runProcess(bin, args, { timeout: 90_000 });
  it('work with the standard hook names', async () => {
    const file = files[family];
    const gen = await tapir('generate', '-m', file, '-p', 'Once upon a time', '-n', '8', '--json');
    expect(gen.code, gen.stderr).toBe(0);
    expect(JSON.parse(gen.stdout).tokens.length).toBeGreaterThan(8);
    const hooks = await tapir('hooks', '-m', file, '--json');
    expect(hooks.code, hooks.stderr).toBe(0);
    const names = (JSON.parse(hooks.stdout) as { name: string }[]).map((h) => h.name);
    for (const h of ['hook_embed', 'blocks.0.hook_resid_pre', 'blocks.1.attn.hook_pattern', 'blocks.1.attn.hook_z', 'blocks.1.mlp.hook_post', 'blocks.1.hook_resid_post', 'ln_final.hook_normalized'])
      expect(names, h).toContain(h);
    const lens = await tapir('lens', '-m', file, '-p', 'Once upon a time', '--json');
    expect(lens.code, lens.stderr).toBe(0);
    expect(JSON.parse(lens.stdout).layers.length).toBe(2); // the residual stream after each of the 2 blocks
    // clean and corrupted prompts of equal length in this family's tokenizer
    const tok = makeTokenizer(loadModelSource(file).vocab);
    const words = ['dog', 'cat', 'sun', 'man', 'box', 'day', 'tree', 'bird', 'ball'];
    const len = (w: string) => tok.encode(`The ${w} saw a`).length;
    const [a, b] = words.flatMap((x) => words.filter((y) => y !== x && len(x) === len(y)).map((y) => [x, y]))[0]!;
    const patch = await tapir('patch', '-m', file, '--clean', `The ${a} saw a`, '--corrupt', `The ${b} saw a`, '--target-id', '5', '--distractor-id', '6', '--json');
    expect(patch.code, patch.stderr).toBe(0);
    const o = JSON.parse(patch.stdout);
    expect(o.sites[0].site).toBe('resid_pre');
    expect(o.sites[0].scores).toHaveLength(2); // [layer][position]
    expect(o.sites[0].scores[0]).toHaveLength(len(a!));
  }, 120_000);

  it('generate --chat lays the prompt out by the file\'s chat template, tokenized as llama.cpp does', async () => {
    const r = await tapir('generate', '-m', files[family], '--chat', '--system', 'Be brief.', '-p', 'Tell me a story', '-n', '4', '--json');
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.chatPrompt).toContain('Tell me a story');
    if (family !== 'mistral') expect(o.chatPrompt).toContain('Be brief.'); // (the [INST] format has no system turn)
    const want = (llamaCpp({ model: files[family], tokenize: [{ text: o.chatPrompt, special: true }] }).tokens as number[][])[0]!;
    expect(o.tokens.slice(0, o.promptTokens)).toEqual(want);
    // no prompt: a tokenizer that adds BOS starts from it; one that adds none (Qwen's) asks for -p
    const bare = await tapir('generate', '-m', files[family], '-n', '2');
    if (loadModelSource(files[family]).vocab.addBos === false) {
      expect(bare.code).toBe(2);
      expect(bare.stderr).toMatch(/^tapir: error: this model's tokenizer adds no BOS token, so there is nothing to start from: give a prompt with -p$/m);
    } else expect(bare.code, bare.stderr).toBe(0);
    if (family === 'llama') { // a file without a template (stories260K), and --system alone: usage errors
      const none = await tapir('generate', '--chat', '-p', 'hi');
      expect(none.code).toBe(2);
      expect(none.stderr).toMatch(/carries no chat template/);
      expect((await tapir('generate', '-m', files[family], '--system', 'x', '-p', 'hi')).code).toBe(2);
    }
  }, 120_000);
});

describe('the fused plans', () => {
  // Llama's per-layer kernels (QKV [+RoPE+cache], attention, o + residual, gate/up, down + residual)
  // for every family; what differs is stated: Granite multiplies the embedding once a token (one scale
  // kernel, not a layer's), and Qwen3's per-head q/k norm needs a head's rows together, which the
  // 16-byte QKV kernels spread over workgroups, so with f16/q8_0 weights its RoPE stays a kernel of its own.
  it.each(['f32', 'q8_0'] as const)('keep the Llama plan\'s dispatches per layer (%s weights)', async (dtype) => {
    const count = async (f: FamilyName) => {
      const file = path.join(dir, `${f}-${dtype}.gguf`);
      writeSynth(synthModel('tiny', dtype, 7, f), file);
      const m = await Model.create(loadModelSource(file), { contextLength: 64 });
      try {
        return { n: m.plan.dispatches.length, layers: m.config.nLayers };
      } finally {
        m.dispose();
      }
    };
    const llama = await count('llama');
    for (const f of NAMES) {
      const { n, layers } = await count(f);
      const extra = f === 'granite' ? 1 : f === 'qwen3' && dtype !== 'f32' ? layers : 0;
      expect(n, f).toBe(llama.n + extra);
    }
  }, 120_000);
});
