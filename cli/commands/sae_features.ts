// tapir sae features: an offline HTML page of feature dashboards over a store's rows.
import fs from 'node:fs';
import { UsageError } from '../../compiler/errors.js';
import { getGpu } from '../../runtime/gpu.js';
import { writeAtomically } from '../../runtime/node/write_file.js';
import { featureCards, featuresHtml } from '../../runtime/sae/features.js';
import { loadSaeLens } from '../../runtime/sae/files.js';
import { checkSaeFits } from '../../runtime/sae/splice.js';
import { command } from '../command.js';
import { progressBar } from '../progress.js';
import { idList, openModel, out } from '../common.js';

export default command({
  name: 'sae features',
  summary: 'feature dashboards of an SAE, as one HTML page',
  usage: 'tapir sae features [-m MODEL] --sae DIR --store STORE --html FILE [--latents 0,5,9] [--json]',
  about: `One offline HTML page of dashboards over the store's rows: per latent its top-activating
contexts (tokens shaded by activation), activation histogram, density and logit effect (the
top and bottom tokens of W_dec · W_U).`,
  options: {
    sae: { kind: 'string', arg: 'DIR', help: "the SAE, in SAELens's layout" },
    store: { kind: 'string', arg: 'STORE', help: 'the activation store the contexts come from' },
    html: { kind: 'output', arg: 'FILE', help: 'the page to write (atomically)' },
    latents: { kind: 'string', arg: 'LIST', help: 'comma-separated latents (default: all)' },
  },
  async run(o) {
    if (o.sae === undefined || o.store === undefined || o.html === undefined) throw new UsageError("sae features needs --sae, --store and --html (see 'tapir sae features --help')");
    const model = (await openModel(o)).model;
    try {
      const s = loadSaeLens(o.sae);
      checkSaeFits(model.graph, s);
      const latents = o.latents !== undefined ? idList(o.latents, '--latents', 'latent numbers') : undefined;
      if (latents?.some((j) => j >= s.dims.dSae)) throw new UsageError(`--latents must be below ${s.dims.dSae}`);
      const bar = progressBar('features', 1);
      const cards = await featureCards(await getGpu(), s, o.store, model, { ...(latents ? { latents } : {}), progress: (d, t) => bar.update(d, t) });
      bar.done();
      const html = featuresHtml(cards, `${s.hook ?? 'SAE'}: ${s.dims.dSae} latents`);
      writeAtomically(o.html, (fd) => { fs.writeSync(fd, html); });
      if (o.json) out(JSON.stringify({ html: o.html, latents: cards.length, dead: cards.filter((c) => c.density === 0).length }) + '\n');
      else out(`wrote ${cards.length} feature dashboards to ${o.html}\n`);
    } finally {
      model.dispose();
    }
  },
});
