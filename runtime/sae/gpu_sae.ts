// A sparse autoencoder on the GPU: its parameters, Adam moments and a batch's buffers, and the kernels of
// ops/sae_*.ts and ops/adam.ts dispatched over them. One batch size for its life (the kernels' uniforms
// are fixed); a shorter batch is padded with zero rows, which the caller ignores.
import type { GpuContext } from '../gpu.js';
import { grid, pipelineFor, uniformData } from '../pipelines.js';
import { readBuffer } from '../readback.js';
import { kernels } from '../../ops/kernels.gen.js';
import { storageParams, uniformParams } from '../../compiler/kernel/ir.js';
import { uniformBytes } from '../../compiler/kernel/wgsl.js';
import type { SaeArch } from '../../ops/sae_encode.js';

export interface SaeDims { dIn: number; dSae: number; arch: SaeArch; k: number }
export interface SaeTrainHyper { lr: number; beta1: number; beta2: number; eps: number; l1: number;
  /** TopK's aux-K: latents dead after `deadWindow` tokens without firing; kAux of them reconstruct the error, weight α */
  auxK?: number; auxAlpha?: number; deadWindow?: number }
/** parameter tensors by SAELens name */
export type SaeTensors = Record<'W_enc' | 'b_enc' | 'W_dec' | 'b_dec', Float32Array>;
export const PARAMS = ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const;

interface Pass { pipeline: GPUComputePipeline; bind: GPUBindGroup; groups: [number, number] }

export class GpuSae {
  readonly bufs = new Map<string, GPUBuffer>();
  private owned: GPUBuffer[] = [];
  private forwardPasses: Pass[] = [];
  private trainPasses: Pass[] = [];

  constructor(readonly gpu: GpuContext, readonly dims: SaeDims, readonly rows: number, readonly hyper: SaeTrainHyper, params: SaeTensors) {
    const { dIn, dSae, k } = dims;
    const sizes: Record<string, number> = {
      W_enc: dIn * dSae, b_enc: dSae, W_dec: dSae * dIn, b_dec: dIn,
      x: rows * dIn, pre: rows * dSae, acts: rows * dSae, chosen: rows * Math.max(k, 1), xHat: rows * dIn, g: rows * dIn, sq: rows, gPre: rows * dSae, step: 2,
      actsAux: rows * dSae, chosenAux: rows * Math.max(hyper.auxK ?? 0, 1), eAux: rows * dIn, gAux: rows * dIn, sqAux: rows, since: dSae, zeros: dIn,
    };
    for (const p of PARAMS) for (const s of ['', ':grad', ':m', ':v']) sizes[p + s] = sizes[p]!;
    for (const [name, n] of Object.entries(sizes)) this.buffer(name, n);
    for (const p of PARAMS) this.write(p, params[p]);
    const topk = dims.arch === 'topk' ? 1 : 0;
    const u = { rows, dIn, dSae, k, topk, l1: hyper.l1 };
    this.forwardPasses = [
      this.pass('saeEncodeKernel', { x: 'x', wEnc: 'W_enc', bEnc: 'b_enc', bDec: 'b_dec', pre: 'pre', acts: 'acts', chosen: 'chosen' }, u, rows),
      this.pass('saeDecodeKernel', { acts: 'acts', chosen: 'chosen', wDec: 'W_dec', bDec: 'b_dec', out: 'xHat' }, u, rows),
      this.pass('saeErrorKernel', { x: 'x', xHat: 'xHat', g: 'g', sq: 'sq' }, u, Math.ceil(rows / 64)),
    ];
    const adam = (p: string, n: number) => this.pass('adamKernel', { p, g: `${p}:grad`, m: `${p}:m`, v: `${p}:v`, step: 'step' }, { n, lr: hyper.lr, beta1: hyper.beta1, beta2: hyper.beta2, eps: hyper.eps }, Math.ceil(n / 64));
    // aux-K (TopK only): the dead latents (by `since`, tokens since each last fired) reconstruct the error
    const kAux = topk ? hyper.auxK ?? 0 : 0;
    const aux = kAux > 0 ? [
      this.pass('saeAuxKernel', { pre: 'pre', since: 'since', actsAux: 'actsAux', chosenAux: 'chosenAux' }, { dSae, kAux, window: hyper.deadWindow ?? Infinity }, rows),
      this.pass('saeDecodeKernel', { acts: 'actsAux', chosen: 'chosenAux', wDec: 'W_dec', bDec: 'zeros', out: 'eAux' }, { dIn, dSae, k: kAux, topk: 1 }, rows),
      this.pass('saeAuxErrorKernel', { x: 'x', xHat: 'xHat', eAux: 'eAux', gAux: 'gAux', sqAux: 'sqAux' }, { rows, dIn, alpha: hyper.auxAlpha ?? 1 / 32 }, Math.ceil(rows / 64)),
    ] : [];
    this.trainPasses = [
      ...this.forwardPasses,
      ...aux,
      this.pass('saeGradPreKernel', { g: 'g', acts: 'acts', gAux: 'gAux', actsAux: 'actsAux', wDec: 'W_dec', gPre: 'gPre' }, u, Math.ceil((rows * dSae) / 64)),
      this.pass('saeGradDecKernel', { g: 'g', acts: 'acts', gAux: 'gAux', actsAux: 'actsAux', wDec: 'W_dec', grad: 'W_dec:grad' }, u, Math.ceil((dSae * dIn) / 64)),
      this.pass('saeGradEncKernel', { x: 'x', bDec: 'b_dec', gPre: 'gPre', grad: 'W_enc:grad' }, u, Math.ceil((dIn * dSae) / 64)),
      this.pass('saeGradBencKernel', { gPre: 'gPre', grad: 'b_enc:grad' }, u, Math.ceil(dSae / 64)),
      this.pass('saeGradBdecKernel', { g: 'g', wEnc: 'W_enc', gBenc: 'b_enc:grad', grad: 'b_dec:grad' }, u, Math.ceil(dIn / 64)),
      ...PARAMS.map((p) => adam(p, sizes[p]!)),
      ...(topk ? [this.pass('unitRowsKernel', { w: 'W_dec' }, { rows: dSae, cols: dIn }, Math.ceil(dSae / 64))] : []),
      this.pass('saeSinceKernel', { acts: 'acts', since: 'since' }, { rows, dSae }, Math.ceil(dSae / 64)),
    ];
  }

