// Hugging Face Llama checkpoints: config.json, tokenizer.json and *.safetensors. Tensors are renamed
// to GGUF names, and Q/K rows are permuted from HF's rotate-half RoPE layout (pairs i, i + hs/2) to the
// interleaved pairs (2i, 2i+1) tapir's RoPE turns — the permutation llama.cpp's converter applies.
import { FormatError } from '../../compiler/errors.js';
import { type LlamaConfig, headSize } from '../../models/llama.js';
import { llama3RopeFactors } from '../../ops/rope_table.js';
import { TokenType, type Vocab } from '../tokenizers/common.js';
import { PRE_TOKENIZER_SOURCES } from '../tokenizers/bpe.js';
import type { WeightMap, WeightTensor } from '../weights.js';
import { parseSafetensors } from './safetensors.js';
import { lazyWeight, type ByteSource } from './source.js';
import type { DType } from '../../compiler/ir/dtype.js';

const LAYER_NAMES: [string, string][] = [
  ['input_layernorm', 'attn_norm'], ['self_attn.q_proj', 'attn_q'], ['self_attn.k_proj', 'attn_k'], ['self_attn.v_proj', 'attn_v'],
  ['self_attn.o_proj', 'attn_output'], ['post_attention_layernorm', 'ffn_norm'], ['mlp.gate_proj', 'ffn_gate'], ['mlp.up_proj', 'ffn_up'], ['mlp.down_proj', 'ffn_down'],
];

/** HF tensor name -> GGUF tensor name (undefined for tensors tapir does not use, e.g. rotary caches). */
export function ggufName(hf: string): string | undefined {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(hf);
  if (!m) return undefined;
  const pair = LAYER_NAMES.find(([h]) => h === m[2]);
  return pair ? `blk.${m[1]}.${pair[1]}.weight` : undefined;
}
export function hfName(gguf: string): string | undefined {
  if (gguf === 'token_embd.weight') return 'model.embed_tokens.weight';
  if (gguf === 'output_norm.weight') return 'model.norm.weight';
  if (gguf === 'output.weight') return 'lm_head.weight';
  const m = /^blk\.(\d+)\.(.+)\.weight$/.exec(gguf);
  const pair = m && LAYER_NAMES.find(([, g]) => g === m[2]);
  return pair ? `model.layers.${m![1]}.${pair[0]}.weight` : undefined;
}

/** Permute the rows of a [nHeads*hs, cols] matrix between the two RoPE layouts (when read). */
export function permuteRows(w: WeightTensor, nHeads: number, toInterleaved: boolean, rotDim?: number): WeightTensor {
  return { shape: w.shape, dtype: w.dtype, get bytes() { return permuted(w.bytes, w.shape[0]!, nHeads, toInterleaved, rotDim); } };
}

/** Rows (or elements, for a vector) of each head between the two RoPE layouts; with partial rotary
 *  only the first `rotDim` of a head turn, and the rest keep their place. */
function permuted(bytes: Uint8Array, rows: number, nHeads: number, toInterleaved: boolean, rotDim = rows / nHeads): Uint8Array {
  const hs = rows / nHeads, rowBytes = bytes.byteLength / rows;
  const out = bytes.slice();
  for (let h = 0; h < nHeads; h++)
    for (let i = 0; i < rotDim / 2; i++)
      for (let j = 0; j < 2; j++) {
        const inter = h * hs + 2 * i + j, half = h * hs + j * (rotDim / 2) + i;
        const [dst, src] = toInterleaved ? [inter, half] : [half, inter];
        out.set(bytes.subarray(src * rowBytes, (src + 1) * rowBytes), dst * rowBytes);
      }
  return out;
}

type Json = Record<string, unknown>;

