// tapir grad: d(metric)/d(hook) at selected hooks, from the compiler's backward pass, as safetensors:
// a logit difference or a log-probability, at the last position or another.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { writeSafetensors } from '../../runtime/formats/safetensors.js';
import { writeAtomically } from '../../runtime/node/write_file.js';
import { command } from '../command.js';
import { openModel, out, tokenOption } from '../common.js';
import type { Metric } from '../../runtime/interp/gradients.js';

export default command({
  name: 'grad',
  summary: 'gradients of a logit difference or a log-probability at selected hooks (safetensors)',
  usage: `tapir grad [-m MODEL] -p PROMPT (--target PIECE | --target-id N) [--distractor PIECE | --distractor-id N]
                  [--metric logit-diff|log-prob] [--pos N] --hooks SELECTOR --out FILE.safetensors [--json]`,
  about: `Runs the prompt (BOS first) forward and backward on the GPU and writes d(metric)/d(hook) at each
selected whole hook, every position, as F32 tensors named by hook, shaped [1, pos, ...] as the forward
hooks are (attention patterns and scores [1, head, query, key]: those layers run their attention
through the explicit pattern, not flash attention). The metric, at the last position (or --pos):
logit-diff, the target's logit minus the distractor's (the target's alone without one); log-prob, the
target's log-probability. The prompt runs forward and backward as one block, as long as the device's
bindings hold it.`,
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (BOS is added)' },
    target: { kind: 'string', arg: 'PIECE', help: 'the metric\'s token, exactly as in the vocabulary (e.g. " Lily")' },
    'target-id': { kind: 'int', arg: 'N', min: 0, help: 'the target by id' },
    distractor: { kind: 'string', arg: 'PIECE', help: 'the token whose logit the metric subtracts' },
    'distractor-id': { kind: 'int', arg: 'N', min: 0, help: 'the distractor by id' },
    metric: { kind: 'string', arg: 'M', default: 'logit-diff', help: 'logit-diff or log-prob' },
    pos: { kind: 'int', arg: 'N', min: 0, help: "the metric's position, counting BOS as 0 (default: the last)" },
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
      if (target === undefined) throw new UsageError('grad needs --target (or --target-id)');
      if (o.metric !== 'logit-diff' && o.metric !== 'log-prob') throw new UsageError(`unknown metric '${o.metric}' (metrics: logit-diff, log-prob)`);
      if (o.metric === 'log-prob' && distractor !== undefined) throw new UsageError('--metric log-prob takes no distractor');
      const tokens = model.tokenizer.encode(o.prompt);
      const metric: Metric = o.metric === 'log-prob' ? { kind: 'log_prob', token: target, pos: o.pos } : { kind: 'logit_diff', target, distractor, pos: o.pos };
      const at = o.pos === undefined ? 'the last position' : `position ${o.pos}`;
      const said = o.metric === 'log-prob' ? `log p(${target}) at ${at}` : `logit[${target}]${distractor === undefined ? '' : ` - logit[${distractor}]`} at ${at}`;
      const r = await model.runWithGradients(tokens, { metric, hooks: o.hooks });
      const tensors = [...r.grads].map(([name, g]) => ({ name, dtype: 'f32' as const, shape: g.shape, bytes: new Uint8Array(g.data.buffer, g.data.byteOffset, g.data.byteLength) }));
      writeAtomically(o.out, (fd) => { fs.writeSync(fd, writeSafetensors(tensors, { model: model.file, tokens: JSON.stringify(tokens), metric: said, value: String(r.metric) })); });
      if (o.json) out(JSON.stringify({ out: o.out, tokens, target, distractor, metric: r.metric, metricKind: o.metric, pos: o.pos ?? tokens.length - 1, hooks: [...r.grads].map(([name, g]) => ({ name, shape: g.shape })) }) + '\n');
      else out(`metric ${r.metric.toFixed(4)}; wrote the gradients at ${r.grads.size} hook(s) over ${tokens.length} positions to ${o.out}\n`);
    } finally {
      model.dispose();
    }
  },
});
