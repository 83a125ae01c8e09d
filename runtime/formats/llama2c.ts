// llama2.c checkpoints (`.bin`, version 0 "legacy" and version 1 fp32) and its tokenizer.bin.
// Weights come out under GGUF tensor names, so the rest of tapir sees one kind of model.
import { type LlamaConfig } from '../../models/llama.js';
import { Reader } from './reader.js';
import { lazyWeight, memorySource, type ByteSource } from './source.js';
import { TokenType, type Vocab } from '../tokenizers/common.js';
import type { WeightMap } from '../weights.js';

const MAGIC_V1 = 0x616b3432; // "ak42"
const MAX_DIM = 1 << 20;

export function parseLlama2c(source: ByteSource | Uint8Array, file: string): { config: LlamaConfig; weights: WeightMap } {
  const src = source instanceof Uint8Array ? memorySource(source) : source;
  const bytes = src.read(0, Math.min(256, src.size)); // the header; weights are read when needed
  const r: Reader = new Reader(bytes, file);
  let version = 0;
  if (bytes.byteLength >= 8 && new DataView(bytes.buffer, bytes.byteOffset, 8).getUint32(0, true) === MAGIC_V1) {
    r.pos = 4;
    version = r.i32('version');
    if (version !== 1) r.fail(`llama2.c checkpoint version ${version} is not supported (versions 0 and 1, float32)`);
  }
  const h = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'].map((k) => [k, r.i32(`header ${k}`)] as const);
  const hd = Object.fromEntries(h) as Record<string, number>;
  let shared = hd.vocab_size! > 0;
  if (version === 1) shared = r.u8('shared_classifier flag') === 1;
  const vocab = Math.abs(hd.vocab_size!);
  for (const [k, v] of h) {
    const val = k === 'vocab_size' ? vocab : v;
    if (!(val >= 1 && val <= MAX_DIM)) r.fail(`header ${k} = ${v} is not a plausible size (is this a llama2.c checkpoint?)`);
  }
  const { dim, hidden_dim: hidden, n_layers: L, n_heads: nh, n_kv_heads: nkv, seq_len: seq } = hd as Record<string, number>;
  if (dim! % nh! !== 0) r.fail(`dim ${dim} is not divisible by n_heads ${nh}`);
  if (nh! % nkv! !== 0) r.fail(`n_heads ${nh} is not divisible by n_kv_heads ${nkv}`);
  const hs = dim! / nh!, kvDim = nkv! * hs;
  const config: LlamaConfig = {
    dim: dim!, hiddenDim: hidden!, nLayers: L!, nHeads: nh!, nKvHeads: nkv!, vocabSize: vocab, contextLength: seq!,
    ropeTheta: 10000, rotDim: hs, rmsEps: 1e-5, tiedEmbeddings: shared,
  };
  let at = version === 1 ? 256 : 28;
  const weights: WeightMap = new Map();
  // Each array in file order: [name per layer or once, shape]. Sizes are checked against the file.
  const take = (shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    if (at + n * 4 > src.size) r.fail(`truncated: the weights need more than the file's ${src.size} bytes`);
    const offset = at;
    at += n * 4;
    return offset;
  };
  const perLayer = (name: string, shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const offset = take([L!, ...shape]);
    for (let l = 0; l < L!; l++) weights.set(`blk.${l}.${name}.weight`, lazyWeight(src, shape, 'f32', offset + l * n * 4, n * 4));
  };
  const once = (name: string, shape: number[]) => weights.set(name, lazyWeight(src, shape, 'f32', take(shape), shape.reduce((a, b) => a * b, 1) * 4));
  if (version === 0) {
    once('token_embd.weight', [vocab, dim!]);
    perLayer('attn_norm', [dim!]);
  } else {
    perLayer('attn_norm', [dim!]);
    perLayer('ffn_norm', [dim!]);
    once('output_norm.weight', [dim!]);
    once('token_embd.weight', [vocab, dim!]);
  }
  perLayer('attn_q', [dim!, dim!]);
  perLayer('attn_k', [kvDim, dim!]);
  perLayer('attn_v', [kvDim, dim!]);
  perLayer('attn_output', [dim!, dim!]);
  if (version === 0) perLayer('ffn_norm', [dim!]);
  perLayer('ffn_gate', [hidden!, dim!]);
  perLayer('ffn_down', [dim!, hidden!]);
  perLayer('ffn_up', [hidden!, dim!]);
  if (version === 0) {
    once('output_norm.weight', [dim!]);
    take([seq!, hs / 2]); // freq_cis_real, unused: RoPE tables are recomputed in float64
    take([seq!, hs / 2]); // freq_cis_imag
  }
  if (!shared) once('output.weight', [vocab, dim!]);
  return { config, weights };
}

/** llama2.c tokenizer.bin: max_token_length, then per token a float score, a length and the bytes. */
export function parseLlama2cTokenizer(bytes: Uint8Array, file: string, vocabSize: number): Vocab {
  const r: Reader = new Reader(bytes, file);
  const maxLen = r.i32('max_token_length');
  if (!(maxLen >= 1 && maxLen <= 1 << 16)) r.fail(`max_token_length ${maxLen} is implausible (is this a tokenizer.bin?)`);
  const pieces: string[] = [], scores = new Float32Array(vocabSize), types = new Uint8Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) {
    scores[i] = r.f32(`score of token ${i}`);
    const len = r.i32(`length of token ${i}`);
    if (len < 0 || len > maxLen) r.fail(`token ${i} has length ${len}, past max_token_length ${maxLen}`);
    pieces.push(r.utf8(len, `token ${i}`));
  }
  // llama2.c's convention: 0 <unk>, 1 BOS, 2 EOS; <0xXX> pieces are byte fallback
  pieces.forEach((p, i) => {
    types[i] = i === 0 ? TokenType.Unknown : i <= 2 ? TokenType.Control : /^<0x[0-9A-Fa-f]{2}>$/.test(p) ? TokenType.Byte : TokenType.Normal;
  });
  return { model: 'llama', pieces, scores, types, bos: 1, eos: 2, unk: 0, addBos: true, addSpacePrefix: true };
}
