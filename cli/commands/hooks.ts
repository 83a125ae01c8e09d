// tapir hooks: every hook point (TransformerLens's names) and its shape per position.
import { llama } from '../../models/llama.js';
import { editableHooks } from '../../ops/intervene.js';
import { defaultModel, loadModelSource } from '../../runtime/node/load.js';
import { command } from '../command.js';
import { out } from '../common.js';

export default command({
  name: 'hooks',
  summary: "list the model's hook points (TransformerLens names) and their shapes",
  usage: 'tapir hooks [-m MODEL] [--json]',
  about: 'Lists every hook point with the shape its values have in a cache: [batch, pos, ...], and\nTransformerLens\'s [batch, head, query pos, key pos] for attention patterns and scores. "edit" marks\nthe hooks that take an intervention or a hook function (something downstream reads them).',
  options: {},
  async run(o) {
    const src = loadModelSource(o.model ?? defaultModel(), { tokenizer: o.tokenizer });
    const graph = llama({ ...src.config, contextLength: Math.min(src.config.contextLength, 16) });
    // the shape a cache holds: [batch, pos, ...] per position, or TransformerLens's [batch, head, query,
    // key] for attention patterns and scores (whose key axis is the prompt's positions, not the context
    // this listing's graph was built with)
    const editable = new Set(editableHooks(graph));
    const list = Object.entries(graph.hooks).map(([name, h]) => ({
      name, shape: h.shape,
      cacheShape: h.layout === 'pattern' ? ['batch', h.shape[0]!, 'pos', 'pos'] : ['batch', 'pos', ...h.shape],
      edit: editable.has(name),
    }));
    if (o.json) out(JSON.stringify(list) + '\n');
    else for (const h of list) out(`${h.name.padEnd(32)} ${`[${h.cacheShape.join(', ')}]`.padEnd(28)} ${h.edit ? 'edit' : ''}`.trimEnd() + '\n');
  },
});
