// A hardware probe, not part of tapir (issue 18): how fast a register-tiled f32 matrix product runs
// through Dawn, for the fallback where subgroup matrices are missing. out[n, N] = x[n, K] (f32) · w[N, K]ᵀ
// (f16 weights widened to f32 while staged). A workgroup of 16 × 16 invocations computes RM·16 × 128
// outputs; each invocation RM × 8 of them (RM 4 or 8) in vec4 accumulators, from k-major tiles of BK
// columns in workgroup memory read as vec4s. Hand-written WGSL on purpose (tapir's kernels come from its
// kernel language once the tiling is known). Checked against float64 sums; prints TFLOP/s.
//   cd /tmp/tapir && [NOROBUST=1] ./node $REPO/benchmarks/probes/f32_tiles.mjs [CONFIGS] [SHAPES]
import { create, globals } from '/tmp/tapir/node_modules/webgpu/index.js';
import { fromHalf, probeInputs, rnd, toHalf, upload } from './harness.mjs';
Object.assign(globalThis, globals);
const gpu = create([`enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia${process.env.NOROBUST ? ',disable_robustness' : ''}`]);
const adapter = await gpu.requestAdapter();
const device = await adapter.requestDevice({ requiredFeatures: ['shader-f16'],
  requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize, maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize } });
device.onuncapturederror = (e) => console.log('uncaptured', e.error.message);
console.log('robustness', process.env.NOROBUST ? 'off' : 'on');

function wgsl([RM, BK]) {
  const TM = RM * 16, TN = 128, RG = RM / 4; // RG row groups of 4 (rows g*64 + ty*4 + i)
  const acc = [], body = [], store = [];
  for (let g = 0; g < RG; g++) for (let i = 0; i < 4; i++) for (let h = 0; h < 2; h++) acc.push(`var c${g}${i}${h} = vec4f();`);
  for (let k = 0; k < BK; k++) {
    for (let g = 0; g < RG; g++) body.push(`let a${g}_${k} = As[${k * TM / 4}u + ${g * 16}u + ty];`);
    for (let h = 0; h < 2; h++) body.push(`let b${h}_${k} = Bs[${k * 32}u + ${h * 16}u + tx];`);
    for (let g = 0; g < RG; g++) for (let i = 0; i < 4; i++) for (let h = 0; h < 2; h++)
      body.push(`c${g}${i}${h} = fma(vec4f(a${g}_${k}[${i}]), b${h}_${k}, c${g}${i}${h});`);
  }
  for (let g = 0; g < RG; g++) for (let i = 0; i < 4; i++) for (let h = 0; h < 2; h++)
    store.push(`out[((m0 + ${g * 64}u + ty * 4u + ${i}u) * u.N + n0 + ${h * 64}u + tx * 4u) / 4u] = c${g}${i}${h};`);
  return { TM, TN, code: `enable f16;
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
struct P { n: u32, N: u32, K: u32 }
@group(0) @binding(3) var<uniform> u: P;
var<workgroup> As: array<vec4f, ${BK * TM / 4}>;
var<workgroup> Bs: array<vec4f, ${BK * 32}>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let n0 = wid.x * ${TN}u; let m0 = wid.y * ${TM}u;
  let tx = lid.x % 16u; let ty = lid.x / 16u;
  ${acc.join('\n  ')}
  for (var k0 = 0u; k0 < u.K; k0 += ${BK}u) {
    for (var i = lid.x; i < ${TM * BK / 4}u; i += 256u) {
      let r = i / ${BK / 4}u; let c = (i % ${BK / 4}u) * 4u;
      let v = x[(min(m0 + r, u.n - 1u) * u.K + k0 + c) / 4u];
      let o = r / 4u; let e = r % 4u;
      As[c * ${TM / 4}u + o][e] = v.x; As[(c + 1u) * ${TM / 4}u + o][e] = v.y;
      As[(c + 2u) * ${TM / 4}u + o][e] = v.z; As[(c + 3u) * ${TM / 4}u + o][e] = v.w;
    }
    for (var i = lid.x; i < ${128 * BK / 8}u; i += 256u) {
      let r = i / ${BK / 8}u; let c = (i % ${BK / 8}u) * 8u;
      let v = w[(min(n0 + r, u.N - 1u) * u.K + k0 + c) / 8u];
      let o = r / 4u; let e = r % 4u;
      let h0 = vec2f(bitcast<vec2<f16>>(v.x)); let h1 = vec2f(bitcast<vec2<f16>>(v.y));
      let h2 = vec2f(bitcast<vec2<f16>>(v.z)); let h3 = vec2f(bitcast<vec2<f16>>(v.w));
      Bs[c * 32u + o][e] = h0.x; Bs[(c + 1u) * 32u + o][e] = h0.y; Bs[(c + 2u) * 32u + o][e] = h1.x; Bs[(c + 3u) * 32u + o][e] = h1.y;
      Bs[(c + 4u) * 32u + o][e] = h2.x; Bs[(c + 5u) * 32u + o][e] = h2.y; Bs[(c + 6u) * 32u + o][e] = h3.x; Bs[(c + 7u) * 32u + o][e] = h3.y;
    }
    workgroupBarrier();
    ${body.join('\n    ')}
    workgroupBarrier();
  }
  ${store.join('\n  ')}
}` };
}


