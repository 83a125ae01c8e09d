// tapir dla: direct logit attribution of the target's logit (minus the distractor's) to each part.
import { UsageError } from '../../compiler/errors.js';
import { directLogitAttribution } from '../../runtime/interp/dla.js';
import { command } from '../command.js';
import { openModel, out, tokenOption } from '../common.js';

export default command({
  name: 'dla',
  summary: 'direct logit attribution: how much each layer\'s attention, MLP and head writes toward the answer',
  usage: 'tapir dla [-m MODEL] -p PROMPT (--target PIECE | --target-id N) [--distractor PIECE | --distractor-id N] [--json]',
  about: `Splits the target's logit (minus the distractor's) at the last position into what the embedding and
each layer's attention (per head too) and MLP wrote into the residual stream, read through the final
norm with its scale frozen. The parts add up to the model's own logit difference.`,
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (BOS is added)' },
    target: { kind: 'string', arg: 'PIECE', help: 'the token attributed, exactly as in the vocabulary (e.g. " Lily")' },
    'target-id': { kind: 'int', arg: 'N', min: 0, help: 'the target by id' },
    distractor: { kind: 'string', arg: 'PIECE', help: 'a token whose logit is subtracted' },
    'distractor-id': { kind: 'int', arg: 'N', min: 0, help: 'the distractor by id' },
  },
  async run(o) {
    if (o.prompt === undefined) throw new UsageError("dla needs -p PROMPT (see 'tapir dla --help')");
    const { model } = await openModel(o);
    try {
      const target = tokenOption(model, 'target', o.target, o['target-id']);
      if (target === undefined) throw new UsageError('dla needs --target PIECE or --target-id N');
      const distractor = tokenOption(model, 'distractor', o.distractor, o['distractor-id']);
      const a = await directLogitAttribution(model, model.tokenizer.encode(o.prompt), { target, distractor });
      if (o.json) return out(JSON.stringify({ target: model.tokenizer.piece(target), distractor: distractor === undefined ? undefined : model.tokenizer.piece(distractor), ...a }) + '\n');
      // a difference only where there is a distractor; else the target's own logit
      const metric = distractor === undefined ? `logit of ${JSON.stringify(model.tokenizer.piece(target))}` : 'logit difference';
      out(`${metric} ${a.metric.toFixed(4)} = sum of the parts below (final norm scale frozen at ${a.scale.toFixed(4)})\n`);
      for (const c of a.components) out(`${c.name.padEnd(16)} ${c.value.toFixed(4).padStart(9)}\n`);
      out('\nper head (attention):\n');
      a.heads.forEach((row, l) => out(`blocks.${l}  ${row.map((v) => v.toFixed(3).padStart(8)).join(' ')}\n`));
    } finally {
      model.dispose();
    }
  },
});
