// A Llama model from a parsed GGUF file: config from `llama.*` metadata, F32 weights, and the
// SentencePiece vocabulary from `tokenizer.ggml.*`.
import { FormatError } from '../../compiler/errors.js';
import type { LlamaConfig } from '../../models/llama.js';
import { TokenType, type Vocab } from '../tokenizer.js';
import type { GGUFFile, GGUFValue } from './gguf.js';
import { lazyWeight, memorySource, type ByteSource } from './source.js';
import { weightOf, type WeightMap } from '../weights.js';
import { dequantize, WEIGHT_DTYPES } from '../../ops/dequant.js';
import type { DType } from '../../compiler/graph.js';

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

export function llamaFromGGUF(g: GGUFFile, src: ByteSource | Uint8Array, file: string): { config: LlamaConfig; weights: WeightMap; vocab: Vocab } {
  if (src instanceof Uint8Array) src = memorySource(src);
  const m = getter(g, file);
  const arch = m.str('general.architecture');
  if (arch !== 'llama') m.fail(`architecture '${arch}' is not supported yet (tapir runs 'llama')`);
  const dim = m.size('llama.embedding_length');
  const nHeads = m.size('llama.attention.head_count');
  const nKvHeads = m.size('llama.attention.head_count_kv', nHeads);
  if (dim % nHeads !== 0) m.fail(`embedding_length ${dim} is not divisible by head_count ${nHeads}`);
  if (nHeads % nKvHeads !== 0) m.fail(`head_count ${nHeads} is not divisible by head_count_kv ${nKvHeads}`);
  const hs = dim / nHeads;
  const rotDim = m.size('llama.rope.dimension_count', hs);
  if (rotDim > hs || rotDim % 2) m.fail(`rope.dimension_count ${rotDim} must be even and at most the head size ${hs}`);
  const tokens = m.arr('tokenizer.ggml.tokens');
  const emb = g.tensors.get('token_embd.weight') ?? m.fail("tensor 'token_embd.weight' is missing");
  const config: LlamaConfig = {
    dim, nHeads, nKvHeads, rotDim,
    hiddenDim: m.size('llama.feed_forward_length'),
    nLayers: m.size('llama.block_count'),
    vocabSize: emb.dims[1] ?? m.fail("'token_embd.weight' should be 2-D"),
    contextLength: m.size('llama.context_length'),
    ropeTheta: m.num('llama.rope.freq_base', 10000),
    rmsEps: m.num('llama.attention.layer_norm_rms_epsilon', 1e-5),
    tiedEmbeddings: !g.tensors.has('output.weight'),
  };
  if (!(config.ropeTheta > 0) || !(config.rmsEps > 0)) m.fail('rope.freq_base and layer_norm_rms_epsilon must be positive');
  // Llama 3 RoPE scaling, as llama.cpp stores it: one divisor per rotated pair
  const freqs = g.tensors.get('rope_freqs.weight');
  if (freqs) {
    if (freqs.type !== 'F32' || freqs.dims.length !== 1 || freqs.dims[0] !== rotDim / 2) m.fail(`'rope_freqs.weight' must be F32 [${rotDim / 2}]`);
    config.ropeFactors = Array.from(dequantize('f32', src.read(freqs.offset, freqs.bytes), rotDim / 2));
    if (!config.ropeFactors.every((f) => f > 0 && Number.isFinite(f))) m.fail("'rope_freqs.weight' holds a factor that is not a positive number");
  }

  const weights: WeightMap = new Map();
  for (const t of g.tensors.values()) {
    const dtype = t.type.toLowerCase() as DType;
    if (!WEIGHT_DTYPES.includes(dtype)) m.fail(`tensor '${t.name}' is ${t.type}; tapir runs F32, F16, BF16, Q8_0 and Q4_0 tensors`);
    const n = t.dims.reduce((a, b) => a * b, 1);
    const shape = [...t.dims].reverse();
    // vectors (norm weights) are tiny: keep them in f32 so every op that reads them stays simple
    weights.set(t.name, t.dims.length === 1 && dtype !== 'f32' ? weightOf(shape, 'f32', dequantize(dtype, src.read(t.offset, t.bytes), n)) : lazyWeight(src, shape, dtype, t.offset, t.bytes));
  }

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
  };
  for (const k of ['bos', 'eos', 'unk'] as const)
    if (!Number.isInteger(vocab[k]) || vocab[k] < 0 || vocab[k] >= nTok) m.fail(`tokenizer ${k} id ${vocab[k]} is outside the vocabulary`);
  return { config, weights, vocab };
}
