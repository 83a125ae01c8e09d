// tapir cache: run a prompt and save the values at selected hooks as safetensors.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { writeSafetensors } from '../../runtime/formats/safetensors.js';
import { writeAtomically } from '../../runtime/node/write_file.js';
import { command } from '../command.js';
import { openModel, out } from '../common.js';

export default command({
  name: 'cache',
  summary: 'run a prompt and save the values at selected hooks (safetensors)',
  usage: 'tapir cache [-m MODEL] -p PROMPT --hooks SELECTOR --out FILE.safetensors [--json]',
  about: `Runs the prompt (BOS first) and writes the value at each selected hook, at every position, as F32
tensors named by hook, shaped [1, pos, ...] as TransformerLens shapes them.`,
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (BOS is added)' },
    hooks: { kind: 'string', arg: 'SEL', help: "e.g. 'blocks.*.hook_resid_post', 'blocks.3-7.attn.hook_z',\n'blocks.2.attn.hook_z[head=5]', 'blocks.4.hook_resid_pre[pos=-1]' (comma-separated);\nTransformerLens's short names ('resid_post', 'z', 'pattern') mean every layer" },
    out: { kind: 'output', arg: 'FILE', help: 'the safetensors file to write (atomically)' },
  },
  async run(o) {
    if (o.prompt === undefined || o.hooks === undefined || o.out === undefined)
      throw new UsageError("cache needs -p PROMPT, --hooks SELECTOR and --out FILE (see 'tapir cache --help')");
    const { model } = await openModel(o);
    try {
      const tokens = model.tokenizer.encode(o.prompt);
      const { cache } = await model.runWithHooks(tokens, { interventions: [], hooks: o.hooks, logits: 'none' });
      const tensors = [...cache].map(([name, e]) => ({ name, dtype: 'f32' as const, shape: e.shape, bytes: new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength) }));
      const file = o.out;
      writeAtomically(file, (fd) => { fs.writeSync(fd, writeSafetensors(tensors, { model: model.file, tokens: JSON.stringify(tokens) })); });
      if (o.json) out(JSON.stringify({ out: file, tokens, hooks: [...cache].map(([name, e]) => ({ name, shape: e.shape })) }) + '\n');
      else out(`wrote ${cache.size} hook(s) over ${tokens.length} positions to ${file}\n`);
    } finally {
      model.dispose();
    }
  },
});
