// A hardware probe, not part of tapir (issue 18): which tiling of Dawn's subgroup matrices (Vulkan
// cooperative matrices) makes prefill-shaped matrix products fast. The first probe
// (subgroup_matrix.mjs) staged its tiles with scalar loads and conversions and ran one workgroup of 4
// subgroups per SM at 512 rows: 2-23 TFLOP/s. Here the subgroups of a workgroup form a grid (SMG × SNG),
// each holding MT × NT accumulators of 16 × 16; A (the activations, f32 as in tapir) and B (f16 weights
// [N, K]) come either staged through workgroup memory with vector loads (rows padded by 8 halves) or
// straight from storage (pre-rounded f16). WGSL written by hand on purpose: tapir's kernels come from its
// kernel language once the tiling is known. out[n, N] = x[n, K] · w[N, K]ᵀ, f32 accumulation, checked
// against float64 sums of the same f16 inputs; prints TFLOP/s.
//   cd /tmp/tapir && [NOROBUST=1] ./node $REPO/benchmarks/probes/subgroup_matrix_tiles.mjs [CONFIGS] [SHAPES]
import { create, globals } from '/tmp/tapir/node_modules/webgpu/index.js';
import { fromHalf, probeInputs, rnd, toHalf, upload } from './harness.mjs';
Object.assign(globalThis, globals);
const gpu = create([`enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia${process.env.NOROBUST ? ',disable_robustness' : ''}`]);
const adapter = await gpu.requestAdapter();
const device = await adapter.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'],
  requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize, maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize } });
device.onuncapturederror = (e) => console.log('uncaptured', e.error.message);
console.log('robustness', process.env.NOROBUST ? 'off' : 'on');

