// A model of one of the Llama-graph families (models/families.ts) from a parsed GGUF file: config
// from the `<arch>.*` metadata, the weights as the Llama graph names and lays them out, and the
// vocabulary from `tokenizer.ggml.*`.
import { FormatError } from '../../compiler/errors.js';
import { type LlamaConfig, headSize, qWidth } from '../../models/llama.js';
import { FAMILIES, familyOfArch, type Family } from '../../models/families.js';
import { permuteRows } from './hf_llama.js';
import { weightRows, type WeightTensor } from '../weights.js';
import { TokenType, type Vocab } from '../tokenizers/common.js';
import type { GGUFFile, GGUFValue } from './gguf.js';
import { lazyWeight, memorySource, type ByteSource } from './source.js';
import { weightOf, type WeightMap } from '../weights.js';
import { dequantize } from '../../ops/dequant.js';
import { type DType, WEIGHT_DTYPES } from '../../compiler/ir/dtype.js';

function getter(g: GGUFFile, file: string) {
  const fail = (m: string): never => { throw new FormatError(file, m); };
  const num = (key: string, fallback?: number): number => {
    const v = g.metadata.get(key);
    if (v === undefined) return fallback !== undefined ? fallback : fail(`metadata '${key}' is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail(`metadata '${key}' should be a number, got ${typeof v}`);
    return v;
  };
  const size = (key: string, fallback?: number) => {
    const v = num(key, fallback);
    if (!Number.isInteger(v) || v < 1 || v > 1 << 24) fail(`metadata '${key}' = ${v} is not a plausible size`);
    return v;
  };
  const str = (key: string, fallback?: string): string => {
    const v = g.metadata.get(key);
    if (v === undefined) return fallback !== undefined ? fallback : fail(`metadata '${key}' is missing`);
    if (typeof v !== 'string') return fail(`metadata '${key}' should be a string`);
    return v;
  };
  const arr = (key: string): GGUFValue[] => {
    const v = g.metadata.get(key);
    if (!Array.isArray(v)) return fail(`metadata '${key}' should be an array`);
    return v;
  };
  return { num, size, str, arr, fail };
}

export function llamaFromGGUF(g: GGUFFile, src: ByteSource | Uint8Array, file: string): { config: LlamaConfig; weights: WeightMap; vocab: Vocab; qkInterleavedAtLoad: boolean } {
  if (src instanceof Uint8Array) src = memorySource(src);
  const m = getter(g, file);
  const arch = m.str('general.architecture');
  const family = familyOfArch(arch) ?? m.fail(`architecture '${arch}' is not supported (tapir runs ${[...new Set(Object.values(FAMILIES).map((f) => `'${f.arch}'`))].join(', ')})`);
  const key = (k: string) => `${arch}.${k}`;
  const dim = m.size(key('embedding_length'));
  const nHeads = m.size(key('attention.head_count'));
  const nKvHeads = m.size(key('attention.head_count_kv'), nHeads);
  if (nHeads % nKvHeads !== 0) m.fail(`head_count ${nHeads} is not divisible by head_count_kv ${nKvHeads}`);
  // a head's width: attention.key_length where the file says (some Qwen3 sizes), else dim / heads
  const hs = m.size(key('attention.key_length'), dim % nHeads === 0 ? dim / nHeads : undefined);
  if (m.size(key('attention.value_length'), hs) !== hs) m.fail(`${key('attention.value_length')} differs from ${key('attention.key_length')}: values of another width than keys are not supported`);
  if (hs % 2) m.fail(`the head width ${hs} must be even`);
  const rotDim = m.size(key('rope.dimension_count'), hs);
  if (rotDim > hs || rotDim % 2) m.fail(`rope.dimension_count ${rotDim} must be even and at most the head size ${hs}`);
  const tokens = m.arr('tokenizer.ggml.tokens');
  const emb = g.tensors.get('token_embd.weight') ?? m.fail("tensor 'token_embd.weight' is missing");
  const config: LlamaConfig = {
    dim, nHeads, nKvHeads, rotDim,
    hiddenDim: m.size(key('feed_forward_length')),
    nLayers: m.size(key('block_count')),
    vocabSize: emb.dims[1] ?? m.fail("'token_embd.weight' should be 2-D"),
    contextLength: m.size(key('context_length')),
    ropeTheta: m.num(key('rope.freq_base'), 10000),
    rmsEps: m.num(key('attention.layer_norm_rms_epsilon'), 1e-5),
    tiedEmbeddings: !g.tensors.has('output.weight'),
    ...(hs !== dim / nHeads ? { headDim: hs } : {}),
    ...family.flags((k, fallback) => m.num(key(k), fallback)),
  };
  for (const k of ['embeddingScale', 'residualScale', 'attentionScale', 'logitScale'] as const)
    if (config[k] !== undefined && !(config[k]! > 0 && Number.isFinite(config[k]))) m.fail(`${arch} multiplier ${k} = ${config[k]} must be a positive number`);
  if (!(config.ropeTheta > 0) || !(config.rmsEps > 0)) m.fail('rope.freq_base and layer_norm_rms_epsilon must be positive');
  // Llama 3 RoPE scaling, as llama.cpp stores it: one divisor per rotated pair
  const freqs = g.tensors.get('rope_freqs.weight');
  if (freqs) {
    if (freqs.type !== 'F32' || freqs.dims.length !== 1 || freqs.dims[0] !== rotDim / 2) m.fail(`'rope_freqs.weight' must be F32 [${rotDim / 2}]`);
    config.ropeFactors = Array.from(dequantize('f32', src.read(freqs.offset, freqs.bytes), rotDim / 2));
    if (!config.ropeFactors.every((f) => f > 0 && Number.isFinite(f))) m.fail("'rope_freqs.weight' holds a factor that is not a positive number");
  }

  let weights: WeightMap = new Map();
  for (const t of g.tensors.values()) {
    const dtype = t.type.toLowerCase() as DType;
    if (!WEIGHT_DTYPES.includes(dtype)) m.fail(`tensor '${t.name}' is ${t.type}; tapir runs F32, F16, BF16, Q8_0 and Q4_0 tensors`);
    const n = t.dims.reduce((a, b) => a * b, 1);
    const shape = [...t.dims].reverse();
    // vectors (norm weights) are tiny: keep them in f32 so every op that reads them stays simple
    weights.set(t.name, t.dims.length === 1 && dtype !== 'f32' ? weightOf(shape, 'f32', dequantize(dtype, src.read(t.offset, t.bytes), n)) : lazyWeight(src, shape, dtype, t.offset, t.bytes));
  }
  weights = asLlamaLayout(weights, config, family, m.fail);

  const model = m.str('tokenizer.ggml.model') as Vocab['model'];
  if (model !== 'llama' && model !== 'gpt2') m.fail(`tokenizer '${model}' is not supported (tapir reads 'llama' SentencePiece and 'gpt2' byte-level BPE vocabularies)`);
  const merges = model === 'gpt2' ? m.arr('tokenizer.ggml.merges').map((x, i) => (typeof x === 'string' ? x : m.fail(`merge ${i} is not a string`))) : undefined;
  const scores = g.metadata.has('tokenizer.ggml.scores') ? m.arr('tokenizer.ggml.scores') : [];
  const types = g.metadata.has('tokenizer.ggml.token_type') ? m.arr('tokenizer.ggml.token_type') : [];
  const nTok = tokens.length;
  if (nTok !== config.vocabSize) m.fail(`the vocabulary has ${nTok} tokens but token_embd.weight has ${config.vocabSize} rows`);
  if ((scores.length && scores.length !== nTok) || (types.length && types.length !== nTok)) m.fail('tokenizer scores/types do not match the token count');
  const addBos = g.metadata.get('tokenizer.ggml.add_bos_token');
  const vocab: Vocab = {
    model,
    merges,
    pre: model === 'gpt2' ? m.str('tokenizer.ggml.pre', 'default') : undefined,
    addBos: typeof addBos === 'boolean' ? addBos : model === 'llama',
    pieces: tokens.map((t, i) => (typeof t !== 'string' ? m.fail(`token ${i} is not a string`) : model === 'llama' ? t.replace(/\u2581/g, ' ') : t)),
    scores: Float32Array.from(scores.length ? scores.map(Number) : new Array(nTok).fill(0)),
    types: Uint8Array.from(types.length ? types.map(Number) : new Array(nTok).fill(TokenType.Normal)),
    bos: m.num('tokenizer.ggml.bos_token_id', 1),
    eos: m.num('tokenizer.ggml.eos_token_id', 2),
    unk: m.num('tokenizer.ggml.unknown_token_id', 0),
    addSpacePrefix: g.metadata.get('tokenizer.ggml.add_space_prefix') !== false,
    ...(typeof g.metadata.get('tokenizer.chat_template') === 'string' ? { chatTemplate: g.metadata.get('tokenizer.chat_template') as string } : {}),
  };
  for (const k of ['bos', 'eos', 'unk'] as const)
    if (!Number.isInteger(vocab[k]) || vocab[k] < 0 || vocab[k] >= nTok) m.fail(`tokenizer ${k} id ${vocab[k]} is outside the vocabulary`);
  return { config, weights, vocab, qkInterleavedAtLoad: family.neoxRope };
}

/** The family's tensors as the Llama graph reads them: fused ones split by rows, NeoX RoPE rows interleaved. */
function asLlamaLayout(weights: WeightMap, c: LlamaConfig, f: Family, fail: (m: string) => never): WeightMap {
  const out: WeightMap = new Map();
  for (const [name, w] of weights) {
    const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(name);
    const parts = m && f.fused?.[m[2]!];
    if (!parts) { out.set(name, w); continue; }
    const rows = parts.map(([, r]) => r(c));
    if (w.shape.length !== 2 || rows.reduce((a, b) => a + b, 0) !== w.shape[0]) fail(`'${name}' should have ${rows.join(' + ')} rows, got [${w.shape}]`);
    let start = 0;
    parts.forEach(([part], i) => {
      out.set(`blk.${m[1]}.${part}.weight`, rowRange(w, start, rows[i]!));
      start += rows[i]!;
    });
  }
  const hs = headSize(c);
  if (f.neoxRope) {
    for (const [name, w] of out) {
      const m = /\.(attn_q|attn_k)(\.weight|\.bias|_norm\.weight)$/.exec(name);
      if (!m) continue;
      const heads = m[2] === '_norm.weight' ? 1 : m[1] === 'attn_q' ? c.nHeads : c.nKvHeads;
      if (w.shape[0] !== heads * hs) fail(`'${name}' should have ${heads * hs} rows, got [${w.shape}]`);
      out.set(name, permuteRows(w, heads, true, c.rotDim));
    }
  }
  // q, k and v biases as the graph reads them: one vector [q; k; v]
  if (c.qkvBias) {
    for (let l = 0; l < c.nLayers; l++) {
      const parts = ['q', 'k', 'v'].map((p) => out.get(`blk.${l}.attn_${p}.bias`) ?? fail(`tensor 'blk.${l}.attn_${p}.bias' is missing`));
      const rows = [qWidth(c), c.nKvHeads * hs, c.nKvHeads * hs];
      parts.forEach((b, i) => { if (b.shape.length !== 1 || b.shape[0] !== rows[i] || b.dtype !== 'f32') fail(`'blk.${l}.attn_${'qkv'[i]}.bias' should be [${rows[i]}], got [${b.shape}]`); });
      out.set(`blk.${l}.attn_qkv.bias`, {
        shape: [rows[0]! + rows[1]! + rows[2]!], dtype: 'f32',
        get bytes() { const all = new Uint8Array((rows[0]! + rows[1]! + rows[2]!) * 4); let at = 0; for (const b of parts) { all.set(b.bytes, at); at += b.bytes.byteLength; } return all; },
      });
    }
  }
  return out;
}

/** Rows [start, start + count) of a 2-D weight, read when needed. */
function rowRange(w: WeightTensor, start: number, count: number): WeightTensor {
  return {
    shape: [count, w.shape[1]!], dtype: w.dtype,
    get bytes() { return weightRows(w, start, count); },
    readRows: (s: number, n: number) => weightRows(w, start + s, n),
    ...(w.readRowsInto ? { readRowsInto: (s: number, n: number, into: Uint8Array) => w.readRowsInto!(start + s, n, into) } : {}),
  };
}
