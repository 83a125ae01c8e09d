// Weights by TransformerLens's names and shapes: applied to the float64 reference's own activations
// they give the reference's next activations (stories260K: embedding, q/k/v, attention and MLP outputs,
// logits), so names, shapes and layouts are TL's; a NeoX-RoPE family's W_Q and biases come back in the
// file's row order; `tapir weights` lists, summarizes and writes them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Model } from '../runtime/model.js';
import { loadModelSource } from '../runtime/node/load.js';
import { synthModel } from '../runtime/synth/synth.js';
import { parseSafetensors, tensorValues } from '../runtime/formats/safetensors.js';
import { headSize } from '../models/llama.js';
import { GGUF } from './helpers/models.js';
import { relErr } from './helpers/numeric.js';
import { writeSynth } from './helpers/synth.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapir-tlw-'));
let model: Model;
beforeAll(async () => { model = await Model.create(loadModelSource(GGUF), { contextLength: 32 }); });
afterAll(() => { model.dispose(); fs.rmSync(dir, { recursive: true, force: true }); });

/** x [n] times W viewed as [n, m] (the trailing axes of a TL weight) -> [m] */
const vecMat = (x: ArrayLike<number>, w: Float32Array, n: number, m: number, at = 0) => Float64Array.from({ length: m }, (_, j) => { let s = 0; for (let i = 0; i < n; i++) s += x[i]! * w[at + i * m + j]!; return s; });