function wgsl([SMG, SNG, MT, NT, KS, AM, BM]) {
  const S = SMG * SNG, WG = S * 32, TM = SMG * MT * 16, TN = SNG * NT * 16, AS = KS + 8;
  const acc = [], body = [], store = [];
  for (let mt = 0; mt < MT; mt++) for (let nt = 0; nt < NT; nt++) acc.push(`var c${mt}_${nt}: subgroup_matrix_result<f32, 16, 16>;`);
  // AM 'z': A and B read from workgroup memory that is never staged (no staging cost); 'm': also loaded
  // once before the loop (the multiply-accumulates alone)
  const pre = [];
  if (AM === 'm') {
    for (let mt = 0; mt < MT; mt++) pre.push(`let a${mt} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&xs, (sm * ${MT * 16}u + ${mt * 16}u) * ${AS}u, ${AS}u);`);
    for (let nt = 0; nt < NT; nt++) pre.push(`let b${nt} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws, (sn * ${NT * 16}u + ${nt * 16}u) * ${AS}u, ${AS}u);`);
    for (let kk = 0; kk < KS; kk += 16) for (let nt = 0; nt < NT; nt++) for (let mt = 0; mt < MT; mt++) body.push(`c${mt}_${nt} = subgroupMatrixMultiplyAccumulate(a${mt}, b${nt}, c${mt}_${nt});`);
  }
  for (let kk = 0; AM !== 'm' && kk < KS; kk += 16) {
    for (let mt = 0; mt < MT; mt++) body.push(AM !== 'd'
      ? `let a${mt}_${kk} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&xs, (sm * ${MT * 16}u + ${mt * 16}u) * ${AS}u + ${kk}u, ${AS}u);`
      : `let a${mt}_${kk} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&xh, min(m0 + sm * ${MT * 16}u + ${mt * 16}u, u.n - 16u) * u.K + k0 + ${kk}u, u.K);`);
    for (let nt = 0; nt < NT; nt++) {
      body.push(BM !== 'd'
        ? `let b${nt}_${kk} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&ws, (sn * ${NT * 16}u + ${nt * 16}u) * ${AS}u + ${kk}u, ${AS}u);`
        : `let b${nt}_${kk} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&wh, min(n0 + sn * ${NT * 16}u + ${nt * 16}u, u.N - 16u) * u.K + k0 + ${kk}u, u.K);`);
      for (let mt = 0; mt < MT; mt++) body.push(`c${mt}_${nt} = subgroupMatrixMultiplyAccumulate(a${mt}_${kk}, b${nt}_${kk}, c${mt}_${nt});`);
    }
  }
  for (let mt = 0; mt < MT; mt++) for (let nt = 0; nt < NT; nt++)
    store.push(`subgroupMatrixStore<row_major>(&out, (m0 + sm * ${MT * 16}u + ${mt * 16}u) * u.N + n0 + sn * ${NT * 16}u + ${nt * 16}u, c${mt}_${nt}, u.N);`);
  const stageA = AM !== 's' ? '' : `
    for (var i = lid.x; i < ${TM * KS / 4}u; i += ${WG}u) {
      let r = i / ${KS / 4}u; let c = i % ${KS / 4}u;
      let v = x[(min(m0 + r, u.n - 1u) * u.K + k0) / 4u + c];
      let b = r * ${AS}u + c * 4u;
      xs[b] = f16(v.x); xs[b + 1u] = f16(v.y); xs[b + 2u] = f16(v.z); xs[b + 3u] = f16(v.w);
    }`;
  const stageB = BM !== 's' ? '' : `
    for (var i = lid.x; i < ${TN * KS / 8}u; i += ${WG}u) {
      let r = i / ${KS / 8}u; let c = i % ${KS / 8}u;
      let v = w[(min(n0 + r, u.N - 1u) * u.K + k0) / 8u + c];
      let b = r * ${AS}u + c * 8u;
      let h0 = bitcast<vec2<f16>>(v.x); let h1 = bitcast<vec2<f16>>(v.y); let h2 = bitcast<vec2<f16>>(v.z); let h3 = bitcast<vec2<f16>>(v.w);
      ws[b] = h0.x; ws[b + 1u] = h0.y; ws[b + 2u] = h1.x; ws[b + 3u] = h1.y; ws[b + 4u] = h2.x; ws[b + 5u] = h2.y; ws[b + 6u] = h3.x; ws[b + 7u] = h3.y;
    }`;
  // unrolled staging, each invocation's share loaded into registers first: AM 'p' (f32) and 'q' (f16
  // activations) load the next k step's share while this step multiplies (prefetch), 'h' does not; BM 'p'
  // prefetches, 'u' does not
  const pre2 = [], stage2 = [], fetch2 = [];
  const unrolled = (items, WGn, load, store, prefetch, tag) => {
    for (let j = 0; j < items / WGn; j++) {
      const i = `(lid.x + ${j * WGn}u)`;
      if (prefetch) { pre2.push(`var ${tag}${j} = ${load(i, '0u')};`); fetch2.push(`${tag}${j} = ${load(i, `min(k0 + ${KS}u, u.K - ${KS}u)`)};`); stage2.push(store(i, `${tag}${j}`)); }
      else stage2.push(`{ let v = ${load(i, 'k0')}; ${store(i, 'v')} }`);
    }
  };
  const h8 = (arr, b, v) => `{ let h0 = bitcast<vec2<f16>>(${v}.x); let h1 = bitcast<vec2<f16>>(${v}.y); let h2 = bitcast<vec2<f16>>(${v}.z); let h3 = bitcast<vec2<f16>>(${v}.w); let b = ${b}; ${arr}[b] = h0.x; ${arr}[b + 1u] = h0.y; ${arr}[b + 2u] = h1.x; ${arr}[b + 3u] = h1.y; ${arr}[b + 4u] = h2.x; ${arr}[b + 5u] = h2.y; ${arr}[b + 6u] = h3.x; ${arr}[b + 7u] = h3.y; }`;
  if (AM === 'p') unrolled(TM * KS / 4, WG, (i, k) => `x[(min(m0 + ${i} / ${KS / 4}u, u.n - 1u) * u.K + ${k}) / 4u + ${i} % ${KS / 4}u]`,
    (i, v) => `{ let b = (${i} / ${KS / 4}u) * ${AS}u + (${i} % ${KS / 4}u) * 4u; xs[b] = f16(${v}.x); xs[b + 1u] = f16(${v}.y); xs[b + 2u] = f16(${v}.z); xs[b + 3u] = f16(${v}.w); }`, true, 'pa');
  if (AM === 'h' || AM === 'q') unrolled(TM * KS / 8, WG, (i, k) => `xq[(min(m0 + ${i} / ${KS / 8}u, u.n - 1u) * u.K + ${k}) / 8u + ${i} % ${KS / 8}u]`,
    (i, v) => h8('xs', `(${i} / ${KS / 8}u) * ${AS}u + (${i} % ${KS / 8}u) * 8u`, v), AM === 'q', 'pa');
  if (BM === 'p' || BM === 'u') unrolled(TN * KS / 8, WG, (i, k) => `w[(min(n0 + ${i} / ${KS / 8}u, u.N - 1u) * u.K + ${k}) / 8u + ${i} % ${KS / 8}u]`,
    (i, v) => h8('ws', `(${i} / ${KS / 8}u) * ${AS}u + (${i} % ${KS / 8}u) * 8u`, v), BM === 'p', 'pb');
  const staged = AM !== 'd' || BM !== 'd';
  return { TM, TN, code: `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> wh: array<f16>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> xh: array<f16>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
struct P { n: u32, N: u32, K: u32 }
@group(0) @binding(5) var<uniform> u: P;
@group(0) @binding(6) var<storage, read> xq: array<vec4<u32>>;
${AM !== 'd' ? `var<workgroup> xs: array<f16, ${TM * AS}>;` : ''}
${BM !== 'd' ? `var<workgroup> ws: array<f16, ${TN * AS}>;` : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(subgroup_id) sg: u32) {
  let n0 = wid.x * ${TN}u; let m0 = wid.y * ${TM}u;
  let sm = sg / ${SNG}u; let sn = sg % ${SNG}u;
  _ = &w; _ = &wh; _ = &x; _ = &xh; _ = &xq;
  ${acc.join('\n  ')}
  ${pre.join('\n  ')}
  ${pre2.join('\n  ')}
  for (var k0 = 0u; k0 < u.K; k0 += ${KS}u) {${stageA}${stageB}
    ${stage2.join('\n    ')}
    ${staged ? 'workgroupBarrier();' : ''}
    ${fetch2.join('\n    ')}
    ${body.join('\n    ')}
    ${staged ? 'workgroupBarrier();' : ''}
  }
  ${store.join('\n  ')}
}` };
}


