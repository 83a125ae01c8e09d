// Reading results back from the GPU: a whole buffer, and the timestamps of timed passes.
import type { GpuContext } from './gpu.js';

/** Read a whole GPU buffer back. */
export async function readBuffer(gpu: GpuContext, src: GPUBuffer): Promise<Float32Array> {
  const d = gpu.device;
  const tmp = d.createBuffer({ size: src.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = d.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, tmp, 0, src.size);
  d.queue.submit([enc.finish()]);
  await tmp.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(tmp.getMappedRange().slice(0));
  tmp.destroy();
  return out;
}

/** GPU timestamps around `passes` compute passes (pass i writes slots 2i and 2i+1), read back once. */
export class PassTimer {
  private constructor(private gpu: GpuContext, private set: GPUQuerySet, private resolved: GPUBuffer, readonly passes: number) {}
  /** undefined where the device offers no timestamp queries */
  static create(gpu: GpuContext, passes: number): PassTimer | undefined {
    if (!gpu.features.includes('timestamp-query')) return undefined;
    const d = gpu.device;
    return new PassTimer(gpu, d.createQuerySet({ type: 'timestamp', count: 2 * passes }),
      d.createBuffer({ size: 16 * passes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }), passes);
  }
  writes(i: number): GPUComputePassTimestampWrites {
    return { querySet: this.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }
  /** each pass's duration, after every submitted pass */
  async durationsNs(): Promise<number[]> {
    const enc = this.gpu.device.createCommandEncoder();
    enc.resolveQuerySet(this.set, 0, 2 * this.passes, this.resolved, 0);
    this.gpu.device.queue.submit([enc.finish()]);
    const t = new BigUint64Array((await readBuffer(this.gpu, this.resolved)).buffer, 0, 2 * this.passes);
    return Array.from({ length: this.passes }, (_, i) => Number(t[2 * i + 1]! - t[2 * i]!));
  }
  destroy() {
    this.set.destroy();
    this.resolved.destroy();
  }
}

