// Synthetic models: the shapes of real ones, seeded random weights at a realistic scale, and a
// learned tokenizer — test subjects that need no downloads. Weight scales keep activations O(1)
// through the layers and make next-token distributions peaked (uniform-ish logits hide bugs).
import { UsageError } from '../../compiler/errors.js';
import { type LlamaConfig, headSize } from '../../models/llama.js';
import { quantize } from '../../ops/dequant.js';
import { llama3RopeFactors } from '../../ops/rope_table.js';
import type { Vocab } from '../tokenizers/common.js';
import type { WeightMap } from '../weights.js';
import { byteLevelVocab, sentencePieceVocab } from './vocab.js';
import { FAMILIES, type FamilyName } from '../../models/families.js';
import { type DType, BLOCK, WEIGHT_DTYPES, rawBytes } from '../../compiler/ir/dtype.js';

export interface Preset {
  config: Omit<LlamaConfig, 'ropeFactors'>;
  /** Llama 3 frequency scaling */
  llama3Scaling?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number };
  tokenizer: 'bpe' | 'spm';
}

const LLAMA3_SCALING = { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 };
const llama = (c: Partial<LlamaConfig> & Pick<LlamaConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'vocabSize' | 'contextLength'>): Preset['config'] =>
  ({ ropeTheta: 10000, rmsEps: 1e-5, tiedEmbeddings: false, rotDim: c.dim / c.nHeads, ...c });

export const PRESETS: Readonly<Record<string, Preset>> = {
  tiny: {
    config: llama({ dim: 128, hiddenDim: 344, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 1024, contextLength: 131072, ropeTheta: 500000 }),
    llama3Scaling: LLAMA3_SCALING, tokenizer: 'bpe',
  },
  stories260K: { config: llama({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, contextLength: 512 }), tokenizer: 'spm' },
  stories15M: { config: llama({ dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, contextLength: 256 }), tokenizer: 'spm' },
  'llama-3.2-1b': {
    config: llama({ dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, vocabSize: 128256, contextLength: 131072, ropeTheta: 500000, tiedEmbeddings: true }),
    llama3Scaling: LLAMA3_SCALING, tokenizer: 'bpe',
  },
  'llama-3.2-3b': {
    config: llama({ dim: 3072, hiddenDim: 8192, nLayers: 28, nHeads: 24, nKvHeads: 8, vocabSize: 128256, contextLength: 131072, ropeTheta: 500000, tiedEmbeddings: true }),
    llama3Scaling: LLAMA3_SCALING, tokenizer: 'bpe',
  },
};

