// Staging buffers that hooked runs and the lens read their results through, kept between runs. A
// fresh MAP_READ buffer is host memory the driver allocates and pins, and its mapping's pages are
// touched anew: for a batch's 134 MB of hooks that is paid on every call (benchmarks/interp_profile.ts,
// readback `_fresh_staging`). A kept buffer is leased to one run at a time; a run maps only the bytes
// it wrote.

/** Idle staging memory kept per device, at most (larger buffers are made and destroyed per run). */
export const KEEP_STAGING_BYTES = 256 << 20;
/** the smallest staging buffer made (small reads share one) */
const MIN_STAGING_BYTES = 64 << 10;

const idle = new WeakMap<GPUDevice, GPUBuffer[]>();

export interface Staging {
  /** a MAP_READ | COPY_DST buffer of at least the bytes asked for */
  readonly buffer: GPUBuffer;
  /** map the first `bytes` (after the copies into it were submitted) and view them */
  read(bytes: number): Promise<ArrayBuffer>;
  /** give it back (unmapped; kept for the next run if small enough, else destroyed) */
  release(): void;
}

/** A staging buffer of at least `bytes`: a kept one if one is idle, else a new one (sizes rounded up by
 *  at most an eighth, so runs of nearby sizes find each other's). */
export function leaseStaging(device: GPUDevice, bytes: number): Staging {
  const list = idle.get(device) ?? [];
  idle.set(device, list);
  const i = list.findIndex((b) => b.size >= bytes); // (kept smallest first)
  const size = Math.max(bytes, Math.min(roundUp(bytes), device.limits.maxBufferSize));
  const buffer = i >= 0 ? list.splice(i, 1)[0]! : device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  let released = false;
  return {
    buffer,
    async read(n: number) {
      await buffer.mapAsync(GPUMapMode.READ, 0, n);
      return buffer.getMappedRange(0, n);
    },
    release() {
      if (released) return;
      released = true;
      if (buffer.mapState === 'mapped') buffer.unmap();
      // a buffer still being mapped (a run that failed while waiting) or too large is not kept
      if (buffer.mapState !== 'unmapped' || buffer.size > KEEP_STAGING_BYTES) { buffer.destroy(); return; }
      list.push(buffer);
      list.sort((a, b) => a.size - b.size);
      // over the budget: the smallest go first (the large ones are what is costly to make again)
      let kept = list.reduce((k, b) => k + b.size, 0);
      while (kept > KEEP_STAGING_BYTES && list.length) { const b = list.shift()!; kept -= b.size; b.destroy(); }
    },
  };
}

/** Destroy the idle staging buffers kept for `device` (what other work left there: tests start clean). */
export function dropStaging(device: GPUDevice): void {
  for (const b of idle.get(device) ?? []) b.destroy();
  idle.delete(device);
}

/** Idle staging bytes kept for `device` (tests). */
export function keptStagingBytes(device: GPUDevice): number {
  return (idle.get(device) ?? []).reduce((k, b) => k + b.size, 0);
}

function roundUp(bytes: number): number {
  if (bytes <= MIN_STAGING_BYTES) return MIN_STAGING_BYTES;
  const step = 2 ** Math.floor(Math.log2(bytes)) / 8;
  return Math.ceil(bytes / step) * step;
}
