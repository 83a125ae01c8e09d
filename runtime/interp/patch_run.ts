// A batch of patched runs of one prompt, as patching sweeps make them (runtime/interp/patching.ts): B
// copies of the corrupted prompt from layer `layer` and position `from` on, each with its own
// intervention tables at `hook` (at the layer's resid_pre, applied to the residual stream the runs start
// from, by one plan for every layer), their KV-cache rows below `from` copied from the corrupted run (which
// the model's own cache holds; a batch of one runs on that cache itself, so the caller keeps its rows
// below `from` the corrupted run's). Returns the logits at `ids` of each copy's last position ([B, ids]);
// submitPatchedRuns leaves them in a buffer of the caller's, so batches follow each other without waiting.
import { ivName } from '../../ops/intervene.js';
import { headSize } from '../../models/llama.js';
import type { RunHost } from './run.js';

export interface PatchedRuns {
  layer: number;
  /** the first position that runs (rows below it come from the corrupted run's cache) */
  from: number;
  batch: number;
  hook: string;
  /** the tables x -> x·a + b, [batch, positions, size] */
  a: Float32Array;
  b: Float32Array;
  /** token ids whose logits come back */
  ids: Int32Array;
  /** the corrupted prompt, and its cached hook_resid_pre at `layer` ([positions, dim]) */
  tokens: readonly number[];
  resid: Float32Array;
}

export async function patchedRuns(m: RunHost, r: PatchedRuns): Promise<Float32Array> {
  const d = m.executor.gpu.device, bytes = r.batch * r.ids.length * 4;
  const dst = d.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    await submitPatchedRuns(m, r, { dst, offset: 0 });
    await dst.mapAsync(GPUMapMode.READ);
    return new Float32Array(dst.getMappedRange().slice(0));
  } finally {
    dst.destroy();
  }
}

/** The same runs, submitted and not waited for: their picked logits ([B, ids]) are copied into `stage.dst`
 *  at `stage.offset` after the last block (a sweep maps one buffer for many such batches). */
export async function submitPatchedRuns(m: RunHost, r: PatchedRuns, stage: { dst: GPUBuffer; offset: number }): Promise<void> {
  const c = m.config, n = r.tokens.length, B = r.batch, dim = c.dim;
  const kvBytes = c.contextLength * c.nKvHeads * headSize(c) * 4; // one sequence's cache of one layer
  const blocks = m.blocks(n - r.from, B);
  const d = m.executor.gpu.device;
  // the residual stream at the layer the runs start from: patched on the host, and run from there by one
  // plan for every layer (its resid_pre hooks tapped, the dispatches below the layer's skipped); other
  // sites are inside the layer, so their runs start there with intervention tables
  const atInput = r.hook === `blocks.${r.layer}.hook_resid_pre`;
  const taps = Array.from({ length: c.nLayers }, (_, l) => `blocks.${l}.hook_resid_pre`);
  for (const [i, [start, len]] of blocks.entries()) {
    const ex = atInput
      ? await m.variant({ taps, positions: len, batch: B, head: 'last', pick: r.ids.length })
      : await m.variant({ interventions: [{ hook: r.hook, rows: n }], startLayer: r.layer, positions: len, batch: B, head: 'last', pick: r.ids.length });
    if (!atInput) {
      ex.write(ivName(r.hook, 'a'), r.a);
      ex.write(ivName(r.hook, 'b'), r.b);
    }
    if (i === 0 && r.from > 0) {
      // the rows below `from` of every layer that runs: the corrupted run's, in each sequence's cache
      const enc = d.createCommandEncoder();
      for (let l = r.layer; l < c.nLayers; l++)
        for (const kv of ['k', 'v']) {
          const name = `cache.${kv}.${l}`;
          // (one sequence runs on the model's own cache, which holds them already)
          if (ex.state(name) === m.executor.state(name)) continue;
          for (let b = 0; b < B; b++) enc.copyBufferToBuffer(m.executor.state(name), 0, ex.state(name), b * kvBytes, (r.from * kvBytes) / c.contextLength);
        }
      d.queue.submit([enc.finish()]);
    }
    const at = r.from + start;
    const inputs: Record<string, number | Int32Array | Float32Array> = { pos: at, pick: r.ids };
    const copies = i < blocks.length - 1 ? [] : [{ output: 'picked', dst: stage.dst, offset: stage.offset, bytes: B * r.ids.length * 4 }];
    if (atInput) {
      ex.submitFrom(`hook:${r.hook}`, patchedResid(r, at, len), inputs, copies);
      continue;
    }
    if (r.layer === 0) inputs.token = Int32Array.from({ length: B * len }, (_, k) => r.tokens[at + (k % len)]!);
    else {
      const x = new Float32Array(B * len * dim), rows = r.resid.subarray(at * dim, (at + len) * dim);
      for (let b = 0; b < B; b++) x.set(rows, b * len * dim);
      inputs.resid = x;
    }
    ex.submit(inputs, copies);
  }
}

/** Each copy's residual stream at positions at .. at+len, its tables applied (x·a + b, as the intervene
 *  op computes it in f32: a patch's a is 0 or 1, so the values are the GPU's to the bit). [B, len, dim] */
function patchedResid(r: PatchedRuns, at: number, len: number): Float32Array {
  const n = r.tokens.length, dim = r.resid.length / n, x = new Float32Array(r.batch * len * dim);
  for (let k = 0; k < r.batch; k++)
    for (let j = 0; j < len; j++)
      for (let e = 0; e < dim; e++) {
        const v = r.resid[(at + j) * dim + e]!, t = ((k * n + at + j) * dim + e);
        const a = r.a[t]!, b = r.b[t]!;
        x[(k * len + j) * dim + e] = a === 0 ? b : a === 1 && b === 0 ? v : Math.fround(v * a) + b;
      }
  return x;
}
