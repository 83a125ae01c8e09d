// tapir attn: the attention pattern of every head, as text, JSON or SVG heatmaps.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { attentionPatterns, patternsSvg } from '../../runtime/interp/patterns.js';
import { writeAtomically } from '../../runtime/node/write_file.js';
import { command } from '../command.js';
import { openModel, out } from '../common.js';

export default command({
  name: 'attn',
  summary: 'attention patterns per layer and head (destination × source), as JSON or SVG',
  usage: 'tapir attn [-m MODEL] -p PROMPT [--layers LIST] [--svg FILE] [--json]',
  about: `The attention pattern of every head ([head, query, key]: softmax over the keys up to the query), as
TransformerLens's blocks.L.attn.hook_pattern gives it. Text: each head's strongest source per query.`,
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (BOS is added)' },
    layers: { kind: 'string', arg: 'LIST', help: 'comma-separated layer numbers (default: all)' },
    svg: { kind: 'output', arg: 'FILE', help: 'one destination × source heatmap per head (masked cells grey, values in tooltips)' },
  },
  async run(o) {
    if (o.prompt === undefined) throw new UsageError("attn needs -p PROMPT (see 'tapir attn --help')");
    const layers = o.layers?.split(',').map((x) => {
      if (!/^\d+$/.test(x.trim())) throw new UsageError(`--layers takes layer numbers, got '${x}'`);
      return Number(x);
    });
    const { model } = await openModel(o);
    try {
      const tokens = model.tokenizer.encode(o.prompt);
      const p = await attentionPatterns(model, tokens, layers);
      if (o.svg !== undefined) { const svg = patternsSvg(p); writeAtomically(o.svg, (fd) => fs.writeSync(fd, svg)); }
      if (o.json) return out(JSON.stringify({ tokens, ...p }) + '\n');
      for (const { layer, heads } of p.layers)
        heads.forEach((rows, h) => out(`blocks.${layer} head ${h}: ${rows.map((r, q) => `${JSON.stringify(p.pieces[q])}→${JSON.stringify(p.pieces[r.indexOf(Math.max(...r))])}`).join(' ')}\n`));
    } finally {
      model.dispose();
    }
  },
});
