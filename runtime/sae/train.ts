// Training an SAE on the GPU from an activation store. Batches are a function of (seed, step) alone: each
// epoch is a seeded shuffle of every training row across all shards, so a run killed and restarted
// from its checkpoint (parameters, Adam moments, step, the dead-latent window: one safetensors file,
// written atomically) draws the same batches and ends bit-identical to an uninterrupted run.
// Inputs are scaled by s = √d_in / E‖x‖ (measured on the training rows, stored in the checkpoint and
// folded into the weights on export).
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../compiler/errors.js';
import { parseSafetensors, writeSafetensors } from '../formats/safetensors.js';
import { writeAtomically } from '../node/write_file.js';
import { Rng } from '../sampler.js';
import type { GpuContext } from '../gpu.js';
import { GpuSae, PARAMS, type SaeDims, type SaeTensors, type SaeTrainHyper } from './gpu_sae.js';
import { initSae } from './sae.js';
import { readManifest, readSplit } from './store.js';

export const CHECKPOINT = 'checkpoint.safetensors';

export interface TrainOptions {
  store: string;
  out: string;
  arch: SaeDims['arch'];
  k: number;
  dSae: number;
  steps: number;
  batch: number;
  seed: number;
  hyper: SaeTrainHyper;
  checkpointEvery: number;
  logEvery: number;
  /** a latent is dead when it fired on none of the last this many training tokens (aux-K trains those) */
  deadWindow: number;
  onLog?: (l: TrainLog) => void;
  /** stop (as if killed) after this step: for tests of resuming */
  stopAfter?: number;
}
export interface TrainLog { step: number; loss: number; l0: number; fvu: number; deadFraction: number }

/** Batch `t`'s rows: epoch e = ⌊tB / N⌋ is a seeded Fisher–Yates shuffle of 0..N−1. */
export class BatchOrder {
  private epoch = -1;
  private perm = new Uint32Array(0);
  constructor(readonly rows: number, readonly batch: number, readonly seed: number) {}
  rowsOf(t: number): Uint32Array {
    const out = new Uint32Array(this.batch);
    for (let r = 0; r < this.batch; r++) {
      const n = t * this.batch + r, e = Math.floor(n / this.rows);
      if (e !== this.epoch) this.shuffle(e);
      out[r] = this.perm[n % this.rows]!;
    }
    return out;
  }
  private shuffle(e: number) {
    const rng = new Rng(BigInt(this.seed) * 1000003n + BigInt(e) + 1n);
    this.perm = Uint32Array.from({ length: this.rows }, (_, i) => i);
    for (let i = this.rows - 1; i > 0; i--) {
      const j = rng.u32() % (i + 1);
      [this.perm[i], this.perm[j]] = [this.perm[j]!, this.perm[i]!];
    }
    this.epoch = e;
  }
}