export function configFromHF(cfg: Json, file: string): LlamaConfig {
  const fail = (m: string): never => { throw new FormatError(file, m); };
  const size = (k: string, fallback?: number) => {
    const v = cfg[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1 << 24) return fail(`'${k}' should be a positive integer`);
    return v;
  };
  const num = (k: string, fallback: number) => {
    const v = cfg[k] ?? fallback;
    if (typeof v !== 'number' || !(v > 0)) return fail(`'${k}' should be a positive number`);
    return v;
  };
  const arch = Array.isArray(cfg.architectures) ? cfg.architectures[0] : cfg.model_type;
  if (arch !== 'LlamaForCausalLM' && arch !== 'llama') fail(`architecture '${String(arch)}' is not supported yet (tapir runs LlamaForCausalLM)`);
  const dim = size('hidden_size'), nHeads = size('num_attention_heads'), nKvHeads = size('num_key_value_heads', nHeads);
  const hs = size('head_dim', dim / nHeads);
  if (hs * nHeads !== dim) fail('head_dim * num_attention_heads must equal hidden_size');
  if (nHeads % nKvHeads) fail('num_attention_heads must be a multiple of num_key_value_heads');
  const c: LlamaConfig = {
    dim, nHeads, nKvHeads, rotDim: hs,
    hiddenDim: size('intermediate_size'), nLayers: size('num_hidden_layers'), vocabSize: size('vocab_size'),
    contextLength: size('max_position_embeddings', 2048), ropeTheta: num('rope_theta', 10000), rmsEps: num('rms_norm_eps', 1e-5),
    tiedEmbeddings: cfg.tie_word_embeddings === true,
  };
  const rs = cfg.rope_scaling as Json | null | undefined;
  if (rs) {
    const type = rs.rope_type ?? rs.type;
    if (type !== 'llama3') fail(`rope_scaling type '${String(type)}' is not supported (tapir knows 'llama3')`);
    const f = (k: string) => (typeof rs[k] === 'number' && (rs[k] as number) > 0 ? (rs[k] as number) : fail(`rope_scaling.${k} should be a positive number`));
    c.ropeFactors = llama3RopeFactors({ factor: f('factor'), lowFreqFactor: f('low_freq_factor'), highFreqFactor: f('high_freq_factor'), originalContext: f('original_max_position_embeddings') }, hs, c.ropeTheta);
  }
  return c;
}

/** Rename HF tensors to GGUF names and put Q/K rows in interleaved order. */
export function weightsFromHF(hf: Map<string, WeightTensor>, c: LlamaConfig): WeightMap {
  const out: WeightMap = new Map();
  for (const [name, w] of hf) {
    const g = ggufName(name);
    if (!g) continue;
    out.set(g, g.endsWith('attn_q.weight') ? permuteRows(w, c.nHeads, true) : g.endsWith('attn_k.weight') ? permuteRows(w, c.nKvHeads, true) : w);
  }
  return out;
}

/** tokenizer.json (byte-level BPE) -> vocabulary. */
export function vocabFromTokenizerJson(tj: Json, cfg: Json, file: string, vocabSize: number): Vocab {
  const fail = (m: string): never => { throw new FormatError(file, m); };
  const model = tj.model as Json | undefined;
  if (!model || model.type !== 'BPE') fail(`tokenizer model '${String(model?.type)}' is not supported (tapir reads BPE)`);
  const byteLevel = JSON.stringify(tj.pre_tokenizer ?? null).includes('"ByteLevel"') || JSON.stringify(tj.decoder ?? null).includes('"ByteLevel"');
  if (!byteLevel) fail('only byte-level BPE tokenizer.json files are supported');
  const pieces: string[] = new Array(vocabSize).fill('');
  const types = new Uint8Array(vocabSize).fill(TokenType.Unused);
  const put = (text: string, id: unknown, type: TokenType) => {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= vocabSize) fail(`token '${text}' has id ${String(id)} outside the vocabulary of ${vocabSize}`);
    pieces[id as number] = text;
    types[id as number] = type;
  };
  if (typeof model!.vocab !== 'object' || model!.vocab === null) fail('tokenizer.json has no model.vocab');
  for (const [text, id] of Object.entries(model!.vocab as Json)) put(text, id, TokenType.Normal);
  for (const t of (Array.isArray(tj.added_tokens) ? tj.added_tokens : []) as Json[]) put(String(t.content), t.id, t.special ? TokenType.Control : TokenType.UserDefined);
  const merges = (Array.isArray(model!.merges) ? model!.merges : []).map((m: unknown) => (Array.isArray(m) ? m.join(' ') : typeof m === 'string' ? m : fail('a merge is neither a string nor a pair')));
  const pattern = JSON.stringify(tj.pre_tokenizer ?? null);
  const pre = pattern.includes('\\\\p{N}{1,3}') ? 'llama-bpe' : 'default';
  const idOf = (k: string, names: string[]) => {
    const v = Array.isArray(cfg[k]) ? (cfg[k] as unknown[])[0] : cfg[k];
    if (typeof v === 'number') return v;
    const found = names.map((n) => pieces.indexOf(n)).find((i) => i >= 0);
    return found ?? fail(`no ${k} in config.json`);
  };
  const bos = idOf('bos_token_id', ['<|begin_of_text|>', '<s>']);
  const eos = idOf('eos_token_id', ['<|end_of_text|>', '</s>']);
  const post = JSON.stringify(tj.post_processor ?? null);
  return {
    model: 'gpt2', pre, pieces, types, merges, scores: new Float32Array(vocabSize), bos, eos, unk: eos,
    addBos: post.includes(JSON.stringify(pieces[bos])), addSpacePrefix: false,
  };
}

