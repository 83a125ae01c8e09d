// tapir synth: a GGUF model with a real model's shapes, seeded random weights and a learned tokenizer.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import type { DType } from '../../compiler/ir/dtype.js';
import { FAMILIES, type FamilyName } from '../../models/families.js';
import { writeSynthGGUF } from '../../runtime/node/write_file.js';
import { PRESETS, synthModel } from '../../runtime/synth/synth.js';
import { command } from '../command.js';
import { out } from '../common.js';
import { progressBar } from '../progress.js';

export default command({
  name: 'synth',
  summary: 'write a model with seeded random weights and a learned tokenizer (GGUF)',
  usage: 'tapir synth --preset NAME --dtype DTYPE --out FILE [--arch ARCH] [--seed S] [--json]',
  about: `Writes a GGUF model with the shapes of a real one, seeded random weights of realistic scale and a
tokenizer learned from a small built-in text. The file is written atomically (FILE.partial, then renamed).`,
  model: false,
  options: {
    preset: { kind: 'string', arg: 'NAME', help: '${PRESET_NAMES}' },
    dtype: { kind: 'string', arg: 'DTYPE', help: 'f32, f16, bf16, q8_0 or q4_0 (matrices; norm vectors stay f32)' },
    out: { kind: 'output', arg: 'FILE', help: 'where to write the .gguf' },
    arch: { kind: 'string', arg: 'ARCH', default: 'llama', help: 'the model family: ${ARCH_NAMES} (default llama); its\nGGUF architecture, tensors (biases, q/k norms, fused QKV) and tokenizer' },
    seed: { kind: 'int', arg: 'S', min: 0, default: 0, help: 'weight seed (default: 0)' },
  },
  fill: () => ({ PRESET_NAMES: Object.keys(PRESETS).join(', '), ARCH_NAMES: Object.keys(FAMILIES).join(', ') }),
  async run(o) {
    if (o.preset === undefined || o.dtype === undefined || o.out === undefined)
      throw new UsageError("synth needs --preset, --dtype and --out (see 'tapir synth --help')");
    const { arch, seed } = o;
    if (!(arch in FAMILIES)) throw new UsageError(`unknown --arch '${arch}' (architectures: ${Object.keys(FAMILIES).join(', ')})`);
    const m = synthModel(o.preset, o.dtype as DType, seed, arch as FamilyName);
    const bar = progressBar(`synth ${arch} ${o.preset} ${o.dtype}`, m.tensors.length);
    const t0 = performance.now();
    writeSynthGGUF(m, o.out, (i) => bar.update(i + 1));
    bar.done();
    const bytes = fs.statSync(o.out).size;
    if (o.json) out(JSON.stringify({ out: o.out, arch, preset: o.preset, dtype: o.dtype, seed, bytes, tensors: m.tensors.length + (m.config.ropeFactors ? 1 : 0), vocab: m.vocab.pieces.length, seconds: +((performance.now() - t0) / 1000).toFixed(2) }) + '\n');
    else out(`wrote ${o.out} (${(bytes / 2 ** 20).toFixed(1)} MiB, ${arch} ${o.preset}, ${o.dtype}, seed ${seed})\n`);
  },
});
