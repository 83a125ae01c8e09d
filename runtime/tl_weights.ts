// The model's weights by TransformerLens's names and in its shapes: W_E [d_vocab, d_model], W_U
// [d_model, d_vocab], blocks.L.attn.W_Q [n_heads, d_model, d_head] (W_K, W_V repeated over the heads
// of a group as TL's properties give them; _W_K, _W_V per kv head), W_O [n_heads, d_head, d_model],
// biases (zeros where the family has none, as TL), mlp.W_in / W_gate [d_model, d_mlp], W_out [d_mlp,
// d_model], ln1.w, ln2.w, ln_final.w. Values are the weights as loaded (dequantized, unfolded: TL's
// from_pretrained_no_processing), with W_q's and W_k's rows put back in the model's original order
// where the reader interleaved them for tapir's RoPE (NeoX-RoPE families, Hugging Face folders).
import { UsageError } from '../compiler/errors.js';
import { headSize, qWidth, type LlamaConfig } from '../models/llama.js';

export interface TlWeight { name: string; shape: number[]; data: Float32Array }

/** What TL-named weights need of a model (runtime/model.ts's Model is one). */
export interface TlWeightHost {
  readonly config: LlamaConfig;
  readonly qkInterleavedAtLoad: boolean;
  weightValues(name: string): Float64Array;
  weightDtype(name: string): string | undefined;
}

const PER_LAYER = ['attn.W_Q', 'attn.W_K', 'attn.W_V', 'attn._W_K', 'attn._W_V', 'attn.W_O', 'attn.b_Q', 'attn.b_K', 'attn.b_V', 'attn._b_K', 'attn._b_V', 'attn.b_O',
  'mlp.W_in', 'mlp.W_gate', 'mlp.W_out', 'mlp.b_in', 'mlp.b_out', 'ln1.w', 'ln2.w'] as const;

/** Every TL weight name of the model, in TL's order. */
export function tlWeightNames(c: LlamaConfig): string[] {
  return ['W_E', ...Array.from({ length: c.nLayers }, (_, l) => PER_LAYER.map((n) => `blocks.${l}.${n}`)).flat(), 'ln_final.w', 'W_U'];
}

/** Names a selector means: exact names, `*` for every layer (`blocks.*.attn.W_Q`), comma-separated. */
export function selectTlWeights(c: LlamaConfig, selector: string): string[] {
  const all = tlWeightNames(c), out: string[] = [];
  for (const part of selector.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (part === 'W_pos') throw new UsageError('the model has no W_pos: Llama-family models place positions by RoPE, not a learned embedding');
    const re = new RegExp(`^${part.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^.]+')}$`);
    const hit = all.filter((n) => re.test(n));
    if (hit.length === 0) {
      const layer = /^blocks\.(\d+)\./.exec(part);
      if (layer && Number(layer[1]) >= c.nLayers) throw new UsageError(`'${part}': layer ${layer[1]} is out of range: the model has ${c.nLayers} layers, blocks.0 .. blocks.${c.nLayers - 1}`);
      throw new UsageError(`unknown weight '${part}' (TransformerLens's names: W_E, W_U, ln_final.w, blocks.L.${PER_LAYER.join(', blocks.L.')}; 'tapir weights' lists them)`);
    }
    out.push(...hit);
  }
  return [...new Set(out)];
}

/** The shape of a TL weight, without reading it. */
export function tlWeightShape(c: LlamaConfig, name: string): number[] {
  const d = c.dim, hs = headSize(c), H = c.nHeads, K = c.nKvHeads;
  if (name === 'W_E') return [c.vocabSize, d];
  if (name === 'W_U') return [d, c.vocabSize];
  if (name === 'ln_final.w') return [d];
  const kind = name.replace(/^blocks\.\d+\./, '');
  const shapes: Record<string, number[]> = {
    'attn.W_Q': [H, d, hs], 'attn.W_K': [H, d, hs], 'attn.W_V': [H, d, hs], 'attn._W_K': [K, d, hs], 'attn._W_V': [K, d, hs], 'attn.W_O': [H, hs, d],
    'attn.b_Q': [H, hs], 'attn.b_K': [H, hs], 'attn.b_V': [H, hs], 'attn._b_K': [K, hs], 'attn._b_V': [K, hs], 'attn.b_O': [d],
    'mlp.W_in': [d, c.hiddenDim], 'mlp.W_gate': [d, c.hiddenDim], 'mlp.W_out': [c.hiddenDim, d], 'mlp.b_in': [c.hiddenDim], 'mlp.b_out': [d], 'ln1.w': [d], 'ln2.w': [d],
  };
  return shapes[kind]!;
}

