// Every array access the printer writes stays inside its array (compiler/kernel/bounds.ts), which is
// what lets tapir create its device with Dawn's robustness transform off (runtime/gpu.ts): storage
// indices are clamped to the array's length, workgroup ones are shown in bounds or clamped, a subgroup
// matrix must be shown inside its tile, and a vector lane picked at run time is shown in range or clamped.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { Project } from 'ts-morph';
import { translateSourceFile } from '../compiler/kernelc/translate.js';
import { toWGSL } from '../compiler/kernel/wgsl.js';
import { intervalOf, workgroupAccesses } from '../compiler/kernel/bounds.js';
import type { Expr } from '../compiler/kernel/ir.js';
import { kernels } from '../ops/kernels.gen.js';
import { getGpu, TENSOR_WORKGROUP_BYTES } from '../runtime/gpu.js';

const root = path.resolve(import.meta.dirname, '..');
const HEADER = `import { type Invocation, type In, type Out, type f32, type u32, type u32x4, type MatrixLeft, f32, u32, idiv, lane4, sharedF32, sharedF16, matrixLoadLeft, workgroupBarrier } from '../compiler/kernel/dsl.js';\n`;
const kernel = (sig: string, body: string, size = 64) => `/** @kernel @workgroupSize ${size} */\nexport function k(id: Invocation, ${sig}) {\n${body}\n}\n`;
function translate(src: string) {
  const project = new Project({ useInMemoryFileSystem: true });
  return translateSourceFile(project.createSourceFile(path.join(root, 'ops/case.ts'), HEADER + src), root)[0]!;
}

const u = (v: number): Expr => ({ k: 'lit', text: String(v), ty: 'u32' });
const bin = (op: string, a: Expr, b: Expr): Expr => ({ k: 'bin', op, a, b, ty: 'u32' });
const local: Expr = { k: 'builtin', name: 'local', ty: 'u32' };
const uniform: Expr = { k: 'uniform', name: 'n', ty: 'u32' };

