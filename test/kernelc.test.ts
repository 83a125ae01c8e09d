// The TypeScript -> kernel IR translator: what it accepts, and the sentence it fails with otherwise.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { Project } from 'ts-morph';
import { translateSourceFile } from '../compiler/kernelc/translate.js';
import { toWGSL } from '../compiler/kernel/wgsl.js';

const root = path.resolve(import.meta.dirname, '..');
const HEADER = `import { type Invocation, type In, type Out, type f32, type u32, type i32, f32, u32, idiv, localF32, sharedF32, workgroupBarrier } from '../compiler/kernel/dsl.js';\n`;

function translate(body: string) {
  const project = new Project({ useInMemoryFileSystem: true });
  const sf = project.createSourceFile(path.join(root, 'ops/case.ts'), HEADER + body);
  return translateSourceFile(sf, root);
}
const kernel = (sig: string, body: string, tag = '@workgroupSize 64') => `/** @kernel ${tag} */\nexport function k(id: Invocation, ${sig}) {\n${body}\n}\n`;

describe('kernel translation', () => {
  it('translates loops, conditionals, conversions and workgroup memory', () => {
    const [k] = translate(kernel('x: In<f32>, out: Out<f32>, n: u32, scale: f32', `
      const s = sharedF32(64);
      let acc: f32 = 0;
      for (let i: u32 = id.local; i < n; i += id.size) { acc += x[i] * scale; }
      s[id.local] = acc;
      workgroupBarrier();
      if (id.local === 0) { out[id.group] = s[0] > 0 ? s[0] : -s[0] + f32(idiv(n, 2)); }`));
    const wgsl = toWGSL(k!);
    expect(k!.params.map((p) => p.kind)).toEqual(['in', 'out', 'uniform', 'uniform']);
    expect(wgsl).toContain('var<workgroup> s: array<f32, 64>;');
    expect(wgsl).toContain('for (var i: u32 = lid.x; (i < u.n); i += 64u)');
    expect(wgsl).toContain('workgroupBarrier();');
    expect(wgsl).toContain('select(');
    expect(wgsl).toContain('f32((u.n / 2u))');
    expect(k!.source).toBe('ops/case.ts:3'); // the line of `export function`
  });

  const rejects: [string, string, RegExp][] = [
    ['captured outer variables', `out[0] = LIMIT;`, /ops\/case\.ts:\d+: 'LIMIT' comes from outside the kernel; pass it as a parameter/],
    ['integer division', `out[0] = f32(n / 2);`, /integer division .* write idiv\(a, b\)/],
    ['mixed number types', `out[0] = n * 2.5;`, /fractional number cannot be u32|mixing/],
    ['untyped bare numbers', `let t = 0; out[0] = f32(t);`, /give 't' a type/],
    ['writes to read-only arrays', `x[0] = 1;`, /read-only/],
    ['unsupported statements', `try { out[0] = 1; } catch { }`, /TryStatement is not supported in kernels/],
    ['arbitrary calls', `out[0] = foo(1);`, /call to 'foo' is not supported/],
    ['return values', `return 1;`, /kernels return nothing/],
    ['object literals', `const o = { a: 1 };`, /ObjectLiteralExpression is not supported/],
  ];
  it.each(rejects)('rejects %s with file and line', (_, body, msg) => {
    const src = `const LIMIT = 3;\ndeclare function foo(x: number): number;\n` + kernel('x: In<f32>, out: Out<f32>, n: u32', body);
    expect(() => translate(src)).toThrow(msg);
  });

  it('rejects parameters of other types and a missing workgroup size', () => {
    expect(() => translate(kernel('x: number[]', ''))).toThrow(/parameter 'x' has type 'number\[\]'/);
    expect(() => translate(kernel('x: In<f32>', '', ''))).toThrow(/@workgroupSize/);
  });

  it('inlines statement helpers, renaming their locals so they never meet the caller\'s', () => {
    const src = `/** @inline */\nexport function bump(a: Out<f32>, id: Invocation, by: f32): void {\n  const s: f32 = by * 2;\n  a[id.local] += s;\n}\n` +
      kernel('out: Out<f32>', `const s: f32 = 1;\n  bump(out, id, s);\n  bump(out, id, s + 1);\n  out[0] = s;`);
    const wgsl = toWGSL(translate(src)[0]!);
    expect(wgsl).toContain('let s_bump1: f32 = (s * 2.0f);');
    expect(wgsl).toContain('let s_bump2: f32 = ((s + 1.0f) * 2.0f);');
    expect(wgsl).toContain('out[min(lid.x, arrayLength(&out) - 1u)] += s_bump2;');
    expect(() => translate(`/** @inline */\nexport function bad(a: Out<f32>): void {\n  return;\n}\n` + kernel('out: Out<f32>', 'bad(out);'))).toThrow(/must not return early/);
    expect(() => translate(`/** @inline */\nexport function two(x: f32): f32 {\n  return x;\n}\n` + kernel('out: Out<f32>', 'two(1);'))).toThrow(/only @inline helpers returning void/);
  });

  it('unrolls the constant-trip loops that index local arrays, so every index is a constant', () => {
    const src = kernel('x: In<f32>, out: Out<f32>, n: u32', `
      const acc = localF32(8);
      for (let c: u32 = 0; c < n; c++) {
        for (let i: u32 = 0; i < 2; i++) {
          for (let j: u32 = 0; j < 4; j++) {
            const p: f32 = x[c] * f32(j);
            acc[i * 4 + j] += p;
          }
        }
      }
      for (let j: u32 = 0; j < 8; j += 2) { out[j] = acc[j]; }
      for (let j: u32 = 0; j < 3; j++) { if (j === n) { break; } acc[j] = 1; }
      out[8] = acc[n];`);
    const k = translate(src)[0]!;
    const wgsl = toWGSL(k);
    expect(k.locals).toEqual([{ name: 'acc', elem: 'f32', size: 8 }]);
    expect(wgsl).toContain('  var acc: array<f32, 8>;');
    expect(wgsl).toContain('for (var c: u32 = 0u; (c < u.n); c += 1u)'); // a loop of run-time length stays
    for (const i of [0, 1]) for (const j of [0, 1, 2, 3]) expect(wgsl).toContain(`acc[${i * 4 + j}u] += p;`);
    expect(wgsl).toContain('let p: f32 = (x[min(c, arrayLength(&x) - 1u)] * f32(3u));'); // each copy a block of its own
    expect(wgsl).toContain('out[min(6u, arrayLength(&out) - 1u)] = acc[6u];'); // steps of 2: 0, 2, 4, 6
    expect(wgsl).toContain('for (var j: u32 = 0u; (j < 3u); j += 1u)'); // a body that breaks stays a loop
    expect(wgsl).toContain('acc[min(u.n, 7u)]'); // an index known only at run time is clamped
    expect(wgsl).not.toMatch(/for \(var [ij]: u32 = 0u; \([ij] < [24]u\)/);
    expect(() => translate(kernel('out: Out<f32>', 'if (out[0] > 0) { const a = localF32(4); }'))).toThrow(/local arrays with const at the top/);
  });

  it('names the line of the error', () => {
    const src = kernel('out: Out<f32>', `out[0] = 1;\n  out[1] = nope;`);
    // HEADER is line 1, the JSDoc line 2, the signature line 3, the body starts at line 4
    expect(() => translate(src)).toThrow(/ops\/case\.ts:5:/);
  });
});

// What the tensor-core kernels need (issue 18): f16 workgroup tiles, the subgroup's index, and subgroup
// matrices as intrinsics (load from workgroup memory, multiply-add, store). Lavapipe has no subgroup
// matrices, so only the translation and printing are checked here; the GPU machine runs the kernel
// against its float64 reference (benchmarks/tensor_check.ts, `gpu-machine.sh kernels`).
describe('subgroup matrices and f16 in the kernel language', () => {
  const MATRIX_HEADER = `import { type Invocation, type Out, type f32, type u32, type MatrixLeft, type MatrixRight, type MatrixResult, f16, f32, sharedF16, sharedF32, matrixZero, matrixLoadLeft, matrixLoadRight, matrixMultiplyAdd, matrixStore, workgroupBarrier } from '../compiler/kernel/dsl.js';\n`;
  const translateM = (body: string) => {
    const project = new Project({ useInMemoryFileSystem: true });
    return translateSourceFile(project.createSourceFile(path.join(root, 'ops/case.ts'), MATRIX_HEADER + body), root);
  };
  const tile = `
      const a = sharedF16(512);
      const o = sharedF32(256);
      a[id.local] = f16(f32(id.local) * 0.5);
      workgroupBarrier();
      let c: MatrixResult = matrixZero();
      const l: MatrixLeft = matrixLoadLeft(a, 0, 16);
      const r: MatrixRight = matrixLoadRight(a, id.subgroupId * 16, 16);
      c = matrixMultiplyAdd(l, r, c);
      matrixStore(o, 0, c, 16);
      workgroupBarrier();
      out[id.local] = o[id.local];`;

  it('prints matrices, f16 tiles and the subgroup index as WGSL, and marks the kernel as having no plain-JavaScript run', () => {
    const [k] = translateM(kernel('out: Out<f32>', tile));
    const wgsl = toWGSL(k!);
    for (const line of ['enable f16;', 'enable subgroups;', 'enable chromium_experimental_subgroup_matrix;', 'diagnostic(off, chromium.subgroup_matrix_uniformity);',
      'var<workgroup> a: array<f16, 512>;', 'a[lid.x] = f16((f32(lid.x) * 0.5f));',
      'var c: subgroup_matrix_result<f32, 16, 16> = subgroup_matrix_result<f32, 16, 16>();',
      'let l: subgroup_matrix_left<f16, 16, 16> = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, 0u, 16u);',
      'subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&a, (sgid * 16u), 16u);',
      'c = subgroupMatrixMultiplyAccumulate(l, r, c);', 'subgroupMatrixStore<row_major>(&o, 0u, c, 16u);', '@builtin(subgroup_id) sgid: u32',
      'out[min(lid.x, arrayLength(&out) - 1u)] = o[lid.x];'])
      expect(wgsl).toContain(line);
    expect(k!.noPlainJs).toMatch(/subgroup matrices/);
    // the directives come before any declaration
    expect(wgsl.indexOf('diagnostic(')).toBeLessThan(wgsl.indexOf('@group'));
    // a kernel without matrices is unchanged: no f16, no matrix extension, and it runs as JavaScript
    const [plain] = translate(kernel('out: Out<f32>', 'out[id.local] = 1;'));
    expect(toWGSL(plain!)).not.toMatch(/enable f16|subgroup_matrix/);
    expect(plain!.noPlainJs).toBeUndefined();
  });

  it('rejects matrices from anything but workgroup arrays, and mismatched operands', () => {
    expect(() => translateM(kernel('x: Out<f32>, out: Out<f32>', 'const l: MatrixLeft = matrixLoadLeft(x, 0, 16);'))).toThrow(/'x' must be a workgroup array/);
    expect(() => translateM(kernel('out: Out<f32>', `const a = sharedF16(256);\n  let c: MatrixResult = matrixZero();\n  const r: MatrixRight = matrixLoadRight(a, 0, 16);\n  c = matrixMultiplyAdd(r, r, c);`))).toThrow(/matrixMultiplyAdd: expected matLeft but found matRight/);
    expect(() => translateM(kernel('out: Out<f32>', 'let c: MatrixResult = matrixZero();\n  out[0] = c;'))).toThrow(/expected f32 but found matResult/);
  });

  it('has no plain-JavaScript run for matrices, and rounds f16 as WGSL does', async () => {
    const dsl = await import('../compiler/kernel/dsl.js');
    expect(() => dsl.matrixZero()).toThrow(/no plain-JavaScript run; its op's float64 reference is its reference/);
    // round to nearest, ties to even; the largest half; overflow to infinity; subnormals; NaN stays NaN
    expect([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -10 + 2 ** -12, 65504, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, -0.1].map(dsl.f16))
      .toEqual([1, 1 + 2 ** -9, 1 + 2 ** -10, 65504, Infinity, 2 ** -24, 0, 2 ** -24, -0.0999755859375]);
    expect(dsl.f16(NaN)).toBeNaN();
  });
});

describe('which kernel a prefill matrix product takes', () => {
  it('the tensor cores where the target has subgroup matrices and the weights are not f32, by the matrix and the device alone', async () => {
    const { GraphBuilder } = await import('../compiler/ir/graph.js');
    const { lowerGraph } = await import('../compiler/plan.js');
    const { target } = await import('../compiler/target.js');
    const { kernels, fragments } = await import('../ops/kernels.gen.js');
    const { ops } = await import('../ops/index.js');
    const plan = (dtype: 'f16' | 'q8_0' | 'f32', T: number, matrices: boolean) => {
      const g = new GraphBuilder(), o = ops(g);
      const graph = g.finish({ out: o.matvec(o.weight('w', [128, 256], dtype), o.weight('x', [T, 256])) });
      return lowerGraph(graph, target({ maxBindingBytes: 1 << 27, matrices }), { kernels, fragments }).dispatches.map((d) => [d.kernel, d.uniforms.shape, d.groups]);
    };
    // 128 rows are 2 tiles of 64; 100 positions 2 tiles of 64 (big), 16 positions one of 16 (small)
    expect(plan('f16', 100, true)).toEqual([['matmulTensorKernel', 1, 4]]);
    expect(plan('q8_0', 16, true)).toEqual([['matmulTensorKernel', 0, 2]]);
    expect(plan('f32', 100, true)).toEqual([['matmulKernel', undefined, 4]]); // f32 models keep the exact f32 path
    expect(plan('f16', 100, false)).toEqual([['matmulKernel', undefined, 4]]);
    expect(plan('f16', 16, false)).toEqual([['matmulSmallKernel', undefined, 4]]);
  });

  it("a gradient's transposed product: the tensor cores likewise", async () => {
    const { GraphBuilder } = await import('../compiler/ir/graph.js');
    const { lowerGraph } = await import('../compiler/plan.js');
    const { target } = await import('../compiler/target.js');
    const { kernels, fragments } = await import('../ops/kernels.gen.js');
    const { ops } = await import('../ops/index.js');
    const { matvecT } = await import('../ops/matvec_t.js');
    const plan = (dtype: 'f16' | 'q4_0' | 'f32', T: number, matrices: boolean) => {
      const g = new GraphBuilder(), o = ops(g);
      const graph = g.finish({ out: g.apply(matvecT, [o.weight('w', [96, 256], dtype), o.weight('dy', [T, 96])], {}) });
      return lowerGraph(graph, target({ maxBindingBytes: 1 << 27, matrices, transposedSplit: { groups: 1, minRows: 1 } }), { kernels, fragments }).dispatches.map((d) => [d.kernel, d.uniforms.shape, d.groups]);
    };
    // 256 columns are 2 tiles of 128; 100 positions 2 tiles of 64, 16 positions one of 16 (32 in the f32 kernel)
    expect(plan('f16', 100, true)).toEqual([['matmulTTensorKernel', 1, 4]]);
    expect(plan('q4_0', 16, true)).toEqual([['matmulTTensorKernel', 0, 2]]);
    expect(plan('f32', 100, true)).toEqual([['matmulTKernel', undefined, 8]]); // f32 models keep the exact f32 path
    expect(plan('f16', 100, false)).toEqual([['matmulTKernel', undefined, 8]]);
    expect(plan('f16', 16, false)).toEqual([['matmulTKernel', undefined, 2]]);
  });
});
