// Lowering: graph -> plan. A plan is the list of kernel dispatches for one decode step and the
// buffers they touch, with nothing GPU-specific in it, so it can be printed and tested without a
// device. The runtime turns it into buffers, pipelines and bind groups once, then replays it per token.
import { type Graph } from './ir/graph.js';
import { type BufId, type Chunk, type LowerCtx, type Node, type PosRange, inRange, leafKind } from './ir/op.js';
import type { Target } from './target.js';
import { ShapeError, TapirError } from './errors.js';
import { type FragmentIR, type KernelIR, specParams, storageParams, uniformParams } from './kernel/ir.js';
import { withEpilogues } from './kernel/compose.js';
import { gpuRowWords, gpuWords } from './ir/dtype.js';

export type BufferKind = 'input' | 'weight' | 'state' | 'const' | 'activation' | 'scratch';

export interface BufferSpec {
  readonly id: BufId;
  readonly kind: BufferKind;
  readonly bytes: number;
  /** for weights: which rows of which tensor; for consts: the node whose reference value it holds */
  readonly weight?: { name: string; rowStart: number; rows: number; cols: number };
  readonly constNode?: Node;
}

export interface Dispatch {
  readonly kernel: string;
  /** storage parameter name -> buffer */
  readonly bind: Readonly<Record<string, BufId>>;
  /** scalar parameter name -> value (uniforms and specialization constants) */
  readonly uniforms: Readonly<Record<string, number>>;
  /** workgroups along the (linear) grid */
  readonly groups: number;
  /** the graph node it computes */
  readonly node: Node;
  /** runs only for passes whose `pos` input lies in this range (an op with two ways to compute, each
   *  better at some positions); absent: always */
  readonly when?: PosRange;
}

const showRange = (r: PosRange) => ` when ${r.from ?? 0} <= pos${r.below === undefined ? '' : ` < ${r.below}`}`;

export interface PlanOptions {
  kernels: Readonly<Record<string, KernelIR>>;
  fragments?: Readonly<Record<string, FragmentIR>>;
  /** share activation buffers between values that are not live at once (default true) */
  reuse?: boolean;
}

export class Plan {
  constructor(
    readonly graph: Graph,
    readonly buffers: ReadonlyMap<BufId, BufferSpec>,
    readonly dispatches: readonly Dispatch[],
    readonly outputs: Readonly<Record<string, BufId>>,
    readonly inputs: Readonly<Record<string, BufId>>,
    /** every kernel the dispatches name, composed ones included */
    readonly kernels: ReadonlyMap<string, KernelIR>,
    /** activation memory with buffer reuse, and what it would be without */
    readonly memory: { activationBytes: number; naiveActivationBytes: number },
  ) {}

  /** the dispatches a pass at position `pos` runs (all of them where none is guarded) */
  dispatchesAt(pos: number): readonly Dispatch[] {
    return this.dispatches.filter((d) => inRange(d.when, pos));
  }

  /** where the dispatch list changes: the first position of each range with its own list */
  positionBreaks(): number[] {
    const cuts = new Set([0]);
    for (const d of this.dispatches) for (const x of [d.when?.from, d.when?.below]) if (x !== undefined) cuts.add(x);
    return [...cuts].sort((a, b) => a - b);
  }

  /** bytes of GPU memory the plan allocates, by kind */
  bytesByKind(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const b of this.buffers.values()) out[b.kind] = (out[b.kind] ?? 0) + b.bytes;
    return out;
  }

  toString(): string {
    const bufs = [...this.buffers.values()].map((b) => `  ${b.id} ${b.kind} ${b.bytes}B`).join('\n');
    const ds = this.dispatches.map((d) => {
      const bind = Object.entries(d.bind).map(([k, v]) => `${k}=${v}`).join(' ');
      const uni = Object.entries(d.uniforms).map(([k, v]) => `${k}=${v}`).join(' ');
      return `  ${d.kernel}[${d.groups}] ${bind}${uni ? ` | ${uni}` : ''}   ; %${d.node.id} ${d.node.op.name}${d.when ? showRange(d.when) : ''}`;
    }).join('\n');
    return `buffers:\n${bufs}\ndispatches (${this.dispatches.length}):\n${ds}\n`;
  }
}

