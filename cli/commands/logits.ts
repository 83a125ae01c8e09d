// tapir logits: the next-token logits at every position of a prompt.
import { UsageError } from '../../compiler/errors.js';
import { softmax } from '../../runtime/sampler.js';
import { command } from '../command.js';
import { idList, openModel, out } from '../common.js';

export default command({
  name: 'logits',
  summary: 'print the next-token logits at every position of a prompt',
  usage: 'tapir logits [-m MODEL] (-p PROMPT | --tokens 1,403,407) [options]',
  about: 'Runs the prompt and prints, for every position, the logits for the next token.',
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (BOS is added)' },
    tokens: { kind: 'string', arg: 'IDS', help: 'comma-separated token ids instead of a prompt (BOS not added)' },
    top: { kind: 'int', arg: 'K', min: 1, default: 5, help: 'how many top tokens the text output shows per position (default: 5)' },
  },
  after: '--json prints {"tokens":[...],"logits":[[...],...]}, one row of logits per position.',
  async run(o) {
    if ((o.prompt === undefined) === (o.tokens === undefined)) throw new UsageError("give either -p PROMPT or --tokens IDS (see 'tapir logits --help')");
    const ids = o.tokens !== undefined ? idList(o.tokens, '--tokens') : undefined;
    const { model } = await openModel(o);
    try {
      const tokens = ids ?? model.tokenizer.encode(o.prompt!);
      const rows = await model.logits(tokens);
      if (o.json) {
        // one row per position, written row by row: a 128k vocabulary makes long lines
        out(`{"tokens":${JSON.stringify(tokens)},"logits":[`);
        rows.forEach((r, i) => out(`${i ? ',' : ''}[${Array.from(r).join(',')}]`));
        out(']}\n');
        return;
      }
      const tok = model.tokenizer;
      rows.forEach((r, i) => {
        const p = softmax(r);
        const best = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]!).slice(0, o.top);
        out(`${String(i).padStart(4)} ${JSON.stringify(tok.piece(tokens[i]!)).padEnd(14)} -> ${best.map((b) => `${JSON.stringify(tok.piece(b))} ${r[b]!.toFixed(3)} (${(p[b]! * 100).toFixed(1)}%)`).join('  ')}\n`);
      });
    } finally {
      model.dispose();
    }
  },
});