export async function trainSae(gpu: GpuContext, o: TrainOptions): Promise<{ params: SaeTensors; scale: number; dims: SaeDims; step: number; log: TrainLog[]; model: string; hook: string }> {
  const m = readManifest(o.store);
  const data = readSplit(o.store, m, false);
  if (data.rows < o.batch) throw new UsageError(`the store has ${data.rows} training rows, fewer than a batch of ${o.batch}`);
  const dims: SaeDims = { dIn: m.dIn, dSae: o.dSae, arch: o.arch, k: o.arch === 'topk' ? o.k : 0 };
  if (dims.arch === 'topk' && !(o.k >= 1 && o.k <= o.dSae)) throw new UsageError(`--k must be between 1 and the latents (${o.dSae})`);
  fs.mkdirSync(o.out, { recursive: true });
  const ckFile = path.join(o.out, CHECKPOINT);
  const config = JSON.stringify({ store: path.resolve(o.store), dims, batch: o.batch, seed: o.seed, hyper: o.hyper, deadWindow: o.deadWindow });
  let step = 0, scale: number, params: SaeTensors, moments: Record<string, Float32Array> | undefined;
  if (fs.existsSync(ckFile)) {
    const ck = readCheckpoint(ckFile);
    if (ck.meta.config !== config) throw new UsageError(`${ckFile} is from a run with other settings: use another --out, or the same settings to resume`);
    step = Number(ck.meta.step);
    scale = Number(ck.meta.scale);
    params = Object.fromEntries(PARAMS.map((p) => [p, ck.tensors[p]!])) as SaeTensors;
    moments = ck.tensors;
  } else {
    let norm = 0;
    for (let r = 0; r < data.rows; r++) {
      let ss = 0;
      for (let i = 0; i < m.dIn; i++) ss += data.x[r * m.dIn + i]! ** 2;
      norm += Math.sqrt(ss) / data.rows;
    }
    scale = Math.fround(Math.sqrt(m.dIn) / norm);
    const mean = new Float32Array(m.dIn);
    for (let r = 0; r < data.rows; r++) for (let i = 0; i < m.dIn; i++) mean[i]! += (data.x[r * m.dIn + i]! * scale) / data.rows;
    params = initSae(dims, o.seed, mean);
  }
  const x = data.x.map((v) => v * scale);
  // TopK's aux-K (Gao et al.; SAELens's defaults): k_aux = d_in / 2 dead latents, weight 1/32
  const hyper: SaeTrainHyper = { ...o.hyper, ...(dims.arch === 'topk' ? { auxK: Math.min(dims.dSae, Math.floor(m.dIn / 2)), auxAlpha: 1 / 32, deadWindow: o.deadWindow } : {}) };
  const sae = new GpuSae(gpu, dims, o.batch, hyper, params);
  const log: TrainLog[] = [];
  try {
    if (moments) {
      for (const p of PARAMS) { sae.write(`${p}:m`, moments[`${p}:m`]!); sae.write(`${p}:v`, moments[`${p}:v`]!); }
      sae.write('since', moments.since!);
    }
    const order = new BatchOrder(data.rows, o.batch, o.seed);
    const batch = new Float32Array(o.batch * m.dIn);
    const save = async () => writeCheckpoint(ckFile, sae, { config, step: String(step), scale: String(scale) });
    while (step < o.steps) {
      const rows = order.rowsOf(step);
      for (let r = 0; r < o.batch; r++) batch.set(x.subarray(rows[r]! * m.dIn, (rows[r]! + 1) * m.dIn), r * m.dIn);
      sae.trainStep(batch, step + 1);
      step++;
      if (step % o.logEvery === 0 || step === o.steps) {
        const [acts, sq, since] = [await sae.read('acts'), await sae.read('sq'), await sae.read('since')];
        let active = 0;
        for (let n = 0; n < o.batch * dims.dSae; n++) if (acts[n]! > 0) active++;
        const loss = sq.subarray(0, o.batch).reduce((a, b) => a + b, 0) / o.batch;
        const mu = new Float64Array(m.dIn);
        for (let r = 0; r < o.batch; r++) for (let i = 0; i < m.dIn; i++) mu[i]! += batch[r * m.dIn + i]! / o.batch;
        let varSum = 0;
        for (let r = 0; r < o.batch; r++) for (let i = 0; i < m.dIn; i++) varSum += (batch[r * m.dIn + i]! - mu[i]!) ** 2;
        const l: TrainLog = { step, loss, l0: active / o.batch, fvu: (loss * o.batch) / varSum, deadFraction: since.subarray(0, dims.dSae).filter((t) => t >= o.deadWindow).length / dims.dSae };
        log.push(l);
        o.onLog?.(l);
      }
      if (step % o.checkpointEvery === 0 || step === o.steps) await save();
      if (o.stopAfter !== undefined && step >= o.stopAfter) break;
    }
    return { params: await sae.params(), scale, dims, step, log, model: m.model, hook: m.hook };
  } finally {
    sae.destroy();
  }
}

async function writeCheckpoint(file: string, sae: GpuSae, meta: Record<string, string>) {
  const tensors: { name: string; dtype: 'f32'; shape: number[]; bytes: Uint8Array }[] = [];
  for (const p of PARAMS) for (const s of ['', ':m', ':v']) {
    const v = await sae.read(p + s);
    tensors.push({ name: p + s, dtype: 'f32', shape: [v.length], bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) });
  }
  const since = (await sae.read('since')).slice(0, sae.dims.dSae);
  tensors.push({ name: 'since', dtype: 'f32', shape: [since.length], bytes: new Uint8Array(since.buffer) });
  const bytes = writeSafetensors(tensors, meta);
  writeAtomically(file, (fd) => { fs.writeSync(fd, bytes); });
}

function readCheckpoint(file: string): { meta: Record<string, string>; tensors: Record<string, Float32Array> } {
  const bytes = fs.readFileSync(file);
  const st = parseSafetensors(bytes, file, bytes.byteLength);
  const tensors: Record<string, Float32Array> = {};
  for (const [name, t] of st.tensors) tensors[name] = new Float32Array(bytes.buffer.slice(bytes.byteOffset + t.begin, bytes.byteOffset + t.end));
  return { meta: Object.fromEntries(st.metadata), tensors };
}