const mk = (data, usage) => upload(device, data, usage);

async function shape(n, N, K, cfgs) {
  const { wh, xf } = probeInputs(n, N, K);
  const wb = mk(wh, GPUBufferUsage.STORAGE), xb = mk(xf, GPUBufferUsage.STORAGE), xhb = mk(Uint16Array.from(xf, toHalf), GPUBufferUsage.STORAGE);
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
      const bg = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [wb, wb, xb, xhb, ob, ub, xhb].map((buffer, binding) => ({ binding, resource: { buffer } })) });
      const go = (r) => { const enc = device.createCommandEncoder(); const p = enc.beginComputePass(); p.setPipeline(pipe); p.setBindGroup(0, bg);
        for (let i = 0; i < r; i++) p.dispatchWorkgroups(N / TN, n / TM); p.end(); device.queue.submit([enc.finish()]); return device.queue.onSubmittedWorkDone(); };
      await go(1);
      const err = await device.popErrorScope(); if (err) { console.log('  error', err.message.slice(0, 300)); clearTimeout(t); continue; }
      const reps = Math.max(3, Math.min(50, Math.round(2e11 / (2 * n * N * K))));
      const t1 = performance.now(); await go(reps); const ms = (performance.now() - t1) / reps;
      const enc = device.createCommandEncoder(); enc.copyBufferToBuffer(ob, 0, rb, 0, n * N * 4); device.queue.submit([enc.finish()]);
      await rb.mapAsync(GPUMapMode.READ); const o = new Float32Array(rb.getMappedRange().slice(0)); rb.unmap();
      let worst = 0, bad = 0;
      for (let s = 0; s < 200; s++) {
        const r = Math.floor(Math.abs(rnd()) * 2 * n) % n, c = Math.floor(Math.abs(rnd()) * 2 * N) % N;
        let a = 0, mag = 0; for (let k = 0; k < K; k++) { const p = fromHalf(toHalf(xf[r * K + k])) * fromHalf(wh[c * K + k]); a += p; mag += Math.abs(p); }
        const e = Math.abs(o[r * N + c] - a) / mag; if (!(e <= 1e-5)) bad++; worst = Math.max(worst, e || Infinity);
      }
      console.log(`${JSON.stringify(cfg).padEnd(28)} ${TM}x${TN}  ${n}x${N}x${K}: ${ms.toFixed(3)} ms  ${(2 * n * N * K / ms / 1e9).toFixed(1)} TFLOP/s  pipeline ${pipeMs.toFixed(0)} ms  worst ${worst.toExponential(1)} bad ${bad}`);
    } catch (e) { console.log('FAIL', JSON.stringify(cfg), n, N, K, String(e).slice(0, 300)); }
    clearTimeout(t);
  }
  [wb, xb, xhb, ob, rb, ub].forEach((b) => b.destroy());
}

const cfgs = JSON.parse(process.argv[2] ?? JSON.stringify([
  [2, 2, 2, 2, 32, 's', 's'], [2, 2, 4, 2, 32, 's', 's'], [2, 2, 2, 4, 32, 's', 's'], [2, 4, 2, 2, 32, 's', 's'],
  [4, 2, 2, 2, 32, 's', 's'], [2, 4, 4, 2, 32, 's', 's'], [2, 2, 2, 2, 64, 's', 's'], [2, 2, 4, 4, 32, 's', 's'],
  [1, 4, 1, 2, 32, 's', 's'], [1, 4, 1, 4, 32, 's', 'd'], [2, 2, 2, 2, 32, 's', 'd'], [2, 2, 2, 2, 16, 'd', 'd'],
  [2, 2, 4, 2, 16, 'd', 'd'], [1, 8, 1, 2, 32, 's', 'd'], [2, 4, 4, 2, 64, 's', 's']]));
const shapes = JSON.parse(process.argv[3] ?? '[[512,2048,2048],[512,16384,2048],[512,2048,8192],[4096,2048,2048],[256,128256,2048],[16,16384,2048],[16,2048,8192]]');
for (const [n, N, K] of shapes) await shape(n, N, K, cfgs);
device.destroy();
process.exit(0);
