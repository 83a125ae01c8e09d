// tapir sae eval: an SAE on the store's held-out rows, and with the model the CE loss recovered.
import { UsageError } from '../../compiler/errors.js';
import { getGpu } from '../../runtime/gpu.js';
import { evalSae } from '../../runtime/sae/eval.js';
import { loadSaeLens } from '../../runtime/sae/files.js';
import { checkSaeFits } from '../../runtime/sae/splice.js';
import { command } from '../command.js';
import { openModel, out } from '../common.js';
import { progressBar } from '../progress.js';

export default command({
  name: 'sae eval',
  summary: "evaluate an SAE on the store's held-out rows",
  usage: 'tapir sae eval [-m MODEL] --sae DIR --store STORE [--sequences N] [--json]',
  about: `On the held-out rows: L0, FVU (per-dimension mean), dead fraction, log10 density histogram, and
with the model the CE loss recovered, (CE_zero − CE_sae) / (CE_zero − CE_clean).`,
  options: {
    sae: { kind: 'string', arg: 'DIR', help: "the SAE, in SAELens's layout" },
    store: { kind: 'string', arg: 'STORE', help: 'the activation store it was trained from' },
    sequences: { kind: 'int', arg: 'N', min: 0, default: 32, help: 'held-out sequences the CE loss is measured on (default: 32; 0 skips it)' },
  },
  async run(o) {
    if (o.sae === undefined || o.store === undefined) throw new UsageError("sae eval needs --sae and --store (see 'tapir sae eval --help')");
    const model = (await openModel(o)).model;
    try {
      const s = loadSaeLens(o.sae);
      checkSaeFits(model.graph, s);
      const bar = progressBar('eval', o.sequences);
      const r = await evalSae(await getGpu(), s, o.store, { model, sequences: o.sequences, progress: (d) => bar.update(d) });
      bar.done();
      if (o.json) return out(JSON.stringify(r) + '\n');
      out(`held-out tokens ${r.tokens}: L0 ${r.l0.toFixed(2)}, FVU ${r.fvu.toFixed(4)}, dead ${(100 * r.deadFraction).toFixed(1)}%\n`);
      if (r.ce) out(`CE (nats, ${r.ce.sequences} sequences): clean ${r.ce.clean.toFixed(4)}, with the SAE ${r.ce.sae.toFixed(4)}, zero-ablated ${r.ce.zero.toFixed(4)}; recovered ${r.ce.recovered.toFixed(4)}\n`);
      out('log10 density  latents\n');
      for (const b of r.densityHistogram) out(`${b.from.toFixed(1).padStart(5)}..${b.to.toFixed(1).padStart(4)}  ${'#'.repeat(Math.min(60, b.count))} ${b.count}\n`);
    } finally {
      model.dispose();
    }
  },
});
