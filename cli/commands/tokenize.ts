// tapir tokenize: a text's token ids and pieces (TransformerLens's to_tokens / to_str_tokens).
import { UsageError } from '../../compiler/errors.js';
import { loadModelSource, defaultModel } from '../../runtime/node/load.js';
import { makeTokenizer } from '../../runtime/tokenizer.js';
import { command } from '../command.js';
import { out } from '../common.js';

export default command({
  name: 'tokenize',
  summary: "a text's token ids and pieces, as the model's tokenizer splits it",
  usage: 'tapir tokenize [-m MODEL] TEXT [--no-bos] [--json]',
  about: `Prints the ids and pieces of TEXT (BOS first where the tokenizer adds one), what TransformerLens's
to_tokens and to_str_tokens give: the pieces to write for --target, --distractor and position filters.`,
  positional: 'text',
  options: {
    text: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the text (also the first bare argument)' },
    'no-bos': { kind: 'flag', help: 'leave out BOS' },
  },
  async run(o) {
    if (o.text === undefined) throw new UsageError("tokenize needs a TEXT (see 'tapir tokenize --help')");
    // the tokenizer alone: no GPU, no weights read
    const tok = makeTokenizer(loadModelSource(o.model ?? defaultModel(), { tokenizer: o.tokenizer }).vocab);
    const tokens = tok.encode(o.text, o['no-bos'] ? { bos: false } : {});
    const pieces = tokens.map((t) => tok.piece(t));
    if (o.json) out(JSON.stringify({ tokens, pieces }) + '\n');
    else out(`${tokens.length} tokens\n${tokens.map((t, i) => `${String(i).padStart(4)}  ${String(t).padStart(7)}  ${JSON.stringify(pieces[i])}`).join('\n')}\n`);
  },
});
