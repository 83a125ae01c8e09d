// A hardware probe, not part of tapir: what Dawn's subgroup matrices (Vulkan cooperative matrices, the
// tensor cores) give for the matrix products of prefill, before the kernel language grows them (issue
// 18). Its WGSL is written here by hand on purpose (tapir's own kernels come from the kernel language):
// out[n, N] = x[n, K] (f32, rounded to f16) · w[N, K]ᵀ (f16), f32 accumulation, tiles of MT×16 rows by
// S·NT·16 columns per workgroup of S subgroups; DIRECT 1 reads w's tiles straight from storage, 2 also x
// (pre-rounded to f16). Checked against a float64 sum of the same f16 inputs; prints TFLOP/s.
// On the GPU machine (after `bash scripts/gpu-machine.sh node --version` unpacked Node and webgpu):
//   cd /tmp/tapir && [NOROBUST=1] ./node $REPO/benchmarks/probes/subgroup_matrix.mjs [CONFIGS] [SHAPES]
import { create, globals } from '/tmp/tapir/node_modules/webgpu/index.js';
import { fromHalf, probeInputs, rnd, toHalf, upload } from './harness.mjs';
Object.assign(globalThis, globals);
const gpu = create([`enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia${process.env.NOROBUST ? ',disable_robustness' : ''}`]);
const adapter = await gpu.requestAdapter();
console.log('features', [...adapter.features].join(' '));
console.log('configs', JSON.stringify([...adapter.info.subgroupMatrixConfigs].map((c) => [c.componentType, c.resultComponentType, c.M, c.N, c.K])), 'sg', adapter.info.subgroupMinSize, adapter.info.subgroupMaxSize);
console.log('wg storage', adapter.limits.maxComputeWorkgroupStorageSize);
const device = await adapter.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'],
  requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize, maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize } });
device.onuncapturederror = (e) => console.log('uncaptured', e.error.message);

