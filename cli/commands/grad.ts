// tapir grad: d(metric)/d(hook) at selected hooks, from the compiler's backward pass, as safetensors.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { writeSafetensors } from '../../runtime/formats/safetensors.js';
import { writeAtomically } from '../../runtime/node/write_file.js';
import { command } from '../command.js';
import { openModel, out, tokenOption } from '../common.js';

export default command({
  name: 'grad',
  summary: 'gradients of a logit difference at selected hooks (safetensors)',
  usage: `tapir grad [-m MODEL] -p PROMPT (--target PIECE | --target-id N) (--distractor PIECE | --distractor-id N)
                  --hooks SELECTOR --out FILE.safetensors [--json]`,
  about: `Runs the prompt (BOS first) forward and backward on the GPU and writes d(metric)/d(hook) at each
selected whole hook, every position, as F32 tensors named by hook, shaped [1, pos, ...] as the forward
hooks are. The metric: the target's logit minus the distractor's at the last position. The prompt runs
as one prefill block (its length is at most the model's block size).`,
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (BOS is added)' },
    target: { kind: 'string', arg: 'PIECE', help: 'the metric\'s token, exactly as in the vocabulary (e.g. " Lily")' },
    'target-id': { kind: 'int', arg: 'N', min: 0, help: 'the target by id' },
    distractor: { kind: 'string', arg: 'PIECE', help: 'the token whose logit the metric subtracts' },
    'distractor-id': { kind: 'int', arg: 'N', min: 0, help: 'the distractor by id' },
    hooks: { kind: 'string', arg: 'SEL', help: "whole hooks, e.g. 'hook_embed,blocks.*.hook_resid_pre' (comma-separated)" },
    out: { kind: 'output', arg: 'FILE', help: 'the safetensors file to write (atomically)' },
  },
  async run(o) {
    if (o.prompt === undefined || o.hooks === undefined || o.out === undefined)
      throw new UsageError("grad needs -p PROMPT, --hooks SELECTOR and --out FILE (see 'tapir grad --help')");
    const { model } = await openModel(o);
    try {
      const target = tokenOption(model, 'target', o.target, o['target-id']);
      const distractor = tokenOption(model, 'distractor', o.distractor, o['distractor-id']);
      if (target === undefined || distractor === undefined) throw new UsageError('grad needs --target (or --target-id) and --distractor (or --distractor-id)');
      const tokens = model.tokenizer.encode(o.prompt);
      const r = await model.runWithGradients(tokens, { target, distractor, hooks: o.hooks });
      const tensors = [...r.grads].map(([name, g]) => ({ name, dtype: 'f32' as const, shape: g.shape, bytes: new Uint8Array(g.data.buffer, g.data.byteOffset, g.data.byteLength) }));
      writeAtomically(o.out, (fd) => { fs.writeSync(fd, writeSafetensors(tensors, { model: model.file, tokens: JSON.stringify(tokens), metric: `logit[${target}] - logit[${distractor}] at the last position`, value: String(r.metric) })); });
      if (o.json) out(JSON.stringify({ out: o.out, tokens, target, distractor, metric: r.metric, hooks: [...r.grads].map(([name, g]) => ({ name, shape: g.shape })) }) + '\n');
      else out(`metric ${r.metric.toFixed(4)}; wrote the gradients at ${r.grads.size} hook(s) over ${tokens.length} positions to ${o.out}\n`);
    } finally {
      model.dispose();
    }
  },
});
