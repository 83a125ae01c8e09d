// A loaded Llama model written as an F32 GGUF file with llama.cpp's key and tensor names.
import type { ModelSource } from '../model.js';
import { type LlamaConfig, headSize } from '../../models/llama.js';
import { FAMILIES, type FamilyName } from '../../models/families.js';
import type { Vocab } from '../tokenizers/common.js';
import { GGML_TYPE_ID, quantize } from '../../ops/dequant.js';
import { writeGGUF, type GGUFWriteTensor, type GGUFWriteValue } from './gguf_write.js';

/** The metadata llama.cpp reads for a model of one of the Llama-graph families and its tokenizer. */
export function llamaMetadata(c: LlamaConfig, v: Vocab, family: FamilyName = 'llama'): [string, GGUFWriteValue][] {
  const u32 = (value: number): GGUFWriteValue => ({ type: 'u32', value });
  const f32 = (value: number): GGUFWriteValue => ({ type: 'f32', value });
  const arch = FAMILIES[family].arch;
  const granite: [string, GGUFWriteValue][] = family === 'granite'
    ? [['embedding_scale', c.embeddingScale ?? 1], ['residual_scale', c.residualScale ?? 1], ['attention.scale', c.attentionScale ?? 1 / Math.sqrt(headSize(c))], ['logit_scale', c.logitScale ?? 1]]
      .map(([k, x]) => [`granite.${k}`, f32(x as number)])
    : [];
  const metadata: [string, GGUFWriteValue][] = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.alignment', u32(32)],
    [`${arch}.context_length`, u32(c.contextLength)],
    [`${arch}.embedding_length`, u32(c.dim)],
    [`${arch}.feed_forward_length`, u32(c.hiddenDim)],
    [`${arch}.block_count`, u32(c.nLayers)],
    [`${arch}.attention.head_count`, u32(c.nHeads)],
    [`${arch}.attention.head_count_kv`, u32(c.nKvHeads)],
    [`${arch}.rope.dimension_count`, u32(c.rotDim)],
    ...(c.headDim !== undefined ? ([[`${arch}.attention.key_length`, u32(c.headDim)], [`${arch}.attention.value_length`, u32(c.headDim)]] as [string, GGUFWriteValue][]) : []),
    [`${arch}.rope.freq_base`, f32(c.ropeTheta)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(c.rmsEps)],
    ...granite,
    ['tokenizer.ggml.model', { type: 'string', value: v.model }],
    ['tokenizer.ggml.tokens', { type: 'array', elem: 'string', value: v.model === 'llama' ? v.pieces.map((p) => p.replace(/ /g, '\u2581')) : v.pieces }],
    ...(v.model === 'gpt2' ? ([
      ['tokenizer.ggml.merges', { type: 'array', elem: 'string', value: v.merges ?? [] }],
      ['tokenizer.ggml.pre', { type: 'string', value: v.pre ?? 'default' }],
    ] as [string, GGUFWriteValue][]) : []),
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: v.addBos }],
    ['tokenizer.ggml.scores', { type: 'array', elem: 'f32', value: Array.from(v.scores) }],
    ['tokenizer.ggml.token_type', { type: 'array', elem: 'i32', value: Array.from(v.types) }],
    ['tokenizer.ggml.bos_token_id', u32(v.bos)],
    ['tokenizer.ggml.eos_token_id', u32(v.eos)],
    ['tokenizer.ggml.unknown_token_id', u32(v.unk)],
    ...(v.chatTemplate ? ([['tokenizer.chat_template', { type: 'string', value: v.chatTemplate }]] as [string, GGUFWriteValue][]) : []),
  ];
  return metadata;
}

/** RoPE frequency divisors as llama.cpp stores them, if the model has them. */
export const ropeFreqsTensor = (c: LlamaConfig): GGUFWriteTensor[] =>
  c.ropeFactors ? [{ name: 'rope_freqs.weight', dims: [c.ropeFactors.length], type: 0, data: quantize('f32', c.ropeFactors) }] : [];

export function writeLlamaGGUF(src: ModelSource, opts: { dropTensors?: string[] } = {}): Uint8Array {
  const metadata = llamaMetadata(src.config, src.vocab);
  const drop = new Set(opts.dropTensors ?? []);
  const extra = ropeFreqsTensor(src.config);
  const tensors: GGUFWriteTensor[] = [...src.weights.entries()]
    .filter(([name]) => !drop.has(name) && name !== 'rope_freqs.weight')
    .map(([name, w]) => ({
      name,
      dims: [...w.shape].reverse(),
      type: GGML_TYPE_ID[w.dtype]!,
      data: w.bytes,
    }));
  return writeGGUF(metadata, [...tensors, ...extra]);
}