function wgsl(MT, NT, S, KS, DIRECT) {
  const L = [], A = [];
  for (let mt = 0; mt < MT; mt++) for (let nt = 0; nt < NT; nt++) A.push(`var c${mt}_${nt}: subgroup_matrix_result<f32, 16, 16>;`);
  const body = [];
  for (let mt = 0; mt < MT; mt++) body.push(DIRECT === 2 ? `let a${mt} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&xh, (m0 + ${mt * 16}u) * u.K + k0 + kk, u.K);` : `let a${mt} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&xs, ${mt * 16}u * KS + kk, KS);`);
  for (let nt = 0; nt < NT; nt++) {
    body.push(DIRECT ? `let b${nt} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&wh, min(n0 + (sg * ${NT}u + ${nt}u) * 16u, u.N - 16u) * u.K + k0 + kk, u.K);` : `let b${nt} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws, (sg * ${NT}u + ${nt}u) * 16u * KS + kk, KS);`);
    for (let mt = 0; mt < MT; mt++) body.push(`c${mt}_${nt} = subgroupMatrixMultiplyAccumulate(a${mt}, b${nt}, c${mt}_${nt});`);
  }
  const store = [];
  for (let mt = 0; mt < MT; mt++) for (let nt = 0; nt < NT; nt++) store.push(`
    subgroupMatrixStore<row_major>(&os, sg * 256u, c${mt}_${nt}, 16u);
    workgroupBarrier();
    for (var j = 0u; j < 8u; j++) {
      let e = (lid.x % 32u) * 8u + j; let r = m0 + ${mt * 16}u + e / 16u; let c = n0 + (sg * ${NT}u + ${nt}u) * 16u + e % 16u;
      if (r < u.n && c < u.N) { out[r * u.N + c] = os[sg * 256u + e]; }
    }
    workgroupBarrier();`);
  const WG = S * 32, TM = MT * 16, TN = S * NT * 16;
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
${DIRECT ? '@group(0) @binding(0) var<storage, read> wh: array<f16>;' : '@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;'}
${DIRECT === 2 ? '@group(0) @binding(1) var<storage, read> xh: array<f16>;' : '@group(0) @binding(1) var<storage, read> x: array<f32>;'}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
struct P { n: u32, N: u32, K: u32 }
@group(0) @binding(3) var<uniform> u: P;
const KS: u32 = ${KS}u;
const TM: u32 = ${TM}u;
const TN: u32 = ${TN}u;
${DIRECT === 2 ? '' : `var<workgroup> xs: array<f16, ${TM * KS}>;`}
${DIRECT ? '' : `var<workgroup> ws: array<f16, ${TN * KS}>;`}
var<workgroup> os: array<f32, ${S * 256}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(subgroup_id) sg: u32) {
  let n0 = wid.x * TN; let m0 = wid.y * TM;
  ${A.join('\n  ')}
  for (var k0 = 0u; k0 < u.K; k0 += KS) {
${DIRECT === 2 ? '' : `    for (var i = lid.x; i < TM * KS; i += ${WG}u) {
      let r = min(m0 + i / KS, u.n - 1u);
      xs[i] = f16(x[r * u.K + k0 + i % KS]);
    }
`}${DIRECT ? '' : `    for (var i = lid.x; i < TN * KS / 8u; i += ${WG}u) {
      let r = min(n0 + i / (KS / 8u), u.N - 1u);
      let v = w[(r * u.K + k0) / 8u + i % (KS / 8u)];
      let b = (i / (KS / 8u)) * KS + (i % (KS / 8u)) * 8u;
      let h0 = bitcast<vec2<f16>>(v.x); let h1 = bitcast<vec2<f16>>(v.y); let h2 = bitcast<vec2<f16>>(v.z); let h3 = bitcast<vec2<f16>>(v.w);
      ws[b] = h0.x; ws[b + 1u] = h0.y; ws[b + 2u] = h1.x; ws[b + 3u] = h1.y; ws[b + 4u] = h2.x; ws[b + 5u] = h2.y; ws[b + 6u] = h3.x; ws[b + 7u] = h3.y;
    }
`}    ${DIRECT === 2 ? '' : 'workgroupBarrier();'}
    for (var kk = 0u; kk < KS; kk += 16u) {
      ${body.join('\n      ')}
    }
    ${DIRECT === 2 ? '' : 'workgroupBarrier();'}
  }
  ${store.join('\n')}
}`;
}


async function run(cfg, n, N, K, reps = 20, check = true) {
  const [MT, NT, S, KS, DIRECT] = cfg;
  const code = wgsl(MT, NT, S, KS, DIRECT);
  const mod = device.createShaderModule({ code });
  const info = await mod.getCompilationInfo();
  for (const m of info.messages) console.log(`  ${m.type}: ${m.message.split('\n')[0]}`);
  device.pushErrorScope('validation');
  const t0 = performance.now();
  const pipe = await device.createComputePipelineAsync({ layout: 'auto', compute: { module: mod, entryPoint: 'main' } });
  const pipeMs = performance.now() - t0;
  const { wh, xf } = probeInputs(n, N, K);
  const mk = (data, usage) => upload(device, data, usage);
  const wb = mk(wh, GPUBufferUsage.STORAGE), xb = mk(DIRECT === 2 ? Uint16Array.from(xf, toHalf) : xf, GPUBufferUsage.STORAGE);
  const ob = device.createBuffer({ size: n * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const ub = mk(new Uint32Array([n, N, K, 0]), GPUBufferUsage.UNIFORM);
  const bg = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [wb, xb, ob, ub].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const TM = MT * 16, TN = S * NT * 16;
  const go = (r) => { const enc = device.createCommandEncoder(); const p = enc.beginComputePass(); p.setPipeline(pipe); p.setBindGroup(0, bg);
    for (let i = 0; i < r; i++) p.dispatchWorkgroups(Math.ceil(N / TN), Math.ceil(n / TM)); p.end(); device.queue.submit([enc.finish()]); return device.queue.onSubmittedWorkDone(); };
  await go(1);
  const err = await device.popErrorScope(); if (err) { console.log('  error', err.message); return; }
  const t1 = performance.now(); await go(reps); const ms = (performance.now() - t1) / reps;
  let worst = 0, bad = 0;
  if (check) {
    const rb = device.createBuffer({ size: n * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder(); enc.copyBufferToBuffer(ob, 0, rb, 0, n * N * 4); device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ); const o = new Float32Array(rb.getMappedRange().slice(0));
    for (let s = 0; s < 400; s++) {
      const r = Math.floor(Math.abs(rnd()) * 2 * n) % n, c = Math.floor(Math.abs(rnd()) * 2 * N) % N;
      let acc = 0, mag = 0; for (let k = 0; k < K; k++) { const p = fromHalf(toHalf(xf[r * K + k])) * fromHalf(wh[c * K + k]); acc += p; mag += Math.abs(p); }
      const e = Math.abs(o[r * N + c] - acc) / mag; if (!(e <= 1e-5)) bad++; worst = Math.max(worst, e);
    }
    rb.destroy();
  }
  console.log(`cfg MT${MT} NT${NT} S${S} KS${KS}${DIRECT ? ' direct' : ''}  n=${n} N=${N} K=${K}: ${ms.toFixed(3)} ms  ${(2 * n * N * K / ms / 1e9).toFixed(1)} TFLOP/s  ${(N * K * 2 / ms / 1e9).toFixed(2)} TB/s(w)  pipeline ${pipeMs.toFixed(0)} ms  worst rel-to-|sum| ${worst.toExponential(2)} bad ${bad}`);
  [wb, xb, ob, ub].forEach((b) => b.destroy());
}

const cfgs = JSON.parse(process.argv[2] ?? '[[4,2,4,32],[2,2,4,32],[1,1,4,32],[1,1,1,32],[4,2,4,64],[2,4,4,32]]');
const shapes = JSON.parse(process.argv[3] ?? '[[512,2048,2048],[512,16384,2048],[512,2048,8192],[256,128256,2048],[128,2048,2048],[16,2048,2048],[16,16384,2048],[16,2048,8192]]');
for (const cfg of cfgs) for (const [n, N, K] of shapes) {
  const t = setTimeout(() => { console.log('TIMEOUT', cfg, n, N, K); process.exit(3); }, 60000);
  try { await run(cfg, n, N, K, 20, n * N <= 512 * 2048); } catch (e) { console.log('FAIL', cfg, n, N, K, String(e).slice(0, 400)); break; }
  clearTimeout(t);
}
device.destroy();
process.exit(0);
