// Runs a plan on a WebGPU device. Everything is created once: buffers, weights uploads, uniform
// buffers, pipelines and bind groups. Per decode step only the token id and the single-element
// position buffer are written, then the recorded dispatch list is encoded and submitted.
import { type Plan } from '../compiler/plan.js';
import { type KernelIR, storageParams, uniformParams } from '../compiler/kernel/ir.js';
import { repack, sameLayout } from '../ops/dequant.js';
import { rawBytes } from '../compiler/ir/dtype.js';
import { kernels } from '../ops/kernels.gen.js';

/** Greedy decoding's steps a command buffer, submit by submit (the position advances on the GPU):
 *  the first submit holds one step, so the GPU starts after one step's encoding, not eight; later
 *  ones grow by at most 1.5× while the host encodes faster than the GPU runs, so the GPU never waits
 *  (with eight from the start it idled the eight steps' encoding, 3-6 ms of a 256-token run on the
 *  H200 machines); then eight a submit, which costs the host less per step. */
const SUBMIT_STEPS = [1, 1, 2, 2, 3, 4, 5, 6, 8];
import { uniformBytes } from '../compiler/kernel/wgsl.js';
import { grid, pipelineFor, preparePipelines, planPipelines, uniformData } from './pipelines.js';
import { checked, type GpuContext } from './gpu.js';
import { weightRowsInto, type WeightMap } from './weights.js';
import { type BufId, type Node, inRange } from '../compiler/ir/op.js';
import { PassTimer, readBuffer } from './readback.js';

/** bytes of the executor's uniform buffer each dispatch takes: WebGPU's largest minUniformBufferOffsetAlignment */
const UNIFORM_SLOT = 256;
/** a pass of more dispatches than this is submitted in pieces, the first of FIRST_PIECE (submitSteps) */
const PIECES_FROM = 128;
const FIRST_PIECE = 32;

export interface Step {
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly groups: readonly [number, number];
  readonly kernel: string;
}

/** A constant's value is its op's float64 reference, rounded to f32 (e.g. the RoPE table). */
export const constValue = (plan: Plan) => (id: BufId): Float32Array => {
  const n = plan.buffers.get(id)!.constNode!;
  return Float32Array.from(n.op.reference([], n.attr, { srcs: [], out: n.shape }));
};

/** After a step, copy output `output` (its first `bytes`) into `dst` at `offset`. */
export interface StageCopy { output: string; dst: GPUBuffer; offset: number; bytes: number; srcOffset?: number }

/** Where executors' creation time went in this process (the interp benchmark's first-run breakdown):
 *  pipelines made (or awaited), buffers and bind groups built, and WebGPU's validation answered. */
export const creation = { pipelines_ms: 0, build_ms: 0, check_ms: 0 };

export class Executor {
  readonly buffers = new Map<BufId, GPUBuffer>();
  readonly steps: Step[] = [];
  private readback: GPUBuffer;
  private owned: GPUBuffer[] = [];
  /** the executor whose buffers this one's share (itself, for a model's own plan) */
  readonly root: Executor;
  /** (root only) activation and scratch buffers lent to the executors sharing with it, by size: only
   *  one pass runs at a time and each reads its outputs in its own submission, so the variants of a
   *  model take turns with one set instead of each allocating its own (most of a new variant's cost) */
  private arena = new Map<number, GPUBuffer[]>();
  /** bytes bound of buffers lent by the arena (which are larger) */
  private bindBytes = new Map<GPUBuffer, number>();
  private outBytes: number;