const F32 = 4;

/** Lower every node of the graph, in order, to dispatches. */
export function lowerGraph(graph: Graph, target: Target, opts: PlanOptions): Plan {
  const buffers = new Map<BufId, BufferSpec>();
  const dispatches: Dispatch[] = [];
  const inputs: Record<string, BufId> = {};
  const nodeBuf = new Map<Node, BufId>();
  const chunkMemo = new Map<Node, Chunk[]>();
  let current: Node | undefined;
  const used = new Map<string, KernelIR>();

  const add = (spec: BufferSpec) => {
    if (spec.bytes > target.maxBindingBytes && spec.kind !== 'weight')
      throw new TapirError(`buffer ${spec.id} needs ${spec.bytes} bytes, over this device's ${target.maxBindingBytes}-byte binding limit`);
    buffers.set(spec.id, spec);
    return spec.id;
  };

  const ctx: LowerCtx = {
    maxStorageBuffers: target.maxStorageBuffers,
    maxBindingBytes: target.maxBindingBytes,
    splitCols: target.splitCols,
    transposedSplit: target.transposedSplit,
    matrices: target.matrices,
    tensorWideRows: target.tensorWideRows,
    splitMaxRows: target.splitMaxRows,
    buf(n) {
      if (leafKind(n) === 'weight') {
        const cs = ctx.chunks(n);
        if (cs.length !== 1) throw new Error(`internal: weight %${n.id} is split; lower it with chunks()`);
        return cs[0]!.buf;
      }
      const id = nodeBuf.get(n);
      if (!id) throw new Error(`internal: %${n.id} (${n.op.name}) has no buffer yet`);
      return id;
    },
    chunks(n) {
      const hit = chunkMemo.get(n);
      if (hit) return hit;
      if (leafKind(n) !== 'weight' || n.shape.length < 1 || n.shape.length > 2) throw new ShapeError(`%${n.id} is not a 1-D or 2-D weight`);
      // a vector is one row
      const [rows, cols] = (n.shape.length === 2 ? n.shape : [1, n.shape[0]!]) as [number, number];
      const rowBytes = gpuRowWords(n.dtype, cols) * 4;
      // big chunks are whole sets of 4 rows: the q8_0 decode kernels take rows four at a time
      const fit = Math.floor((target.maxBindingBytes - 4) / rowBytes); // (q8_0's scales may end in half a word)
      const perChunk = fit >= 1024 ? fit - (fit % 4) : Math.max(1, fit);
      const out: Chunk[] = [];
      for (let r = 0, i = 0; r < rows; r += perChunk, i++) {
        const nr = Math.min(perChunk, rows - r);
        const name = String(n.attr.name);
        out.push({ buf: add({ id: `w:${name}#${i}`, kind: 'weight', bytes: gpuWords(n.dtype, nr, cols) * 4, weight: { name, rowStart: r, rows: nr, cols } }), rowStart: r, rows: nr });
      }
      chunkMemo.set(n, out);
      return out;
    },
    scratch(n, name, floats) {
      return add({ id: `scratch:%${n.id}.${name}`, kind: 'scratch', bytes: Math.max(16, floats * F32) });
    },
    planScratch(name, floats) {
      const id = `scratch:${name}`, bytes = Math.max(16, floats * F32), had = buffers.get(id);
      return had && had.bytes >= bytes ? id : add({ id, kind: 'scratch', bytes });
    },
    fragment(name) {
      const f = opts.fragments?.[name];
      if (!f) throw new Error(`internal: no fragment '${name}'`);
      return f;
    },
    stored(n, k) {
      const s = storedBy.get(`${n.id}:${k}`);
      if (!s) return ctx.scratch(n, `store${k}`, n.size);
      if (!nodeBuf.has(s)) nodeBuf.set(s, activation(s, Math.max(16, s.size * F32)));
      return nodeBuf.get(s)!;
    },
    compose(kernel, frags) {
      const base = opts.kernels[kernel];
      if (!base) throw new Error(`internal: no kernel '${kernel}'`);
      const k = withEpilogues(base, frags);
      used.set(k.name, k);
      return k.name;
    },
    dispatch(kernel, bind, uniforms, groups, when) {
      const k = used.get(kernel) ?? opts.kernels[kernel];
      if (!k) throw new Error(`internal: no kernel '${kernel}' (is ops/kernels.gen.ts up to date? run npm run build)`);
      const want = storageParams(k).map((p) => p.name).sort().join(',');
      const got = Object.keys(bind).sort().join(',');
      if (want !== got) throw new Error(`internal: ${kernel} binds [${want}], got [${got}]`);
      if (storageParams(k).length > target.maxStorageBuffers)
        throw new Error(`internal: ${kernel} needs ${storageParams(k).length} storage buffers, over the device's ${target.maxStorageBuffers}`);
      for (const p of [...uniformParams(k), ...specParams(k)]) if (typeof uniforms[p.name] !== 'number') throw new Error(`internal: ${kernel} needs ${p.name}`);
      if (!(groups >= 1)) return; // nothing to do (e.g. an empty chunk)
      used.set(kernel, k);
      if (when && !inputs.pos) throw new Error(`internal: ${kernel} is guarded by the position, but the graph has no 'pos' input yet`);
      dispatches.push(when ? { kernel, bind, uniforms, groups, node: current!, when } : { kernel, bind, uniforms, groups, node: current! });
    },
  };

  // Memory planning: an activation's buffer returns to a free pool once its last reader is lowered,
  // and a later activation of no greater size takes it. A node never gets a buffer one of its own
  // sources holds (it is allocated before they are released). Outputs are kept.
  const lastUse = new Map<Node, number>();
  // `stored` nodes: the extra outputs of the fused kernels they read, allocated when those are lowered
  const storedBy = new Map(graph.nodes.flatMap((n) => { const s = n.op.storeOf?.(n); return s ? [[`${s.of.id}:${s.k}`, n] as const] : []; }));
  graph.nodes.forEach((n, i) => n.srcs.forEach((s) => lastUse.set(s, i)));
  const keep = new Set(Object.values(graph.outputs));
  const free: BufferSpec[] = [];
  let naiveBytes = 0;
  const activation = (n: Node, bytes: number): BufId => {
    naiveBytes += bytes;
    if (opts.reuse !== false) {
      let best = -1;
      free.forEach((b, j) => { if (b.bytes >= bytes && (best < 0 || b.bytes < free[best]!.bytes)) best = j; });
      if (best >= 0) return free.splice(best, 1)[0]!.id;
    }
    return add({ id: `t%${n.id}`, kind: 'activation', bytes });
  };

  graph.nodes.forEach((n, i) => {
    current = n;
    lower(n);
    for (const s of n.srcs)
      if (lastUse.get(s) === i && !keep.has(s) && !leafKind(s) && !s.op.inPlace) {
        const spec = buffers.get(nodeBuf.get(s)!);
        if (spec?.kind === 'activation') free.push(spec);
      }
  });
  function lower(n: Node) {
    const leaf = leafKind(n);
    const bytes = Math.max(16, n.size * F32);
    if (leaf === 'weight') return; // chunked on first use
    if (leaf === 'input') { const id = add({ id: `in:${n.attr.name}`, kind: 'input', bytes }); inputs[String(n.attr.name)] = id; nodeBuf.set(n, id); return; }
    if (leaf === 'state') { nodeBuf.set(n, add({ id: `state:${n.attr.name}`, kind: 'state', bytes })); return; }
    if (leaf === 'const') { nodeBuf.set(n, add({ id: `const:%${n.id}`, kind: 'const', bytes, constNode: n })); return; }
    if (n.op.inPlace) nodeBuf.set(n, ctx.buf(n.srcs[0]!));
    else if (!nodeBuf.has(n)) nodeBuf.set(n, activation(n, bytes)); // a stored value already has its buffer
    if (!n.op.lower) throw new Error(`internal: op ${n.op.name} has no lowering`);
    n.op.lower(n, ctx);
  }
  const outputs = Object.fromEntries(Object.entries(graph.outputs).map(([k, n]) => [k, ctx.buf(n)]));
  const activationBytes = [...buffers.values()].filter((b) => b.kind === 'activation').reduce((s, b) => s + b.bytes, 0);
  return new Plan(graph, buffers, dispatches, outputs, inputs, used, { activationBytes, naiveActivationBytes: naiveBytes });
}
