// tapir lens: the logit lens, as text, JSON or a layer × position heatmap.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { heatmapSvg } from '../../runtime/interp/heatmap.js';
import { logitLens, type LensCell } from '../../runtime/interp/lens.js';
import { command } from '../command.js';
import { openModel, out, tokenOption } from '../common.js';
import { progressBar } from '../progress.js';

export default command({
  name: 'lens',
  summary: 'the logit lens: what each layer would predict, as a layer × position heatmap',
  usage: 'tapir lens [-m MODEL] -p PROMPT [--target PIECE | --target-id N] [--top K] [--embed] [--mid] [--svg FILE] [--json]',
  about: `For every layer and position: the residual stream after the block, read through the final norm and
the unembedding — its top tokens and probabilities, the target's rank and probability, and the KL
divergence from the model's final output. The last layer's row is the model's own prediction.`,
  options: {
    prompt: { kind: 'string', short: 'p', arg: 'TEXT', help: 'the prompt (BOS is added)' },
    target: { kind: 'string', arg: 'PIECE', help: 'a vocabulary entry written exactly as in the vocabulary (e.g. " Lily")' },
    'target-id': { kind: 'int', arg: 'N', min: 0, help: 'the target by id' },
    top: { kind: 'int', arg: 'K', min: 1, default: 5, help: 'top tokens per cell (default: 5)' },
    svg: { kind: 'output', arg: 'FILE', help: 'a heatmap: top token in each cell, its probability (or the target\'s) as colour' },
    embed: { kind: 'flag', help: 'also a row for the embedding (hook_embed), before the first layer' },
    mid: { kind: 'flag', help: "also a row for each layer's resid_mid (after attention, before the MLP)" },
  },
  async run(o) {
    if (o.prompt === undefined) throw new UsageError("lens needs -p PROMPT (see 'tapir lens --help')");
    const { model } = await openModel(o);
    try {
      const target = tokenOption(model, 'target', o.target, o['target-id']);
      const bar = progressBar('lens', 1);
      const r = await logitLens(model, model.tokenizer.encode(o.prompt), { target, top: o.top, embed: o.embed, mid: o.mid, progress: (d, t) => bar.update(d, t) });
      bar.done();
      // a row's name: blocks.3 (after the block), blocks.3 mid, embed
      const label = (hook: string) => hook === 'hook_embed' ? 'embed' : hook.replace('.hook_resid_post', '').replace('.hook_resid_mid', ' mid');
      if (o.svg !== undefined) {
        const cell = (c: LensCell) => c.target ? c.target.prob : c.top[0]!.prob;
        fs.writeFileSync(o.svg, heatmapSvg({
          title: `logit lens${r.target ? ` — P(${JSON.stringify(r.target.piece)})` : ' — top token and its probability'}`,
          rows: r.layers.map((l) => label(l.hook)),
          cols: r.pieces,
          values: r.layers.map((l) => l.cells.map(cell)),
          labels: r.layers.map((l) => l.cells.map((c) => c.top[0]!.piece)),
          tooltips: r.layers.map((l) => l.cells.map((c) => c.top.map((t) => `${JSON.stringify(t.piece)} ${(100 * t.prob).toFixed(1)}%`).join('\n') +
            (c.target ? `\ntarget rank ${c.target.rank}, ${(100 * c.target.prob).toFixed(2)}%` : '') + `\nKL to final ${c.kl.toFixed(3)}`)),
        }));
      }
      if (o.json) out(JSON.stringify({ tokens: r.tokens, pieces: r.pieces, target: r.target, layers: r.layers }) + '\n');
      else {
        out(`position:  ${r.pieces.map((p) => JSON.stringify(p).padEnd(12)).join(' ')}\n`);
        for (const l of r.layers) out(`${label(l.hook).padEnd(o.mid ? 13 : 9)}  ${l.cells.map((c) => `${JSON.stringify(c.top[0]!.piece)} ${(c.top[0]!.prob * 100).toFixed(0)}%`.padEnd(12)).join(' ')}\n`);
        // the target's rank (0: the top token) and probability at the last position, layer by layer
        if (r.target) {
          out(`\n${JSON.stringify(r.target.piece)} at the last position:\n`);
          for (const l of r.layers) { const t = l.cells.at(-1)!.target!; out(`${label(l.hook).padEnd(o.mid ? 13 : 9)}  rank ${String(t.rank).padStart(6)}  ${(100 * t.prob).toFixed(2).padStart(6)}%\n`); }
        }
      }
    } finally {
      model.dispose();
    }
  },
});
