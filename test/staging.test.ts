// Staging buffers kept between runs (runtime/staging.ts): a leased buffer reads back what was copied
// into it, a released one serves the next run of a size it holds, and one that cannot be trusted (still
// being mapped) or is too large is not kept.
import { describe, expect, it } from 'vitest';
import { getGpu } from '../runtime/gpu.js';
import { KEEP_STAGING_BYTES, dropStaging, keptStagingBytes, leaseStaging } from '../runtime/staging.js';

async function filled(values: Float32Array<ArrayBuffer>): Promise<GPUBuffer> {
  const d = (await getGpu()).device;
  const src = d.createBuffer({ size: values.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  d.queue.writeBuffer(src, 0, values);
  return src;
}

describe('staging buffers kept between runs', () => {
  it('reads back what each run copied, reusing the buffer the previous run released', async () => {
    const d = (await getGpu()).device;
    dropStaging(d); // (another test file in this worker may have left buffers of other sizes)
    const seen: GPUBuffer[] = [];
    for (const n of [3000, 2500, 3000]) {
      const values = Float32Array.from({ length: n }, (_, i) => i * 0.5 - n);
      const src = await filled(values);
      const lease = leaseStaging(d, n * 4);
      expect(lease.buffer.size).toBeGreaterThanOrEqual(n * 4);
      const enc = d.createCommandEncoder();
      enc.copyBufferToBuffer(src, 0, lease.buffer, 0, n * 4);
      d.queue.submit([enc.finish()]);
      const got = new Float32Array((await lease.read(n * 4)).slice(0));
      lease.release();
      src.destroy();
      expect(got).toEqual(values); // (a buffer reused holds the earlier run's values past n: never read)
      seen.push(lease.buffer);
    }
    expect(seen[1]).toBe(seen[0]);
    expect(seen[2]).toBe(seen[0]);
    expect(keptStagingBytes(d)).toBeGreaterThan(0);
    expect(keptStagingBytes(d)).toBeLessThanOrEqual(KEEP_STAGING_BYTES);
  });

  it('two runs at once get two buffers; a lease released while its mapping is pending is not kept', async () => {
    const d = (await getGpu()).device;
    const a = leaseStaging(d, 1024), b = leaseStaging(d, 1024);
    expect(b.buffer).not.toBe(a.buffer);
    const pending = a.read(1024);
    a.release(); // (a run that failed while it waited)
    await pending.catch(() => undefined);
    b.release();
    const c = leaseStaging(d, 1024);
    expect(c.buffer).not.toBe(a.buffer);
    c.release();
  });
});