const mk = (data, usage) => upload(device, data, usage);

async function shape(n, N, K, cfgs) {
  const { wh, xf } = probeInputs(n, N, K);
  const wb = mk(wh, GPUBufferUsage.STORAGE), xb = mk(xf, GPUBufferUsage.STORAGE);
  const ob = device.createBuffer({ size: n * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const rb = device.createBuffer({ size: n * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const ub = mk(new Uint32Array([n, N, K, 0]), GPUBufferUsage.UNIFORM);
  for (const cfg of cfgs) {
    const { TM, TN, code } = wgsl(cfg);
    if (n % TM || N % TN) { console.log(`skip ${cfg} at ${n}x${N}`); continue; }
    const t = setTimeout(() => { console.log('TIMEOUT', JSON.stringify(cfg), n, N, K); process.exit(3); }, 60000);
    try {
      const mod = device.createShaderModule({ code });
      for (const m of (await mod.getCompilationInfo()).messages) if (m.type !== 'info') console.log(`  ${m.type}: ${m.message.split('\n')[0]}`);
      device.pushErrorScope('validation');
      const t0 = performance.now();
      const pipe = await device.createComputePipelineAsync({ layout: 'auto', compute: { module: mod, entryPoint: 'main' } });
      const pipeMs = performance.now() - t0;
      const bg = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [wb, xb, ob, ub].map((buffer, binding) => ({ binding, resource: { buffer } })) });
      const go = (r) => { const enc = device.createCommandEncoder(); const p = enc.beginComputePass(); p.setPipeline(pipe); p.setBindGroup(0, bg);
        for (let i = 0; i < r; i++) p.dispatchWorkgroups(N / TN, n / TM); p.end(); device.queue.submit([enc.finish()]); return device.queue.onSubmittedWorkDone(); };
      await go(1);
      const err = await device.popErrorScope(); if (err) { console.log('  error', err.message.slice(0, 300)); clearTimeout(t); continue; }
      const reps = Math.max(3, Math.min(50, Math.round(1e11 / (2 * n * N * K))));
      const t1 = performance.now(); await go(reps); const ms = (performance.now() - t1) / reps;
      const enc = device.createCommandEncoder(); enc.copyBufferToBuffer(ob, 0, rb, 0, n * N * 4); device.queue.submit([enc.finish()]);
      await rb.mapAsync(GPUMapMode.READ); const o = new Float32Array(rb.getMappedRange().slice(0)); rb.unmap();
      let worst = 0, bad = 0;
      for (let s = 0; s < 200; s++) {
        const r = Math.floor(Math.abs(rnd()) * 2 * n) % n, c = Math.floor(Math.abs(rnd()) * 2 * N) % N;
        let a = 0, mag = 0; for (let k = 0; k < K; k++) { const p = xf[r * K + k] * fromHalf(wh[c * K + k]); a += p; mag += Math.abs(p); }
        const e = Math.abs(o[r * N + c] - a) / mag; if (!(e <= 1e-5)) bad++; worst = Math.max(worst, e || Infinity);
      }
      console.log(`f32 ${JSON.stringify(cfg).padEnd(10)} ${TM}x${TN}  ${n}x${N}x${K}: ${ms.toFixed(3)} ms  ${(2 * n * N * K / ms / 1e9).toFixed(1)} TFLOP/s  pipeline ${pipeMs.toFixed(0)} ms  worst ${worst.toExponential(1)} bad ${bad}`);
    } catch (e) { console.log('FAIL', JSON.stringify(cfg), n, N, K, String(e).slice(0, 300)); }
    clearTimeout(t);
  }
  [wb, xb, ob, rb, ub].forEach((b) => b.destroy());
}

const cfgs = JSON.parse(process.argv[2] ?? '[[8,8],[8,16],[4,16],[4,8]]');
const shapes = JSON.parse(process.argv[3] ?? '[[512,2048,2048],[512,16384,2048],[512,2048,8192],[4096,2048,2048],[256,128256,2048]]');
for (const [n, N, K] of shapes) await shape(n, N, K, cfgs);
device.destroy();
process.exit(0);