  constructor(
    readonly gpu: GpuContext,
    readonly plan: Plan,
    weights: WeightMap,
    consts: (id: BufId) => Float32Array = constValue(plan),
    /** another executor of the same model: its weights, constants and KV cache are used, not copied */
    share?: Executor,
  ) {
    const d = gpu.device;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    // the largest weight piece this executor uploads (not one it shares), in the file's bytes
    const largestPiece = Math.max(0, ...[...plan.buffers.values()].map((b) => (b.weight && !share?.buffers.has(b.id) ? rawBytes(weights.get(b.weight.name)!.dtype, b.weight.rows * b.weight.cols) : 0)));
    let host = new Uint8Array(0);
    this.root = share ? share.root : this;
    const lent = new Map<number, number>(); // arena buffers this plan took, by size class
    // buffers are whole 16-byte lanes: kernels read some arrays four words at a time, and the printer
    // clamps every index to the array's length in whole elements (compiler/kernel/bounds.ts), so a
    // trailing part-lane (a q8_0 matrix of 68 × 96: 6936 bytes) would be out of reach; never past a binding
    const sizeOf = (bytes: number) => (Math.ceil(bytes / 16) * 16 <= gpu.limits.maxStorageBufferBindingSize ? Math.ceil(bytes / 16) * 16 : Math.ceil(bytes / 4) * 4);
    for (const spec of plan.buffers.values()) {
      const theirs = share?.buffers.get(spec.id);
      if (theirs && (spec.kind === 'weight' || spec.kind === 'const' || spec.kind === 'state') && theirs.size === sizeOf(spec.bytes)) {
        this.buffers.set(spec.id, theirs);
        continue;
      }
      if (share && (spec.kind === 'activation' || spec.kind === 'scratch')) {
        const buf = this.root.lend(sizeOf(spec.bytes), lent);
        this.bindBytes.set(buf, sizeOf(spec.bytes));
        this.buffers.set(spec.id, buf);
        continue;
      }
      const buf = d.createBuffer({ size: sizeOf(spec.bytes), usage });
      this.owned.push(buf);
      this.buffers.set(spec.id, buf);
      if (spec.weight) {
        // a weight read from the file into one host buffer, and written from there as it is where the GPU
        // layout is the file's (f32, f16 and bf16 of even width), else repacked (H100, 2.4 GB: 2.5 s
        // through each buffer's mapping at creation; lavapipe 2.5 times faster this way)
        const w = weights.get(spec.weight.name)!;
        const { rowStart, rows, cols } = spec.weight;
        const n = rawBytes(w.dtype, rows * cols);
        if (host.byteLength < n) host = new Uint8Array(largestPiece);
        const raw = weightRowsInto(w, rowStart, rows, host.subarray(0, n));
        const data = sameLayout(w.dtype, cols) ? raw : repack(w.dtype, raw, rows, cols);
        d.queue.writeBuffer(buf, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
      } else if (spec.kind === 'const') {
        d.queue.writeBuffer(buf, 0, consts(spec.id) as Float32Array<ArrayBuffer>);
      }
    }
    // every dispatch's uniforms in one buffer, each at its own 256-byte slot (WebGPU's largest uniform
    // offset alignment): one buffer and one write instead of one of each per dispatch
    const slots: number[] = plan.dispatches.map((ds) => (uniformParams(plan.kernels.get(ds.kernel)!).length ? UNIFORM_SLOT : 0));
    const uniformBuf = d.createBuffer({ size: Math.max(16, slots.reduce((a, b) => a + b, 0)), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.owned.push(uniformBuf);
    const uniformHost = new Uint8Array(uniformBuf.size);
    let at = 0;
    plan.dispatches.forEach((ds, i) => {
      const k = plan.kernels.get(ds.kernel)!;
      if (slots[i]) uniformHost.set(new Uint8Array(uniformData(k, ds.uniforms)), at);
      const { step } = this.bindKernel(k, Object.fromEntries(Object.entries(ds.bind).map(([p, id]) => [p, this.buffers.get(id)!])), ds.uniforms, ds.groups, ds.kernel, slots[i] ? { buffer: uniformBuf, offset: at } : undefined);
      at += slots[i]!;
      this.steps.push(step);
    });
    d.queue.writeBuffer(uniformBuf, 0, uniformHost);
    // each range of positions with its own dispatches, and its steps: chosen per pass without a scan
    this.ranges = plan.positionBreaks().map((from) => ({ from, steps: this.steps.filter((_, i) => inRange(plan.dispatches[i]!.when, from)) }));
    this.outBytes = Math.max(...Object.values(plan.outputs).map((id) => plan.buffers.get(id)!.bytes));
    this.readback = d.createBuffer({ size: this.outBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.owned.push(this.readback);
  }

  /** An executor whose pipelines were compiled side by side first (see preparePipelines), checked for
   *  validation errors. */
  static async create(gpu: GpuContext, plan: Plan, weights: WeightMap, share?: Executor): Promise<Executor> {
    const t0 = performance.now();
    await preparePipelines(gpu, planPipelines(plan));
    const t1 = performance.now();
    let t2 = t1;
    try {
      return await checked(gpu, () => { const ex = new Executor(gpu, plan, weights, undefined, share); t2 = performance.now(); return ex; });
    } finally {
      const t3 = performance.now();
      creation.pipelines_ms += t1 - t0; creation.build_ms += t2 - t1; creation.check_ms += t3 - t2;
    }
  }

  /** A dispatch of kernel `k` over these buffers (by parameter name), and its uniform buffer if any. */
  private bindKernel(k: KernelIR, bufs: Record<string, GPUBuffer>, values: Readonly<Record<string, number>>, groups: number, name = k.name, slot?: { buffer: GPUBuffer; offset: number }): { step: Step; uniforms?: GPUBuffer } {
    const d = this.gpu.device;
    const pipeline = pipelineFor(this.gpu, k, values);
    const entries: GPUBindGroupEntry[] = storageParams(k).map((p, i) => ({ binding: i, resource: { buffer: bufs[p.name]!, size: this.bindBytes.get(bufs[p.name]!) } }));
    let uniforms: GPUBuffer | undefined;
    if (slot) entries.push({ binding: entries.length, resource: { buffer: slot.buffer, offset: slot.offset, size: uniformBytes(k) } });
    else if (uniformParams(k).length) {
      uniforms = d.createBuffer({ size: uniformBytes(k), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      d.queue.writeBuffer(uniforms, 0, new Uint8Array(uniformData(k, values)));
      entries.push({ binding: entries.length, resource: { buffer: uniforms } });
    }
    const bindGroup = d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    return { step: { pipeline, bindGroup, groups: grid(groups), kernel: name }, uniforms };
  }

  /** The steps a pass at position `pos` runs (ranges ascend; most plans have one). */
  stepsAt(pos: number): readonly Step[] {
    let i = this.ranges.length - 1;
    while (i > 0 && this.ranges[i]!.from > pos) i--;
    return this.ranges[i]!.steps;
  }
  private ranges: { from: number; steps: readonly Step[] }[] = [];

  /** The position a pass's inputs name (its first row's); 0 where they name none. */
  private posOf(inputs: Readonly<Record<string, number | Float32Array | Int32Array>>): number {
    const p = inputs.pos;
    if (p === undefined) {
      if (this.ranges.length > 1) throw new Error('internal: this plan runs other kernels at other positions: give the pass its pos');
      return 0;
    }
    return typeof p === 'number' ? p : p[0]!;
  }

  /** Write a host-provided input (e.g. an intervention table) that stays until written again. */
  write(name: string, data: Float32Array) {
    const id = this.plan.inputs[name];
    if (!id) throw new Error(`internal: the plan has no input '${name}'`);
    this.gpu.device.queue.writeBuffer(this.buffers.get(id)!, 0, data as Float32Array<ArrayBuffer>);
  }

  /** Zero the state (KV cache) for a new sequence. */
  reset() {
    const enc = this.gpu.device.createCommandEncoder();
    for (const spec of this.plan.buffers.values()) if (spec.kind === 'state') enc.clearBuffer(this.buffers.get(spec.id)!);
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /** Queue the writes of per-step inputs (by name: token, pos; a number is one i32). */
  private writeInputs(inputs: Readonly<Record<string, number | Float32Array | Int32Array>>) {
    for (const [name, value] of Object.entries(inputs))
      this.gpu.device.queue.writeBuffer(this.buffers.get(this.plan.inputs[name]!)!, 0, (typeof value === 'number' ? Int32Array.of(value) : value) as Float32Array<ArrayBuffer>);
  }

  /** Copy plan outputs into collecting buffers (hook values staged after a pass). */
  private encodeStage(enc: GPUCommandEncoder, stage: readonly StageCopy[]) {
    for (const c of stage) enc.copyBufferToBuffer(this.buffers.get(this.plan.outputs[c.output]!)!, c.srcOffset ?? 0, c.dst, c.offset, c.bytes);
  }

  /** Write the per-step inputs (by name: token, pos), run every dispatch and copy the `stage` outputs
   *  into their collecting buffers; submitted, not waited for. Later queue work sees its results. */
  submit(inputs: Readonly<Record<string, number | Float32Array | Int32Array>>, stage: readonly StageCopy[] = []) {
    this.writeInputs(inputs);
    this.submitSteps(this.stepsAt(this.posOf(inputs)), stage);
  }

  /** Steps (then the stage's copies) to the queue; a pass of many goes in growing pieces (32, 64, 128,
   *  ..): the GPU starts once the first piece is encoded, not the whole pass (277 dispatches of a
   *  1B-shape prefill block took ~3.5 ms to encode on the H100 host), and runs while the rest are.
   *  (A decode step's fewer dispatches stay one submit.) */
  private submitSteps(steps: readonly Step[], stage: readonly StageCopy[]) {
    const d = this.gpu.device;
    let from = 0, piece = steps.length > PIECES_FROM ? FIRST_PIECE : steps.length;
    for (;;) {
      const to = Math.min(steps.length, from + piece), enc = d.createCommandEncoder();
      this.encodePass(enc, from === 0 && to === steps.length ? steps : steps.slice(from, to));
      if (to === steps.length) this.encodeStage(enc, stage);
      d.queue.submit([enc.finish()]);
      if (to === steps.length) return;
      [from, piece] = [to, 2 * piece];
    }
  }

  /** A pass from a tapped hook on: `value` written into the hook's buffer (output `cut`, `hook:NAME`),
   *  and only the dispatches the plan's other outputs need past that value run. Patching the residual
   *  stream at layer l so runs one plan for every layer: the layers below l are skipped, not rebuilt. */
  submitFrom(cut: string, value: Float32Array, inputs: Readonly<Record<string, number | Float32Array | Int32Array>>, stage: readonly StageCopy[] = []) {
    const id = this.plan.outputs[cut];
    if (!id) throw new Error(`internal: the plan has no output '${cut}'`);
    let after = this.downstream.get(cut);
    if (!after) this.downstream.set(cut, (after = this.stepsPast(cut)));
    this.gpu.device.queue.writeBuffer(this.buffers.get(id)!, 0, value as Float32Array<ArrayBuffer>);
    this.writeInputs(inputs);
    this.submitSteps(this.stepsAt(this.posOf(inputs)).filter((s) => after.has(s)), stage);
  }
  private downstream = new Map<string, ReadonlySet<Step>>();

  /** The steps whose nodes the plan's outputs other than hooks reach without passing through `cut`'s node. */
  private stepsPast(cut: string): ReadonlySet<Step> {
    const outputs = this.plan.graph.outputs, stop = outputs[cut]!, needed = new Set<number>();
    const visit = (n: Node) => {
      if (n === stop || needed.has(n.id)) return;
      needed.add(n.id);
      n.srcs.forEach(visit);
    };
    for (const [name, n] of Object.entries(outputs)) if (!name.startsWith('hook:')) visit(n);
    return new Set(this.steps.filter((_, i) => needed.has(this.plan.dispatches[i]!.node.id)));
  }

  /** A state's buffer (a KV cache), by the state's name. */
  state(name: string): GPUBuffer {
    const b = this.buffers.get(`state:${name}`);
    if (!b) throw new Error(`internal: the plan has no state '${name}'`);
    return b;
  }

  /** A plan input's or output's buffer, for copies on the GPU between plans. */
  buffer(kind: 'input' | 'output', name: string): GPUBuffer {
    const id = (kind === 'input' ? this.plan.inputs : this.plan.outputs)[name];
    if (!id) throw new Error(`internal: the plan has no ${kind} '${name}'`);
    return this.buffers.get(id)!;
  }

  /** Write the per-step inputs (by name: token, pos), run every dispatch, copy the `stage` outputs
   *  into their collecting buffers, read back one output. */
  async run(inputs: Readonly<Record<string, number | Float32Array | Int32Array>>, output: string, stage: readonly StageCopy[] = []): Promise<Float32Array> {
    const d = this.gpu.device;
    this.submit(inputs, stage);
    const outId = this.plan.outputs[output]!;
    const bytes = this.plan.buffers.get(outId)!.bytes;
    const enc = d.createCommandEncoder();
    enc.copyBufferToBuffer(this.buffers.get(outId)!, 0, this.readback, 0, bytes);
    d.queue.submit([enc.finish()]);
    await this.readback.mapAsync(GPUMapMode.READ, 0, bytes);
    const out = new Float32Array(this.readback.getMappedRange(0, bytes).slice(0));
    this.readback.unmap();
    return out;
  }

  /** Record dispatches into one compute pass, timed when `timestampWrites` is given. */
  private encodePass(enc: GPUCommandEncoder, steps: readonly Step[], timestampWrites?: GPUComputePassTimestampWrites, last?: Step) {
    const pass = enc.beginComputePass(timestampWrites ? { timestampWrites } : {});
    for (const s of steps) {
      pass.setPipeline(s.pipeline);
      pass.setBindGroup(0, s.bindGroup);
      pass.dispatchWorkgroups(s.groups[0], s.groups[1]);
    }
    if (last) {
      pass.setPipeline(last.pipeline);
      pass.setBindGroup(0, last.bindGroup);
      pass.dispatchWorkgroups(last.groups[0], last.groups[1]);
    }
    pass.end();
  }

  /** Greedy decoding with the token loop on the GPU: after each step's argmax, greedyStepKernel makes
   *  the chosen token the next step's input, records it and advances the position, so nothing passes
   *  through the host between steps; STEPS_PER_SUBMIT steps go in one command buffer and nothing is
   *  read until the end. Starts from `first` at position `pos`; returns the `steps` tokens chosen, the
   *  host's time to encode and submit them, and, where the device offers timestamp queries and `time`
   *  is set, the GPU time of each step's pass in nanoseconds. `stage` copies hook outputs aside after
   *  each step. */
  async greedyOnGpu(first: number, pos: number, steps: number, time = false, stage?: (step: number) => readonly StageCopy[]): Promise<{ tokens: Int32Array; gpuNs?: number[]; hostMs: number }> {
    const d = this.gpu.device;
    const tokenBuf = this.buffers.get(this.plan.inputs.token!)!, posBuf = this.buffers.get(this.plan.inputs.pos!)!;
    const nextBuf = this.buffers.get(this.plan.outputs.next!)!;
    const history = d.createBuffer({ size: Math.max(16, steps * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const advance = this.bindKernel(kernels.greedyStepKernel!, { next: nextBuf, token: tokenBuf, pos: posBuf, history }, { first: pos }, 1);
    const timer = time ? PassTimer.create(this.gpu, steps) : undefined;
    try {
      d.queue.writeBuffer(tokenBuf, 0, Int32Array.of(first));
      d.queue.writeBuffer(posBuf, 0, Int32Array.of(pos));
      const t0 = performance.now(); // the host's side: encoding and submitting (the GPU runs meanwhile)
      let enc = d.createCommandEncoder();
      for (let i = 0, inBatch = 0, batch = 0; i < steps; i++) {
        this.encodePass(enc, this.stepsAt(pos + i), timer?.writes(i), advance.step);
        if (stage) this.encodeStage(enc, stage(i));
        if (++inBatch === SUBMIT_STEPS[Math.min(batch, SUBMIT_STEPS.length - 1)] || i === steps - 1) {
          d.queue.submit([enc.finish()]);
          enc = d.createCommandEncoder();
          inBatch = 0;
          batch++;
        }
      }
      const hostMs = performance.now() - t0;
      const gpuNs = await timer?.durationsNs();
      const tokens = new Int32Array((await readBuffer(this.gpu, history)).buffer, 0, steps);
      return gpuNs ? { tokens, gpuNs, hostMs } : { tokens, hostMs };
    } finally {
      history.destroy();
      advance.uniforms?.destroy();
      timer?.destroy();
    }
  }

  /** One step with every dispatch in its own timed pass: GPU nanoseconds by kernel (where the device
   *  offers timestamp queries; undefined otherwise). Slower than a plain step; for profiling. */
  async profile(inputs: Readonly<Record<string, number | Float32Array | Int32Array>>): Promise<Map<string, { ns: number; count: number }> | undefined> {
    const steps = await this.profileSteps(inputs);
    const out = new Map<string, { ns: number; count: number }>();
    for (const s of steps ?? []) out.set(s.kernel, { ns: (out.get(s.kernel)?.ns ?? 0) + s.ns, count: (out.get(s.kernel)?.count ?? 0) + 1 });
    return steps && out;
  }

  /** Each dispatch of a step timed alone, in order: its kernel, workgroups and GPU nanoseconds. */
  async profileSteps(inputs: Readonly<Record<string, number | Float32Array | Int32Array>>): Promise<{ kernel: string; groups: readonly [number, number]; ns: number }[] | undefined> {
    const steps = this.stepsAt(this.posOf(inputs));
    const timer = PassTimer.create(this.gpu, steps.length);
    if (!timer) return undefined;
    try {
      this.writeInputs(inputs);
      const enc = this.gpu.device.createCommandEncoder();
      steps.forEach((s, i) => this.encodePass(enc, [s], timer.writes(i)));
      this.gpu.device.queue.submit([enc.finish()]);
      const ns = await timer.durationsNs();
      return steps.map((s, i) => ({ kernel: s.kernel, groups: s.groups, ns: ns[i]! }));
    } finally {
      timer.destroy();
    }
  }

  /** Read any buffer of the plan (for tests and tools). */
  async read(id: BufId): Promise<Float32Array> {
    return readBuffer(this.gpu, this.buffers.get(id)!);
  }

  /** (root) The next arena buffer of at least `bytes` for a plan that has taken `lent` of each size class
   *  so far: sizes round up to a quarter step between powers of two (at most a quarter more memory), so
   *  plans for other prompt lengths find them too. */
  private lend(bytes: number, lent: Map<number, number>): GPUBuffer {
    const step = 2 ** Math.max(2, Math.floor(Math.log2(Math.max(16, bytes))) - 2);
    const size = Math.ceil(bytes / step) * step;
    const i = lent.get(size) ?? 0;
    lent.set(size, i + 1);
    let list = this.arena.get(size);
    if (!list) this.arena.set(size, (list = []));
    if (!list[i]) {
      list[i] = this.gpu.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
      this.owned.push(list[i]);
    }
    return list[i];
  }

  destroy() {
    for (const b of this.owned) b.destroy();
    this.owned = [];
  }
}
