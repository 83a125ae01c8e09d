// tapir explain: why the next token is X and not Y, by several methods, with a faithfulness check.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { explain } from '../../runtime/interp/explain.js';
import { explanationHtml } from '../../runtime/interp/explain_html.js';
import { writeAtomically } from '../../runtime/node/write_file.js';
import { command } from '../command.js';
import { progressBar } from '../progress.js';
import { openModel, out, tokenOption } from '../common.js';

export default command({
  name: 'explain',
  summary: 'why the next token is X and not Y: word attributions (two methods), layers and heads,\na faithfulness check, and an HTML report',
  usage: `tapir explain [-m MODEL] -p PROMPT --answer PIECE [--alternative PIECE] [--baseline PIECE]
                     [--draws N] [--seed S] [--html FILE] [--json]`,
  about: `Why the model's next token after PROMPT is ANSWER rather than ALTERNATIVE (default: the most likely other
token), on their logit difference: each word's share by occlusion (its tokens replaced by the baseline,
the prompt re-run from there on the cached prefix) and by erasure (its embeddings zeroed), direct logit
attribution per layer and head, and a faithfulness check: occluding the top-k words must move the
decision more than k random words (the deletion curve).`,
  column: 28,
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (BOS is added)' },
    answer: { kind: 'string', arg: 'PIECE', help: 'the token to explain, written exactly as in the vocabulary (e.g. " Lily")' },
    'answer-id': { kind: 'int', arg: 'N', min: 0, help: '... or by id' },
    alternative: { kind: 'string', arg: 'PIECE', help: 'the token it is weighed against (--alternative-id N by id)' },
    'alternative-id': { kind: 'int', arg: 'N', min: 0, help: 'the alternative by id' },
    baseline: { kind: 'string', arg: 'PIECE', help: 'what occlusion puts in a word\'s place (default: the unknown token)' },
    draws: { kind: 'int', arg: 'N', min: 1, default: 20, help: 'random draws per k on the deletion curve (default: 20)' },
    seed: { kind: 'int', arg: 'S', min: 0, default: 0, help: 'seed of those draws (default: 0)' },
    html: { kind: 'output', arg: 'FILE', help: 'the report as one HTML page (works offline)' },
  },
  async run(o) {
    if (o.prompt === undefined) throw new UsageError("explain needs -p PROMPT (see 'tapir explain --help')");
    if (o.answer === undefined && o['answer-id'] === undefined) throw new UsageError("explain needs --answer PIECE (see 'tapir explain --help')");
    const { model } = await openModel(o);
    let bar: ReturnType<typeof progressBar> | undefined, current = '';
    try {
      const e = await explain(model, model.tokenizer.encode(o.prompt), {
        answer: tokenOption(model, 'answer', o.answer, o['answer-id'])!,
        alternative: tokenOption(model, 'alternative', o.alternative, o['alternative-id']),
        baseline: tokenOption(model, 'baseline', o.baseline, undefined),
        draws: o.draws, seed: o.seed,
        // one bar a phase (occlusion, the deletion curve, erasure)
        onProgress: (phase, d, t) => {
          if (phase !== current) { bar?.done(); bar = progressBar(`explain: ${phase}`, t); current = phase; }
          bar!.update(d, t);
        },
      });
      bar?.done();
      if (o.html !== undefined) { const html = explanationHtml(e); writeAtomically(o.html, (fd) => { fs.writeSync(fd, html); }); }
      if (o.json) out(JSON.stringify(e) + '\n');
      else {
        for (const s of e.sentences) out(`${s}\n`);
        out(`\n${'word'.padEnd(16)} ${'occlusion'.padStart(10)} ${'erasure'.padStart(10)}\n`);
        for (const w of e.words) out(`${JSON.stringify(w.text).padEnd(16)} ${w.occlusion.toFixed(3).padStart(10)} ${w.erasure.toFixed(3).padStart(10)}\n`);
      }
    } finally {
      model.dispose();
    }
  },
});