  private buffer(name: string, floats: number) {
    const b = this.gpu.device.createBuffer({ size: Math.max(16, floats * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    this.owned.push(b);
    this.bufs.set(name, b);
  }

  private pass(kernel: string, bind: Record<string, string>, values: Record<string, number>, groups: number): Pass {
    const k = kernels[kernel]!;
    const d = this.gpu.device;
    const pipeline = pipelineFor(this.gpu, k, values);
    const entries: GPUBindGroupEntry[] = storageParams(k).map((p, i) => ({ binding: i, resource: { buffer: this.bufs.get(bind[p.name]!)! } }));
    if (uniformParams(k).length) {
      const ub = d.createBuffer({ size: uniformBytes(k), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      d.queue.writeBuffer(ub, 0, new Uint8Array(uniformData(k, values)));
      this.owned.push(ub);
      entries.push({ binding: entries.length, resource: { buffer: ub } });
    }
    return { pipeline, bind: d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }), groups: grid(groups) };
  }

  write(name: string, data: Float32Array) {
    this.gpu.device.queue.writeBuffer(this.bufs.get(name)!, 0, data as Float32Array<ArrayBuffer>);
  }

  async read(name: string): Promise<Float32Array> {
    const b = this.bufs.get(name)!;
    return (await readBuffer(this.gpu, b)).subarray(0, b.size / 4);
  }

  private run(passes: readonly Pass[]) {
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (const p of passes) {
      pass.setPipeline(p.pipeline);
      pass.setBindGroup(0, p.bind);
      pass.dispatchWorkgroups(p.groups[0], p.groups[1]);
    }
    pass.end();
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /** Encode and decode `x` ([rows, dIn]; fewer rows are padded with zeros). Read the results with read(). */
  forward(x: Float32Array) {
    this.setBatch(x);
    this.run(this.forwardPasses);
  }

  /** One training step on batch `x` (step t, 1-based, for Adam's bias corrections). */
  trainStep(x: Float32Array, t: number) {
    this.setBatch(x);
    const h = this.hyper;
    this.write('step', Float32Array.of(1 / (1 - h.beta1 ** t), 1 / (1 - h.beta2 ** t)));
    this.run(this.trainPasses);
  }

  private setBatch(x: Float32Array) {
    const full = this.rows * this.dims.dIn;
    if (x.length > full) throw new Error(`internal: a batch of ${x.length / this.dims.dIn} rows for an SAE of ${this.rows}`);
    this.write('x', x.length === full ? x : (() => { const p = new Float32Array(full); p.set(x); return p; })());
  }

  async params(): Promise<SaeTensors> {
    const out = {} as SaeTensors;
    for (const p of PARAMS) out[p] = await this.read(p);
    return out;
  }

  destroy() {
    for (const b of this.owned) b.destroy();
    this.owned = [];
  }
}
