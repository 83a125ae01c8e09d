// Whether reading a gradient run's 33.5 MB out of a mapped staging buffer alternates in time, and what
// the copy costs: 32 slices (as runWithGradients copies), one array, or copies into arrays kept
// between calls. On the GPU machine, after `gpu-machine.sh quick` left /tmp/tapir:
//   cp benchmarks/probes/readback.mjs /tmp/tapir/ && (cd /tmp/tapir && ./node --no-concurrent-recompilation readback.mjs)
import { getGpu, releaseGpu } from '/tmp/tapir/dist/runtime/gpu.js';
const { device } = await getGpu();
const bytes = 32 * 128 * 2048 * 4, parts = 32, part = bytes / parts;
const src = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
device.queue.writeBuffer(src, 0, new Float32Array(bytes / 4).fill(1.5));
const st = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const keep = Array.from({ length: parts }, () => new Float32Array(part / 4));
const out = {};
for (const mode of ['slices', 'one', 'reuse', 'slices']) {
  const rows = [];
  for (let i = 0; i < 12; i++) {
    const t0 = performance.now();
    const enc = device.createCommandEncoder(); enc.copyBufferToBuffer(src, 0, st, 0, bytes); device.queue.submit([enc.finish()]);
    await st.mapAsync(GPUMapMode.READ, 0, bytes);
    const t1 = performance.now();
    const ab = st.getMappedRange(0, bytes);
    let sink = 0;
    if (mode === 'slices') for (let p = 0; p < parts; p++) { const a = new Float32Array(ab.slice(p * part, (p + 1) * part)); sink += a[7]; }
    else if (mode === 'one') { const a = new Float32Array(bytes / 4); a.set(new Float32Array(ab)); sink += a[7]; }
    else for (let p = 0; p < parts; p++) { keep[p].set(new Float32Array(ab, p * part, part / 4)); sink += keep[p][7]; }
    const t2 = performance.now();
    st.unmap();
    const t3 = performance.now();
    rows.push([+(t1 - t0).toFixed(2), +(t2 - t1).toFixed(2), +(t3 - t2).toFixed(2), sink]);
  }
  out[mode + Object.keys(out).length] = rows;
  console.error(mode, rows.map((r) => r.slice(0, 3).join('/')).join('  '));
}
console.log(JSON.stringify(out));
await releaseGpu();
