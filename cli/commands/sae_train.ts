// tapir sae train: an SAE trained on a store's rows on the GPU, checkpointed and resumable.
import { UsageError } from '../../compiler/errors.js';
import { getGpu } from '../../runtime/gpu.js';
import { saveSaeLens } from '../../runtime/sae/files.js';
import { readManifest } from '../../runtime/sae/store.js';
import { trainSae } from '../../runtime/sae/train.js';
import { command } from '../command.js';
import { out } from '../common.js';
import { progressBar } from '../progress.js';

export default command({
  name: 'sae train',
  summary: "train an SAE on a store's training rows on the GPU",
  usage: `tapir sae train --store STORE --out DIR [--arch topk|relu] [--k K] [--latents 8x|N] [--steps N]
                       [--batch B] [--lr LR] [--l1 C] [--seed S] [--checkpoint-every N] [--json]`,
  about: `Trains an SAE on the store's training rows on the GPU (Adam; TopK keeps decoder rows at unit
norm; ReLU takes an L1 penalty weighted by decoder-row norms), logging loss, L0, FVU and dead
fraction. Checkpoints (DIR/checkpoint.safetensors) are atomic; the same command resumes and ends
bit-identical to an uninterrupted run. At the end DIR holds the SAE in SAELens's layout
(cfg.json + sae_weights.safetensors, the input scale folded in).`,
  model: false,
  options: {
    store: { kind: 'string', arg: 'STORE', help: 'the activation store (tapir sae collect)' },
    out: { kind: 'output', arg: 'DIR', help: 'where the SAE and its checkpoint go' },
    arch: { kind: 'string', arg: 'ARCH', default: 'topk', help: 'topk or relu (default: topk)' },
    k: { kind: 'int', arg: 'K', min: 1, default: 8, help: 'latents a TopK SAE keeps per row (default: 8)' },
    latents: { kind: 'string', arg: 'N', help: 'latents: a count, or a multiple of the input width as 8x (default: 8x)' },
    steps: { kind: 'int', arg: 'N', min: 1, default: 1000, help: 'training steps (default: 1000)' },
    batch: { kind: 'int', arg: 'B', min: 1, default: 256, help: 'rows a step (default: 256)' },
    lr: { kind: 'number', arg: 'LR', min: 0, max: 1, default: 3e-4, help: "Adam's learning rate (default: 0.0003)" },
    l1: { kind: 'number', arg: 'C', min: 0, max: 1e6, default: 5, help: 'the L1 coefficient of a ReLU SAE (default: 5)' },
    seed: { kind: 'int', arg: 'S', min: 0, default: 0, help: 'initialisation and shuffling seed (default: 0)' },
    'checkpoint-every': { kind: 'int', arg: 'N', min: 1, default: 100, help: 'steps between checkpoints (default: 100)' },
  },
  async run(o) {
    if (o.store === undefined || o.out === undefined) throw new UsageError("sae train needs --store and --out (see 'tapir sae train --help')");
    const { arch, steps } = o;
    if (arch !== 'topk' && arch !== 'relu') throw new UsageError(`--arch must be topk or relu, got '${arch}'`);
    const dIn = readManifest(o.store).dIn;
    const lat = o.latents === undefined ? dIn * 8 : /^\d+x$/.test(o.latents) ? dIn * Number(o.latents.slice(0, -1)) : Number(o.latents);
    if (!Number.isInteger(lat) || lat < 1) throw new UsageError(`--latents must be a count or a multiple like 8x, got '${o.latents}'`);
    const bar = progressBar('train', steps);
    const r = await trainSae(await getGpu(), {
      store: o.store, out: o.out, arch, k: o.k, dSae: lat, steps, batch: o.batch, seed: o.seed,
      hyper: { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, l1: arch === 'relu' ? o.l1 : 0 },
      checkpointEvery: o['checkpoint-every'], logEvery: Math.max(1, Math.floor(steps / 50)), deadWindow: 100000,
      onLog: (l) => { bar.update(l.step); if (!o.json && !process.stderr.isTTY) process.stderr.write(`step ${l.step}: loss ${l.loss.toFixed(4)} L0 ${l.l0.toFixed(2)} FVU ${l.fvu.toFixed(4)} dead ${(100 * l.deadFraction).toFixed(1)}%\n`); },
    });
    bar.done();
    saveSaeLens(o.out, { dims: r.dims, params: r.params, inputScale: r.scale, hook: r.hook, model: r.model });
    const last = r.log[r.log.length - 1];
    if (o.json) out(JSON.stringify({ out: o.out, steps: r.step, inputScale: r.scale, last, log: r.log }) + '\n');
    else out(`${o.out}: ${r.dims.arch} SAE, ${r.dims.dIn} -> ${r.dims.dSae}, ${r.step} steps; last: loss ${last?.loss.toFixed(4)} L0 ${last?.l0.toFixed(2)} FVU ${last?.fvu.toFixed(4)}\n`);
  },
});
