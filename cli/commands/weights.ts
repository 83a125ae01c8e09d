// tapir weights: the model's weights by TransformerLens's names and in its shapes (runtime/tl_weights.ts),
// listed, summarized, or written to a safetensors file. Reads the model file only: no GPU.
import fs from 'node:fs';
import { dequantize } from '../../ops/dequant.js';
import { writeSafetensors } from '../../runtime/formats/safetensors.js';
import { defaultModel, loadModelSource } from '../../runtime/node/load.js';
import { writeAtomically } from '../../runtime/node/write_file.js';
import { selectTlWeights, tlWeight, tlWeightNames, tlWeightShape, type TlWeightHost } from '../../runtime/tl_weights.js';
import { command } from '../command.js';
import { out } from '../common.js';

export default command({
  name: 'weights',
  summary: "the model's weights by TransformerLens's names (W_E, blocks.L.attn.W_Q, ...)",
  usage: 'tapir weights [-m MODEL] [NAMES] [--out FILE.safetensors] [--json]',
  about: `Without NAMES, lists every weight TransformerLens names, with its shape. NAMES (comma-separated,
'*' for every layer: blocks.*.attn.W_Q) are summarized, or with --out written as F32 safetensors under
those names. Shapes are TL's: W_Q/W_K/W_V [n_heads, d_model, d_head] (_W_K/_W_V per kv head), W_O
[n_heads, d_head, d_model], mlp.W_in/W_gate [d_model, d_mlp], W_out [d_mlp, d_model], W_U [d_model,
d_vocab]; values as loaded (norm weights not folded in), in the file's own order of W_q's and W_k's rows.`,
  positional: 'names',
  options: {
    names: { kind: 'string', arg: 'NAMES', help: 'the weights (also the first bare argument)' },
    out: { kind: 'output', arg: 'FILE', help: 'the safetensors file to write (atomically)' },
  },
  async run(o) {
    const src = loadModelSource(o.model ?? defaultModel(), { tokenizer: o.tokenizer });
    const c = src.config;
    if (o.names === undefined) {
      const list = tlWeightNames(c).map((name) => ({ name, shape: tlWeightShape(c, name) }));
      if (o.json) return out(JSON.stringify(list) + '\n');
      for (const w of list) out(`${w.name.padEnd(28)} [${w.shape.join(', ')}]\n`);
      return;
    }
    const names = selectTlWeights(c, o.names);
    const host: TlWeightHost = {
      config: c, qkInterleavedAtLoad: src.qkInterleavedAtLoad ?? false,
      weightDtype: (n) => src.weights.get(n)?.dtype,
      weightValues: (n) => { const w = src.weights.get(n)!; return dequantize(w.dtype, w.bytes, w.shape.reduce((a, b) => a * b, 1)); },
    };
    const weights = names.map((n) => tlWeight(host, n));
    const stats = weights.map((w) => {
      let s = 0, ss = 0, lo = Infinity, hi = -Infinity;
      for (const v of w.data) { s += v; ss += v * v; lo = Math.min(lo, v); hi = Math.max(hi, v); }
      const mean = s / w.data.length;
      return { name: w.name, shape: w.shape, mean, std: Math.sqrt(Math.max(0, ss / w.data.length - mean * mean)), min: lo, max: hi };
    });
    if (o.out !== undefined) {
      const file = o.out;
      writeAtomically(file, (fd) => { fs.writeSync(fd, writeSafetensors(weights.map((w) => ({ name: w.name, dtype: 'f32', shape: w.shape, bytes: new Uint8Array(w.data.buffer) })), { model: src.file })); });
    }
    if (o.json) return out(JSON.stringify({ weights: stats, ...(o.out !== undefined ? { out: o.out } : {}) }) + '\n');
    for (const w of stats) out(`${w.name.padEnd(28)} [${w.shape.join(', ')}]  mean ${w.mean.toExponential(3)}  std ${w.std.toExponential(3)}  min ${w.min.toFixed(4)}  max ${w.max.toFixed(4)}\n`);
    if (o.out !== undefined) out(`wrote ${weights.length} tensors to ${o.out}\n`);
  },
});