describe('weights by TransformerLens name', () => {
  it('reproduce the float64 reference: W_E, W_Q/_W_K/W_V (+ W_K repeated), W_O, W_gate/W_in/W_out, W_U', () => {
    const c = model.config, d = c.dim, hs = headSize(c), H = c.nHeads, K = c.nKvHeads;
    const tokens = model.tokenizer.encode('Lily and Ben went to the park');
    const ref = model.reference();
    let v = new Map<never, Float64Array>();
    tokens.forEach((token, pos) => { v = ref.step({ token, pos }) as never; });
    const at = (hook: string) => v.get(model.graph.hooks[hook]!.node as never)!;
    const t = tokens.at(-1)!;
    expect(relErr(model.tlWeight('W_E').data.subarray(t * d, (t + 1) * d), at('hook_embed'))).toBeLessThanOrEqual(1e-6);
    for (const l of [0, 3]) {
      const b = `blocks.${l}.`;
      const ln = (k: 1 | 2) => { const w = model.tlWeight(`${b}ln${k}.w`).data; return at(`${b}ln${k}.hook_normalized`).map((x, i) => x * w[i]!); };
      const [WQ, WK, _WK, WV, WO] = ['W_Q', 'W_K', '_W_K', 'W_V', 'W_O'].map((n) => model.tlWeight(`${b}attn.${n}`));
      expect(WQ!.shape).toEqual([H, d, hs]);
      expect(_WK!.shape).toEqual([K, d, hs]);
      const x1 = ln(1);
      const q = Float64Array.from({ length: H * hs }, (_, i) => vecMat(x1, WQ!.data, d, hs, Math.floor(i / hs) * d * hs)[i % hs]!);
      expect(relErr(q, at(`${b}attn.hook_q`))).toBeLessThanOrEqual(1e-5);
      const k = Float64Array.from({ length: K * hs }, (_, i) => vecMat(x1, _WK!.data, d, hs, Math.floor(i / hs) * d * hs)[i % hs]!);
      expect(relErr(k, at(`${b}attn.hook_k`))).toBeLessThanOrEqual(1e-5);
      // TL's W_K: each head's kv head's matrix
      for (let h = 0; h < H; h++) expect(Array.from(WK!.data.subarray(h * d * hs, (h + 1) * d * hs))).toEqual(Array.from(_WK!.data.subarray(Math.floor(h / (H / K)) * d * hs, (Math.floor(h / (H / K)) + 1) * d * hs)));
      const vv = Float64Array.from({ length: H * hs }, (_, i) => vecMat(x1, WV!.data, d, hs, Math.floor(i / hs) * d * hs)[i % hs]!);
      const vKv = at(`${b}attn.hook_v`); // [K, hs]
      expect(relErr(vv, Float64Array.from({ length: H * hs }, (_, i) => vKv[Math.floor(Math.floor(i / hs) / (H / K)) * hs + (i % hs)]!))).toBeLessThanOrEqual(1e-5);
      const z = at(`${b}attn.hook_z`), attnOut = new Float64Array(d);
      for (let h = 0; h < H; h++) vecMat(z.subarray(h * hs, (h + 1) * hs), WO!.data, hs, d, h * hs * d).forEach((x, i) => (attnOut[i]! += x));
      expect(relErr(attnOut, at(`${b}hook_attn_out`))).toBeLessThanOrEqual(1e-5);
      const x2 = ln(2), dm = c.hiddenDim;
      expect(relErr(vecMat(x2, model.tlWeight(`${b}mlp.W_gate`).data, d, dm), at(`${b}mlp.hook_pre`))).toBeLessThanOrEqual(1e-5);
      expect(relErr(vecMat(x2, model.tlWeight(`${b}mlp.W_in`).data, d, dm), at(`${b}mlp.hook_pre_linear`))).toBeLessThanOrEqual(1e-5);
      expect(relErr(vecMat(at(`${b}mlp.hook_post`), model.tlWeight(`${b}mlp.W_out`).data, dm, d), at(`${b}hook_mlp_out`))).toBeLessThanOrEqual(1e-5);
      expect(Array.from(model.tlWeight(`${b}attn.b_Q`).data).every((x) => x === 0)).toBe(true); // no biases: TL's zeros
    }
    const wf = model.tlWeight('ln_final.w').data, xf = at('ln_final.hook_normalized').map((x, i) => x * wf[i]!);
    expect(relErr(vecMat(xf, model.tlWeight('W_U').data, d, c.vocabSize), at('hook_logits'))).toBeLessThanOrEqual(1e-5);
    expect(() => model.tlWeight('W_pos')).toThrow(/no W_pos/);
    expect(() => model.tlWeight('blocks.9.attn.W_Q')).toThrow(/layer 9 is out of range/);
    expect(() => model.tlWeight('blocks.0.attn.W_X')).toThrow(/unknown weight/);
  });

  it("a NeoX-RoPE family's W_Q, W_K and biases in the file's row order (the reader's interleaving undone)", async () => {
    const synth = synthModel('tiny', 'f32', 7, 'qwen2');
    const file = writeSynth(synth, path.join(dir, 'qwen2.gguf'));
    const m = await Model.create(loadModelSource(file), { contextLength: 16 });
    try {
      const c = m.config, d = c.dim, hs = headSize(c);
      const raw = (name: string) => { const t = synth.tensors.find((x) => x.name === name)!; const b = t.produce(); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
      for (const [tl, gguf, heads] of [['W_Q', 'attn_q', c.nHeads], ['_W_K', 'attn_k', c.nKvHeads]] as const) {
        const w = m.tlWeight(`blocks.1.attn.${tl}`).data, r = raw(`blk.1.${gguf}.weight`);
        for (let h = 0; h < heads; h++) for (let k = 0; k < hs; k++) for (let i = 0; i < d; i++) expect(w[(h * d + i) * hs + k]).toBe(r[(h * hs + k) * d + i]);
      }
      expect(Array.from(m.tlWeight('blocks.1.attn.b_Q').data)).toEqual(Array.from(raw('blk.1.attn_q.bias')));
      expect(Array.from(m.tlWeight('blocks.1.attn._b_K').data)).toEqual(Array.from(raw('blk.1.attn_k.bias')));
    } finally {
      m.dispose();
    }
  });

  it('tapir weights: lists, summarizes, writes safetensors; bad names exit 2', () => {
    const tapir = (...args: string[]) => spawnSync(path.resolve(import.meta.dirname, '..', 'bin', 'tapir.js'), args, { encoding: 'utf8', timeout: 60_000 });
    const list = JSON.parse(tapir('weights', '--json').stdout) as { name: string; shape: number[] }[];
    expect(list[0]).toEqual({ name: 'W_E', shape: [512, 64] });
    expect(list.at(-1)).toEqual({ name: 'W_U', shape: [64, 512] });
    const out = path.join(dir, 'wo.safetensors');
    const r = tapir('weights', 'blocks.*.attn.W_O', '--out', out, '--json');
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { weights: { name: string }[] }).weights.map((w) => w.name)).toEqual([0, 1, 2, 3, 4].map((l) => `blocks.${l}.attn.W_O`));
    const bytes = fs.readFileSync(out);
    const st = parseSafetensors(bytes, out, bytes.byteLength);
    const t = st.tensors.get('blocks.2.attn.W_O')!;
    expect(t.shape).toEqual([8, 8, 64]);
    expect(Array.from(tensorValues(bytes, t))).toEqual(Array.from(model.tlWeight('blocks.2.attn.W_O').data));
    for (const [args, message] of [[['weights', 'W_pos'], /no W_pos/], [['weights', 'blocks.0.attn.W_X'], /unknown weight 'blocks\.0\.attn\.W_X'/], [['weights', 'W_E', '--out', path.join(dir, 'no', 'x.safetensors')], /does not exist/]] as const) {
      const bad = tapir(...args);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(message);
    }
  }, 60_000);
});
