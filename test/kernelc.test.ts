// The TypeScript -> kernel IR translator: what it accepts, and the sentence it fails with otherwise.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { Project } from 'ts-morph';
import { translateSourceFile } from '../compiler/kernelc/translate.js';
import { toWGSL } from '../compiler/kernel/wgsl.js';

const root = path.resolve(import.meta.dirname, '..');
const HEADER = `import { type Invocation, type In, type Out, type f32, type u32, type i32, f32, u32, idiv, sharedF32, workgroupBarrier } from '../compiler/kernel/dsl.js';\n`;

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
    expect(wgsl).toContain('out[lid.x] += s_bump2;');
    expect(() => translate(`/** @inline */\nexport function bad(a: Out<f32>): void {\n  return;\n}\n` + kernel('out: Out<f32>', 'bad(out);'))).toThrow(/must not return early/);
    expect(() => translate(`/** @inline */\nexport function two(x: f32): f32 {\n  return x;\n}\n` + kernel('out: Out<f32>', 'two(1);'))).toThrow(/only @inline helpers returning void/);
  });

  it('names the line of the error', () => {
    const src = kernel('out: Out<f32>', `out[0] = 1;\n  out[1] = nope;`);
    // HEADER is line 1, the JSDoc line 2, the signature line 3, the body starts at line 4
    expect(() => translate(src)).toThrow(/ops\/case\.ts:5:/);
  });
});
