// tapir patch: activation patching between a clean and a corrupted prompt, per site kind.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { heatmapSvg, stackSvgs } from '../../runtime/interp/heatmap.js';
import { patchingReport, SITES } from '../../runtime/interp/patching.js';
import { command } from '../command.js';
import { progressBar } from '../progress.js';
import { openModel, out, tokenOption } from '../common.js';

export default command({
  name: 'patch',
  summary: 'activation patching: which activations carry the difference between two prompts',
  usage: `tapir patch [-m MODEL] --clean TEXT --corrupt TEXT (--target PIECE | --target-id N)
                   [--distractor PIECE | --distractor-id N] [--sites LIST] [--svg FILE] [--json]`,
  about: `Transplants the clean run's activation at one site at a time into the corrupted run and scores
(patched − corrupted) / (clean − corrupted) on the metric: the target's logit at the last position,
minus the distractor's if one is given. The two prompts must tokenize to the same length.`,
  options: {
    clean: { kind: 'string', arg: 'TEXT', help: 'the clean prompt (BOS is added)' },
    corrupt: { kind: 'string', arg: 'TEXT', help: 'the corrupted prompt, of as many tokens' },
    target: { kind: 'string', arg: 'PIECE', help: 'the metric\'s token, exactly as in the vocabulary (e.g. " Lily")' },
    'target-id': { kind: 'int', arg: 'N', min: 0, help: 'the target by id' },
    distractor: { kind: 'string', arg: 'PIECE', help: 'a token whose logit the metric subtracts' },
    'distractor-id': { kind: 'int', arg: 'N', min: 0, help: 'the distractor by id' },
    sites: { kind: 'string', arg: 'LIST', default: 'resid_pre', help: 'comma-separated, of ${SITES} (default: resid_pre);\nz patches one head at all positions, the others one position' },
    svg: { kind: 'output', arg: 'FILE', help: 'one heatmap per site kind (diverging colours, values in tooltips)' },
  },
  fill: () => ({ SITES: Object.keys(SITES).join(', ') }),
  async run(o) {
    if (o.clean === undefined || o.corrupt === undefined) throw new UsageError("patch needs --clean and --corrupt (see 'tapir patch --help')");
    const { model } = await openModel(o);
    try {
      const target = tokenOption(model, 'target', o.target, o['target-id']);
      if (target === undefined) throw new UsageError('patch needs --target PIECE or --target-id N');
      const distractor = tokenOption(model, 'distractor', o.distractor, o['distractor-id']);
      const sites = o.sites.split(',').map((x) => x.trim());
      const bar = progressBar('patch', 1);
      const r = await patchingReport(model, model.tokenizer.encode(o.clean), model.tokenizer.encode(o.corrupt), { target, distractor, sites, onProgress: (d, t) => bar.update(d, t) });
      bar.done();
      if (o.svg !== undefined) {
        const maps = r.sites.map((s) => heatmapSvg({
          title: `activation patching: ${s.site} (score = (patched − corrupted) / (clean − corrupted))`,
          rows: s.rows, cols: s.cols, values: s.scores.map((row) => row.map((v) => v ?? NaN)), diverging: true,
          labels: s.scores.map((row) => row.map((v) => (v === null ? '' : v.toFixed(2)))),
          tooltips: s.scores.map((row, i) => row.map((v, j) => `${s.rows[i]} ${s.cols[j]}: score ${v === null ? 'undefined' : v.toFixed(4)}, effect ${s.effects[i]![j]!.toFixed(4)}`)),
        }));
        fs.writeFileSync(o.svg, stackSvgs(maps));
      }
      if (o.json) out(JSON.stringify(r) + '\n');
      else {
        out(`metric: clean ${r.clean.toFixed(4)}, corrupted ${r.corrupted.toFixed(4)}\n`);
        for (const s of r.sites) {
          out(`\n${s.site}: ${s.cols.map((c) => JSON.stringify(c).slice(0, 8).padEnd(8)).join(' ')}\n`);
          s.rows.forEach((row, i) => out(`${row.padEnd(8)} ${s.scores[i]!.map((v) => (v ?? NaN).toFixed(2).padStart(8)).join(' ')}\n`));
        }
      }
    } finally {
      model.dispose();
    }
  },
});
