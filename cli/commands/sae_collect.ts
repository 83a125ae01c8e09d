// tapir sae collect: the values at one hook streamed into an activation store (resumable).
import path from 'node:path';
import { UsageError } from '../../compiler/errors.js';
import { collect, isHeldOut } from '../../runtime/sae/store.js';
import { command } from '../command.js';
import { openModel, out } from '../common.js';
import { progressBar } from '../progress.js';

export default command({
  name: 'sae collect',
  summary: 'stream the values at one hook into an activation store',
  usage: `tapir sae collect [-m MODEL] --hook HOOK --tokens N --out STORE [--corpus FILE]... [--seed S]
                         [--temperature T] [--seq-len L] [--shard-sequences N] [--json]`,
  about: `Streams the values at one hook into an activation store (shards of f32 rows + their token
sequences; every tenth shard held out, and in a store of fewer its last). Without --corpus it samples stories from the model
(temperature T, default 1; seeds from --seed and each sequence's index, recorded). Killed and run
again with the same arguments, it resumes from the last whole shard.`,
  options: {
    hook: { kind: 'string', arg: 'HOOK', help: "the hook to collect at (e.g. 'blocks.3.hook_resid_post')" },
    tokens: { kind: 'int', arg: 'N', min: 1, help: 'how many tokens (rows) to collect in all, held-out ones included\n(the last shard may take it past N)' },
    out: { kind: 'output', arg: 'STORE', help: 'the store\'s folder' },
    corpus: { kind: 'string', arg: 'FILE', multiple: true, help: 'text files to read sequences from (repeatable; default: stories sampled from the model)' },
    seed: { kind: 'int', arg: 'S', min: 0, default: 0, help: 'seed of the sampled stories (default: 0)' },
    temperature: { kind: 'number', arg: 'T', min: 0, max: 10, default: 1, help: 'sampling temperature of the stories (default: 1)' },
    'seq-len': { kind: 'int', arg: 'L', min: 2, default: 128, help: 'tokens a sequence (default: 128)' },
    'shard-sequences': { kind: 'int', arg: 'N', min: 1, default: 64, help: 'sequences a shard (default: 64)' },
  },
  async run(o) {
    if (o.hook === undefined || o.out === undefined || o.tokens === undefined) throw new UsageError("sae collect needs --hook, --tokens and --out (see 'tapir sae collect --help')");
    const { tokens } = o;
    const { model } = await openModel(o);
    try {
      const bar = progressBar('collect', tokens);
      const m = await collect(model, path.basename(model.file), { hook: o.hook, tokens, out: o.out, corpus: o.corpus.length ? o.corpus : undefined, seed: o.seed,
        temperature: o.temperature, seqLen: o['seq-len'], perShard: o['shard-sequences'], progress: (d) => bar.update(d) });
      bar.done();
      const rows = m.shards.reduce((n, s) => n + s.rows, 0);
      const heldOut = m.shards.reduce((n, s, k) => n + (isHeldOut(k, m) ? s.rows : 0), 0);
      if (o.json) out(JSON.stringify({ store: o.out, hook: m.hook, dIn: m.dIn, shards: m.shards.length, rows, heldOutRows: heldOut }) + '\n');
      else out(`${o.out}: ${m.shards.length} shards, ${rows} rows of ${m.dIn} at ${m.hook} (${heldOut} held out)\n`);
    } finally {
      model.dispose();
    }
  },
});