/** One weight by TL name (see selectTlWeights for the names). */
export function tlWeight(m: TlWeightHost, name: string): TlWeight {
  const c = m.config, d = c.dim, hs = headSize(c), H = c.nHeads, K = c.nKvHeads, group = H / K;
  const [sel] = selectTlWeights(c, name);
  const shape = tlWeightShape(c, sel!);
  const out = (data: ArrayLike<number>): TlWeight => ({ name: sel!, shape, data: Float32Array.from(data) });
  const has = (w: string) => m.weightDtype(w) !== undefined;
  if (sel === 'W_E') return out(m.weightValues('token_embd.weight'));
  if (sel === 'W_U') return out(transpose(m.weightValues(c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight'), c.vocabSize, d));
  if (sel === 'ln_final.w') return out(m.weightValues('output_norm.weight'));
  const l = Number(/^blocks\.(\d+)\./.exec(sel!)![1]), kind = sel!.replace(/^blocks\.\d+\./, ''), blk = `blk.${l}`;
  // W_q's and W_k's rows (and their biases) in the file's own order
  const qk = (w: Float64Array, heads: number, cols: number) => (m.qkInterleavedAtLoad ? deinterleave(w, heads, hs, cols, c.rotDim ?? hs) : w);
  const bias = (part: 'q' | 'k' | 'v', heads: number) => {
    const n = heads * hs;
    if (has(`${blk}.attn_${part}.bias`)) return part === 'v' ? m.weightValues(`${blk}.attn_v.bias`) : qk(m.weightValues(`${blk}.attn_${part}.bias`), heads, 1);
    return new Float64Array(n);
  };
  // [rows = heads × hs, d] -> [heads, d, hs]; heads repeated over their group (TL's W_K / W_V)
  const perHead = (w: Float64Array, heads: number, repeat: number) => {
    const o = new Float64Array(heads * repeat * d * hs);
    for (let h = 0; h < heads * repeat; h++) for (let k = 0; k < hs; k++) for (let i = 0; i < d; i++) o[(h * d + i) * hs + k] = w[(Math.floor(h / repeat) * hs + k) * d + i]!;
    return o;
  };
  const biasHeads = (b: Float64Array, repeat: number) => Float64Array.from({ length: b.length * repeat }, (_, i) => b[Math.floor(i / (hs * repeat)) * hs + (i % hs)]!);
  switch (kind) {
    case 'attn.W_Q': return out(perHead(qk(m.weightValues(`${blk}.attn_q.weight`), H, d), H, 1));
    case 'attn.W_K': return out(perHead(qk(m.weightValues(`${blk}.attn_k.weight`), K, d), K, group));
    case 'attn._W_K': return out(perHead(qk(m.weightValues(`${blk}.attn_k.weight`), K, d), K, 1));
    case 'attn.W_V': return out(perHead(m.weightValues(`${blk}.attn_v.weight`), K, group));
    case 'attn._W_V': return out(perHead(m.weightValues(`${blk}.attn_v.weight`), K, 1));
    case 'attn.W_O': {
      // attn_output [d, H·hs] -> [H, hs, d]
      const w = m.weightValues(`${blk}.attn_output.weight`), q = qWidth(c), o = new Float64Array(H * hs * d);
      for (let h = 0; h < H; h++) for (let k = 0; k < hs; k++) for (let i = 0; i < d; i++) o[(h * hs + k) * d + i] = w[i * q + h * hs + k]!;
      return out(o);
    }
    case 'attn.b_Q': return out(bias('q', H));
    case 'attn.b_K': return out(biasHeads(bias('k', K), group));
    case 'attn._b_K': return out(bias('k', K));
    case 'attn.b_V': return out(biasHeads(bias('v', K), group));
    case 'attn._b_V': return out(bias('v', K));
    case 'attn.b_O': case 'mlp.b_out': return out(new Float64Array(d));
    case 'mlp.b_in': return out(new Float64Array(c.hiddenDim));
    case 'mlp.W_in': return out(transpose(m.weightValues(`${blk}.ffn_up.weight`), c.hiddenDim, d));
    case 'mlp.W_gate': return out(transpose(m.weightValues(`${blk}.ffn_gate.weight`), c.hiddenDim, d));
    case 'mlp.W_out': return out(transpose(m.weightValues(`${blk}.ffn_down.weight`), d, c.hiddenDim));
    case 'ln1.w': return out(m.weightValues(`${blk}.attn_norm.weight`));
    case 'ln2.w': return out(m.weightValues(`${blk}.ffn_norm.weight`));
    default: throw new Error(`internal: no TL weight '${sel}'`);
  }
}

/** [rows, cols] -> [cols, rows] */
function transpose(w: Float64Array, rows: number, cols: number): Float64Array {
  const o = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = w[r * cols + c]!;
  return o;
}

/** Each head's rows from RoPE's interleaved pairs (2i, 2i+1) back to halves (i, i + rot/2), the
 *  inverse of the reader's permutation (runtime/formats/hf_llama.ts); rows past `rot` keep their place. */
function deinterleave(w: Float64Array, heads: number, hs: number, cols: number, rot: number): Float64Array {
  const o = Float64Array.from(w);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < rot / 2; i++)
      for (let j = 0; j < 2; j++) o.set(w.subarray((h * hs + 2 * i + j) * cols, (h * hs + 2 * i + j + 1) * cols), (h * hs + j * (rot / 2) + i) * cols);
  return o;
}
