// tapir patch: activation patching between a clean and a corrupted prompt, per site kind: exact, or
// attribution patching's first-order estimate from one backward.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { heatmapSvg, stackSvgs } from '../../runtime/interp/heatmap.js';
import { SITES } from '../../runtime/interp/patching.js';
import { METHODS, patchingReport, type PatchMethod } from '../../runtime/interp/patch_report.js';
import { command } from '../command.js';
import { progressBar } from '../progress.js';
import { openModel, out, tokenOption } from '../common.js';

export default command({
  name: 'patch',
  summary: 'activation patching: which activations carry the difference between two prompts',
  usage: `tapir patch [-m MODEL] --clean TEXT --corrupt TEXT (--target PIECE | --target-id N)
                   [--distractor PIECE | --distractor-id N] [--sites LIST]
                   [--method exact|attribution [--compare-exact]] [--svg FILE] [--json]`,
  about: `Transplants the clean run's activation at one site at a time into the corrupted run and scores
(patched − corrupted) / (clean − corrupted) on the metric: the target's logit at the last position,
minus the distractor's if one is given. The two prompts must tokenize to the same length.
--method attribution estimates every cell from one forward of the clean prompt and one forward and
backward of the corrupted one: (clean − corrupted) · d(metric)/d(activation), normalised the same way.`,
  options: {
    clean: { kind: 'string', arg: 'TEXT', help: 'the clean prompt (BOS is added)' },
    corrupt: { kind: 'string', arg: 'TEXT', help: 'the corrupted prompt, of as many tokens' },
    target: { kind: 'string', arg: 'PIECE', help: 'the metric\'s token, exactly as in the vocabulary (e.g. " Lily")' },
    'target-id': { kind: 'int', arg: 'N', min: 0, help: 'the target by id' },
    distractor: { kind: 'string', arg: 'PIECE', help: 'a token whose logit the metric subtracts' },
    'distractor-id': { kind: 'int', arg: 'N', min: 0, help: 'the distractor by id' },
    sites: { kind: 'string', arg: 'LIST', default: 'resid_pre', help: 'comma-separated, of ${SITES} (default: resid_pre);\nz patches one head at all positions, the others one position' },
    method: { kind: 'string', arg: 'M', default: 'exact', help: '${METHODS}: a patched run per site, or the first-order estimate\nfrom gradients (attribution patching)' },
    'compare-exact': { kind: 'flag', help: 'with --method attribution: also the exact sweep, and the correlation\nof the two per site kind' },
    svg: { kind: 'output', arg: 'FILE', help: 'one heatmap per site kind (diverging colours, values in tooltips)' },
  },
  fill: () => ({ SITES: Object.keys(SITES).join(', '), METHODS: METHODS.join(' or ') }),
  async run(o) {
    if (o.clean === undefined || o.corrupt === undefined) throw new UsageError("patch needs --clean and --corrupt (see 'tapir patch --help')");
    if (!(METHODS as readonly string[]).includes(o.method)) throw new UsageError(`unknown method '${o.method}' (methods: ${METHODS.join(', ')})`);
    const method = o.method as PatchMethod;
    if (o['compare-exact'] && method !== 'attribution') throw new UsageError('--compare-exact goes with --method attribution');
    const { model } = await openModel(o);
    try {
      const target = tokenOption(model, 'target', o.target, o['target-id']);
      if (target === undefined) throw new UsageError('patch needs --target PIECE or --target-id N');
      const distractor = tokenOption(model, 'distractor', o.distractor, o['distractor-id']);
      const sites = o.sites.split(',').map((x) => x.trim());
      const bar = progressBar('patch', 1);
      const r = await patchingReport(model, model.tokenizer.encode(o.clean), model.tokenizer.encode(o.corrupt), { target, distractor, sites, method, compareExact: o['compare-exact'], onProgress: (d, t) => bar.update(d, t) });
      bar.done();
      const shown = [...r.sites.map((s) => ({ s, how: method })), ...(r.exact ?? []).map((s) => ({ s, how: 'exact' as const }))];
      if (o.svg !== undefined) {
        const maps = shown.map(({ s, how }) => heatmapSvg({
          title: how === 'attribution' ? `attribution patching: ${s.site} (score = (clean − corrupted) · grad / (clean − corrupted metric))` : `activation patching: ${s.site} (score = (patched − corrupted) / (clean − corrupted))`,
          rows: s.rows, cols: s.cols, values: s.scores.map((row) => row.map((v) => v ?? NaN)), diverging: true,
          labels: s.scores.map((row) => row.map((v) => (v === null ? '' : v.toFixed(2)))),
          tooltips: s.scores.map((row, i) => row.map((v, j) => `${s.rows[i]} ${s.cols[j]}: score ${v === null ? 'undefined' : v.toFixed(4)}, effect ${s.effects[i]![j]!.toFixed(4)}`)),
        }));
        fs.writeFileSync(o.svg, stackSvgs(maps));
      }
      if (o.json) out(JSON.stringify(r) + '\n');
      else {
        out(`metric: clean ${r.clean.toFixed(4)}, corrupted ${r.corrupted.toFixed(4)}\n`);
        for (const { s, how } of shown) {
          out(`\n${s.site}${r.exact ? ` (${how})` : ''}: ${s.cols.map((c) => JSON.stringify(c).slice(0, 8).padEnd(8)).join(' ')}\n`);
          s.rows.forEach((row, i) => out(`${row.padEnd(8)} ${s.scores[i]!.map((v) => (v ?? NaN).toFixed(2).padStart(8)).join(' ')}\n`));
        }
        for (const [site, c] of Object.entries(r.correlation ?? {})) out(`\n${site}: correlation of attribution with exact patching ${c === null ? 'undefined' : c.toFixed(4)}\n`);
      }
    } finally {
      model.dispose();
    }
  },
});