/** Two xorshift32 streams with Box–Muller normals: fast, seeded, the same on every machine. */
export class NormalRng {
  private a: number;
  private b: number;
  private spare: number | undefined;
  constructor(seed: number) {
    // spread the seed (splitmix-style) so nearby seeds give unrelated streams; never zero
    const mix = (x: number) => {
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
      return (x ^ (x >>> 16)) | 1;
    };
    this.a = mix(seed | 0);
    this.b = mix((seed / 4294967296) ^ 0x9e3779b9);
  }
  /** uniform in (0, 1): two xorshift32 streams combined */
  uniform(): number {
    let a = this.a, b = this.b;
    a ^= a << 13; a ^= a >>> 17; a ^= a << 5;
    b ^= b << 17; b ^= b >>> 7; b ^= b << 11;
    this.a = a; this.b = b;
    return (((a >>> 0) ^ ((b >>> 0) >>> 6)) >>> 0) / 4294967296 + 1 / 8589934592;
  }
  normal(): number {
    if (this.spare !== undefined) { const s = this.spare; this.spare = undefined; return s; }
    const r = Math.sqrt(-2 * Math.log(this.uniform())), t = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }
  fill(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

export interface SynthTensor { name: string; shape: number[]; dtype: DType; bytes: number; produce(): Uint8Array }

/** Tensors are in the family's file layout (Phi-3's fused, NeoX rows as they are): the GGUF reader
 *  makes them the Llama graph's, so a synthetic model of another family runs only from its file. */
export interface SynthModel { config: LlamaConfig; vocab: Vocab; tensors: SynthTensor[]; family: FamilyName }

/** How each family's synthetic model differs from the preset's Llama: its tokenizer, RoPE base,
 *  flags, and multipliers away from 1 (so a dropped one shows in the logits). */
const FAMILY_SYNTH: Record<FamilyName, { tokenizer: 'bpe' | 'spm' | 'qwen2'; config: Partial<LlamaConfig>; llama3Scaling: boolean; chat: string }> = {
  llama: { tokenizer: 'bpe', config: {}, llama3Scaling: true, chat: 'llama3' },
  mistral: { tokenizer: 'spm', config: { ropeTheta: 1e6 }, llama3Scaling: false, chat: 'inst' },
  qwen2: { tokenizer: 'qwen2', config: { ropeTheta: 1e6, qkvBias: true }, llama3Scaling: false, chat: 'chatml' },
  // (heads wider than dim / nHeads, as in Qwen3-0.6B's 16 × 128 over 1024)
  qwen3: { tokenizer: 'qwen2', config: { ropeTheta: 1e6, qkNorm: true }, llama3Scaling: false, chat: 'chatml' },
  phi3: { tokenizer: 'spm', config: {}, llama3Scaling: false, chat: 'phi3' },
  granite: { tokenizer: 'bpe', config: { embeddingScale: 4, residualScale: 0.5, attentionScale: 0.25, logitScale: 2 }, llama3Scaling: false, chat: 'llama3' },
};

/** Chat templates in the families' formats (shortened: no tools), as GGUF files carry them. */
const CHAT_TEMPLATES: Record<string, string> = {
  llama3: "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
  chatml: '{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}',
  inst: "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]{% elif m.role == 'assistant' %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}",
  phi3: '{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}',
};

/** The model a preset describes, with tensors made lazily (one at a time when written). */
export function synthModel(presetName: string, dtype: DType, seed = 0, family: FamilyName = 'llama'): SynthModel {
  const preset = PRESETS[presetName];
  if (!preset) throw new UsageError(`unknown preset '${presetName}' (presets: ${Object.keys(PRESETS).join(', ')})`);
  if (!WEIGHT_DTYPES.includes(dtype)) throw new UsageError(`unknown dtype '${dtype}' (dtypes: ${WEIGHT_DTYPES.join(', ')})`);
  const f = FAMILY_SYNTH[family];
  if (!f) throw new UsageError(`unknown architecture '${family}' (architectures: ${Object.keys(FAMILIES).join(', ')})`);
  const c: LlamaConfig = { ...preset.config, ...f.config };
  if (family === 'phi3') c.rotDim = c.dim / c.nHeads / 2; // partial rotary, as some Phi models set it
  if (family === 'qwen3') c.rotDim = c.headDim = (3 * c.dim) / c.nHeads / 2; // heads 1.5 times dim / nHeads
  if (preset.llama3Scaling && f.llama3Scaling) c.ropeFactors = llama3RopeFactors(preset.llama3Scaling, c.rotDim, c.ropeTheta);
  const tokenizer = family === 'llama' ? preset.tokenizer : f.tokenizer;
  const vocab = tokenizer === 'spm' ? sentencePieceVocab(c.vocabSize) : byteLevelVocab(c.vocabSize, undefined, tokenizer === 'qwen2' ? 'qwen2' : 'llama-bpe');
  if (family !== 'llama' || presetName === 'tiny') vocab.chatTemplate = CHAT_TEMPLATES[f.chat];
  const hs = headSize(c), qDim = c.nHeads * hs, kvDim = c.nKvHeads * hs;
  const tensors: SynthTensor[] = [];
  let index = 0;
  // each tensor has its own seed, so any one can be made without making the ones before it
  const add = (name: string, shape: number[], std: number, mean = 0, forceF32 = false) => {
    const dt: DType = forceF32 || shape[shape.length - 1]! % BLOCK[dtype]![0] !== 0 ? 'f32' : dtype;
    const n = shape.reduce((a, b) => a * b, 1);
    const tensorSeed = seed * 1_000_003 + index++;
    tensors.push({ name, shape, dtype: dt, bytes: rawBytes(dt, n), produce: () => quantize(dt, new NormalRng(tensorSeed).fill(n, std, mean)) });
  };
  const out = (3 * (c.logitScale ?? 1)) / Math.sqrt(c.dim); // logits with a spread of a few units (after Granite's divisor): peaked distributions
  add('token_embd.weight', [c.vocabSize, c.dim], out);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    add(p + 'attn_norm.weight', [c.dim], 0.1, 1, true);
    // Qwen3's q/k norms undo the projections' scale: make it far from 1, so a skipped norm shows
    const qk = c.qkNorm ? 3 : 1;
    if (family === 'phi3') add(p + 'attn_qkv.weight', [qDim + 2 * kvDim, c.dim], 1 / Math.sqrt(c.dim));
    else {
      add(p + 'attn_q.weight', [qDim, c.dim], qk / Math.sqrt(c.dim));
      add(p + 'attn_k.weight', [kvDim, c.dim], qk / Math.sqrt(c.dim));
      add(p + 'attn_v.weight', [kvDim, c.dim], 1 / Math.sqrt(c.dim));
    }
    if (c.qkvBias) for (const [n, r] of [['q', qDim], ['k', kvDim], ['v', kvDim]] as const) add(`${p}attn_${n}.bias`, [r], 1, 0, true);
    if (c.qkNorm) for (const n of ['q', 'k']) add(`${p}attn_${n}_norm.weight`, [hs], 0.3, 1, true);
    add(p + 'attn_output.weight', [c.dim, qDim], 1 / Math.sqrt(qDim));
    add(p + 'ffn_norm.weight', [c.dim], 0.1, 1, true);
    if (family === 'phi3') add(p + 'ffn_up.weight', [2 * c.hiddenDim, c.dim], 1 / Math.sqrt(c.dim)); // gate rows, then up rows
    else {
      add(p + 'ffn_gate.weight', [c.hiddenDim, c.dim], 1 / Math.sqrt(c.dim));
      add(p + 'ffn_up.weight', [c.hiddenDim, c.dim], 1 / Math.sqrt(c.dim));
    }
    add(p + 'ffn_down.weight', [c.dim, c.hiddenDim], 1 / Math.sqrt(c.hiddenDim));
  }
  add('output_norm.weight', [c.dim], 0.1, 1, true);
  if (!c.tiedEmbeddings) add('output.weight', [c.vocabSize, c.dim], out);
  return { config: c, vocab, tensors, family };
}

/** Materialize every tensor (small models, tests). */
export function synthWeights(m: SynthModel): WeightMap {
  return new Map(m.tensors.map((t) => [t.name, { shape: t.shape, dtype: t.dtype, bytes: t.produce() }]));
}

/** Weights for timing only, made fast (a 1B model in seconds, not minutes): each value is a random
 *  sign and mantissa with an exponent near the tensor's scale, written straight as f16 bits (or as q8_0
 *  blocks of random int8 under a fixed scale). Small tensors (norms) and other dtypes are made as
 *  `synthWeights` makes them. The values are not a trained or a normal distribution: a benchmark's. */
export function benchWeights(m: SynthModel): WeightMap {
  return new Map(m.tensors.map((t) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n < 1 << 16 || (t.dtype !== 'f16' && t.dtype !== 'q8_0')) return [t.name, { shape: t.shape, dtype: t.dtype, bytes: t.produce() }];
    const bytes = new Uint8Array(t.bytes);
    const words = new Uint32Array(bytes.buffer, 0, bytes.length >> 2);
    let s = (t.name.length * 2654435761) | 1;
    // f16 halves 0x2000..0x27ff and their negatives: magnitudes 2^-7 .. 2^-6 (about 1/sqrt(dim) for dim 2048..16384)
    for (let i = 0; i < words.length; i++) {
      s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
      words[i] = t.dtype === 'f16' ? (s & 0x83ff83ff) | 0x20002000 : s;
    }
    if (t.dtype === 'q8_0') for (let b = 0; b < bytes.length; b += 34) { bytes[b] = 0x00; bytes[b + 1] = 0x14; } // scale 2^-10 (f16 0x1400)
    return [t.name, { shape: t.shape, dtype: t.dtype, bytes }];
  }));
}
