// tapir hooks: every hook point (TransformerLens's names) and its shape per position.
import { llama } from '../../models/llama.js';
import { defaultModel, loadModelSource } from '../../runtime/node/load.js';
import { command } from '../command.js';
import { out } from '../common.js';

export default command({
  name: 'hooks',
  summary: "list the model's hook points (TransformerLens names) and their shapes",
  usage: 'tapir hooks [-m MODEL] [--json]',
  about: 'Lists every hook point with its shape per position ([batch, pos] come first in a cache).',
  options: {},
  async run(o) {
    const src = loadModelSource(o.model ?? defaultModel(), { tokenizer: o.tokenizer });
    const graph = llama({ ...src.config, contextLength: Math.min(src.config.contextLength, 16) });
    const list = Object.entries(graph.hooks).map(([name, h]) => ({ name, shape: h.shape }));
    if (o.json) out(JSON.stringify(list) + '\n');
    else for (const h of list) out(`${h.name.padEnd(32)} [batch, pos, ${h.shape.join(', ')}]\n`);
  },
});