describe('array accesses are guarded', () => {
  it('bounds u32 arithmetic by intervals; what comes from uniforms is unknown', () => {
    const k = { workgroupSize: 128 };
    const env = new Map();
    expect(intervalOf(bin('+', bin('*', bin('>>', local, u(1)), u(40)), bin('*', bin('&', local, u(1)), u(16))), env, k)).toEqual({ lo: 0, hi: 63 * 40 + 16 });
    expect(intervalOf(bin('%', uniform, u(8)), env, k)).toEqual({ lo: 0, hi: 7 });
    expect(intervalOf(bin('/', local, u(32)), env, k)).toEqual({ lo: 0, hi: 3 });
    expect(intervalOf(bin('+', local, uniform), env, k).hi).toBe(2 ** 32 - 1);
    // u32 subtraction that may wrap is unknown; one that cannot is bounded
    expect(intervalOf(bin('-', local, u(1)), env, k).hi).toBe(2 ** 32 - 1);
    expect(intervalOf(bin('-', bin('+', local, u(5)), u(5)), env, k)).toEqual({ lo: 0, hi: 127 });
    // a subgroup's index: workgroup / 32 where the kernel holds subgroup matrices (subgroups of 32 only)
    expect(intervalOf({ k: 'builtin', name: 'subgroupId', ty: 'u32' }, env, { ...k, matrixSubgroups: true })).toEqual({ lo: 0, hi: 3 });
    expect(intervalOf({ k: 'builtin', name: 'subgroupId', ty: 'u32' }, env, k)).toEqual({ lo: 0, hi: 127 });
  });

  it('clamps every storage index, and workgroup indices it cannot show in bounds', () => {
    const k = translate(kernel('x: In<f32>, out: Out<f32>, n: u32', `
      const s = sharedF32(64);
      s[id.local] = x[id.local + n];
      for (let i: u32 = 0; i < 8; i++) { s[i * 8 + 7] += 1; }
      for (let j: u32 = 0; j <= 8; j++) { s[j * 8] += 1; }
      if (id.local < 16) { s[id.local * 4 + 3] += 1; }
      s[(id.local + n) % 64] += 1;
      let m: u32 = id.local;
      if (m < 8) { m += n; s[m] += 1; }
      s[id.local + n] += 1;
      workgroupBarrier();
      out[id.group * 64 + id.local] = s[id.local];`));
    const wgsl = toWGSL(k);
    expect(wgsl).toContain('s[lid.x] = x[min((lid.x + u.n), arrayLength(&x) - 1u)];');
    expect(wgsl).toContain('s[((i * 8u) + 7u)] += 1.0f;'); // a counter below 8: at most 63
    expect(wgsl).toContain('s[min((j * 8u), 63u)] += 1.0f;'); // j reaches 8: 64 is past the end
    expect(wgsl).toContain('s[((lid.x * 4u) + 3u)] += 1.0f;'); // inside `if (lid.x < 16)`
    expect(wgsl).toContain('s[((lid.x + u.n) % 64u)] += 1.0f;');
    expect(wgsl).toContain('s[min((lid.x + u.n), 63u)] += 1.0f;');
    expect(wgsl).toContain('s[min(m, 63u)] += 1.0f;'); // a mutable variable is not narrowed by `if (m < 8)`
    expect(wgsl).toContain('out[min((((wid.x + wid.y * nwg.x) * 64u) + lid.x), arrayLength(&out) - 1u)] = s[lid.x];');
  });

  it('refuses to print a subgroup matrix it cannot show inside its tile, and clamps a vector lane it cannot show in range', () => {
    const m = (offset: string) => translate(kernel('out: Out<f32>', `
      const a = sharedF16(512);
      const l: MatrixLeft = matrixLoadLeft(a, ${offset}, 16);
      out[0] = 1;`, 128));
    expect(() => toWGSL(m('id.subgroupId * 16'))).not.toThrow(); // at most 3·16 + 15·16 + 15 = 303
    expect(() => toWGSL(m('id.subgroupId * 64'))).not.toThrow(); // 3·64 + 255 = 447
    expect(() => toWGSL(m('id.subgroupId * 100'))).toThrow(/matrixLoadLeft on 'a' is not shown inside its 512 elements \(its last element may be 555\)/);
    expect(() => toWGSL(m('id.subgroupId * 160'))).toThrow(/its last element may be 735/);
    const lanes = translate(kernel('w: In<u32x4>, out: Out<u32>, n: u32', `
      out[0] = lane4(w[0], n);
      out[1] = lane4(w[0], n & 3);`));
    const wgsl = toWGSL(lanes);
    expect(wgsl).toContain('[min(u.n, 3u)]');
    expect(wgsl).toContain('[(u.n & 3u)]');
  });

  it("shows the tensor-core kernel's tiles in bounds, so its workgroup stores and matrix loads are unguarded", () => {
    const k = kernels.matmulTensorKernel;
    const size = new Map([...k.shared, ...(k.locals ?? [])].map((s) => [s.name, s.size]));
    const accesses = [...workgroupAccesses(k).values()].filter((a) => a.array);
    expect(accesses.length).toBeGreaterThan(15);
    for (const a of accesses) expect(a.span.hi, a.array).toBeLessThan(size.get(a.array)!);
    expect(toWGSL(k)).not.toMatch(/(xs|ws|os|sc|wq|xq)\[min\(/);
    // the device is asked for this much workgroup memory where the tensor cores run (runtime/gpu.ts)
    const bytes = k.shared.reduce((n, s) => n + s.size * (s.elem === 'f16' ? 2 : 4), 0);
    expect(bytes).toBe(TENSOR_WORKGROUP_BYTES);
  });

  it("shows the transposed tensor-core kernel's tiles in bounds too, within the workgroup memory the device is asked for", () => {
    const k = kernels.matmulTTensorKernel;
    const size = new Map([...k.shared, ...(k.locals ?? [])].map((s) => [s.name, s.size]));
    const accesses = [...workgroupAccesses(k).values()].filter((a) => a.array);
    expect(accesses.length).toBeGreaterThan(10);
    for (const a of accesses) expect(a.span.hi, a.array).toBeLessThan(size.get(a.array)!);
    expect(toWGSL(k)).not.toMatch(/(ws|ds|os|wq|dq|dsc)\[min\(/);
    expect(k.shared.reduce((n, s) => n + s.size * (s.elem === 'f16' ? 2 : 4), 0)).toBeLessThanOrEqual(TENSOR_WORKGROUP_BYTES);
  });

  it('on the device (robustness off), an index past the end reads and writes the last element, as the robustness transform made it', async () => {
    const gpu = await getGpu();
    const k = translate(kernel('x: In<f32>, out: Out<f32>, n: u32', `
      const s = sharedF32(64);
      s[id.local] = 0;
      workgroupBarrier();
      if (id.local === 0) { s[n] = x[n]; }
      workgroupBarrier();
      if (id.local < 63) { out[id.local] = s[id.local]; } else { out[id.local + n] = s[id.local] + 1; }`));
    const d = gpu.device;
    const mk = (size: number, usage: number) => d.createBuffer({ size, usage });
    const x = mk(16 * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST), out = mk(64 * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const un = mk(16, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST), rb = mk(64 * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    d.queue.writeBuffer(x, 0, Float32Array.from({ length: 16 }, (_, i) => i + 1));
    d.queue.writeBuffer(un, 0, new Uint32Array([1000, 0, 0, 0]));
    const pipeline = d.createComputePipeline({ layout: 'auto', compute: { module: d.createShaderModule({ code: toWGSL(k) }), entryPoint: 'main' } });
    const bg = d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [x, out, un].map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const enc = d.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(out, 0, rb, 0, 64 * 4);
    d.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    const got = new Float32Array(rb.getMappedRange().slice(0));
    rb.unmap();
    [x, out, un, rb].forEach((b) => b.destroy());
    // x[1000] read x[15] = 16 into s[1000 → 63]; invocation 63 wrote s[63] + 1 to out[1063 → 63]
    expect(Array.from(got)).toEqual([...Array(63).fill(0), 17]);
  });
});