/** The tokenizer.json a byte-level vocabulary is written as. */
export function tokenizerJsonFor(v: Vocab): Json {
  const regular: Json = {}, added: Json[] = [];
  v.pieces.forEach((p, id) => {
    if (v.types[id] === TokenType.Control || v.types[id] === TokenType.UserDefined)
      added.push({ id, content: p, single_word: false, lstrip: false, rstrip: false, normalized: false, special: v.types[id] === TokenType.Control });
    else regular[p] = id;
  });
  const source = PRE_TOKENIZER_SOURCES[v.pre ?? 'default']!;
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: source }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ] },
    post_processor: v.addBos
      ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: v.pieces[v.bos], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [], special_tokens: {} }
      : null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: regular, merges: v.merges ?? [] },
  };
}

export function hfConfigFor(c: LlamaConfig, v: Vocab, dtype: DType, ropeScaling?: Json): Json {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: c.dim, intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers, num_attention_heads: c.nHeads, num_key_value_heads: c.nKvHeads, head_dim: headSize(c),
    vocab_size: c.vocabSize, max_position_embeddings: c.contextLength, rope_theta: c.ropeTheta, rms_norm_eps: c.rmsEps,
    tie_word_embeddings: c.tiedEmbeddings, bos_token_id: v.bos, eos_token_id: v.eos, torch_dtype: dtype === 'f32' ? 'float32' : dtype === 'f16' ? 'float16' : 'bfloat16',
    rope_scaling: ropeScaling ?? null,
  };
}

/** A JSON object from bytes, or a FormatError naming the file. */
export function parseJsonObject(bytes: Uint8Array, file: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new FormatError(file, `is not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(file, 'is not a JSON object');
  return v as Json;
}

export interface HFParts {
  config: Json; configFile: string;
  tokenizer: Json; tokenizerFile: string;
  shards: { file: string; src: ByteSource }[];
  dir: string;
}

/** A model from a folder's parsed config and tokenizer and its safetensors shards. */
export function hfFromParts(p: HFParts): { config: LlamaConfig; weights: WeightMap; vocab: Vocab; file: string; qkInterleavedAtLoad: boolean } {
  const config = configFromHF(p.config, p.configFile);
  if (!p.shards.length) throw new FormatError(p.dir, 'has no *.safetensors files');
  const hf = new Map<string, WeightTensor>();
  for (const { file, src } of p.shards) {
    const len = src.size >= 8 ? new DataView(src.read(0, 8).slice().buffer).getBigUint64(0, true) : 0n;
    const head = src.read(0, Number(BigInt(src.size) < 8n + len ? BigInt(src.size) : 8n + len));
    const st = parseSafetensors(head, file, src.size);
    for (const t of st.tensors.values()) {
      if (hf.has(t.name)) throw new FormatError(file, `tensor '${t.name}' is also in another shard`);
      hf.set(t.name, lazyWeight(src, t.shape, t.dtype, t.begin, t.end - t.begin));
    }
  }
  const vocab = vocabFromTokenizerJson(p.tokenizer, p.config, p.tokenizerFile, config.vocabSize);
  return { config, weights: weightsFromHF(hf, config), vocab, file: p.dir, qkInterleavedAtLoad: true };
}
