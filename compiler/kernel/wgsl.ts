// Kernel IR -> WGSL. The only place in tapir that writes WGSL text.
import { type Expr, type KernelIR, type Stmt, specParams, storageParams, uniformParams } from './ir.js';
import type { Target as FullTarget } from '../target.js';
import { intrinsicOf, usesMatrices } from './intrinsics.js';
import { someInStmts } from './visit.js';
import { type Access, workgroupAccesses } from './bounds.js';

// WGSL keywords and reserved words a TypeScript identifier could collide with; such names get a `_`.
const RESERVED = new Set(
  ('alias array atomic bool break case const continue default discard else enable f16 f32 fn for if i32 let loop ' +
    'mat2x2 override ptr return sampler struct switch true false u32 var vec2 vec3 vec4 while workgroup uniform ' +
    'storage function private read write read_write texture_2d target module filter active as async attribute ' +
    'await become cast catch class co_await column compile const_assert do enum export extends extern external ' +
    'final finally friend from handle import in inline instanceof interface layout macro match meta mutable ' +
    'namespace new nil noexcept noinline null of package precision premerge priv protected public quat readonly ' +
    'ref regardless register reinterpret_cast require resource restrict self set shared static static_cast std ' +
    'subroutine super template this throw trait try type typedef typeid typename typeof union unless unsigned ' +
    'use using varying virtual volatile wgsl where with writeonly yield diagnostic requires u lid wid nwg sgsize main'
  ).split(' '),
);
export const wgslName = (n: string) => (RESERVED.has(n) || n.startsWith('__') ? `${n}_` : n);

/** the WGSL spelling of a value type */
const WGSL_TYPES: Record<string, string> = {
  u32x4: 'vec4<u32>', f32x4: 'vec4<f32>',
  matLeft: 'subgroup_matrix_left<f16, 16, 16>', matRight: 'subgroup_matrix_right<f16, 16, 16>', matResult: 'subgroup_matrix_result<f32, 16, 16>',
};
const wgslType = (t: string) => WGSL_TYPES[t] ?? t;

function lit(e: Extract<Expr, { k: 'lit' }>): string {
  const t = e.text;
  switch (e.ty) {
    case 'u32': return `${t}u`;
    case 'i32': return `${t}i`;
    case 'f32': return /[.eE]/.test(t) ? `${t}f` : `${t}.0f`;
    case 'f16': return /[.eE]/.test(t) ? `${t}h` : `${t}.0h`;
    case 'bool': return t;
    default: return t;
  }
}

/** What WGSL needs of the target: with subgroups (WGSL `enable subgroups`), or each invocation a subgroup of one. */
type Target = Pick<FullTarget, 'subgroups'>;
const WITH_SUBGROUPS: Target = { subgroups: true };

/** What printing a kernel's expressions needs: the kernel, the target, and which arrays are storage
 *  (every access clamped to the array's length) or of a fixed size, workgroup memory and local arrays
 *  (clamped to their size unless compiler/kernel/bounds.ts shows the access in bounds). */
interface Printing { readonly k: KernelIR; readonly t: Target; readonly storage: ReadonlySet<string>; readonly shared: ReadonlyMap<string, number>; readonly accesses: ReadonlyMap<Expr, Access> }

function printing(k: KernelIR, t: Target = WITH_SUBGROUPS): Printing {
  return { k, t, storage: new Set(storageParams(k).map((p) => p.name)), shared: new Map([...k.shared, ...(k.locals ?? [])].map((s) => [s.name, s.size])), accesses: workgroupAccesses(k) };
}

/** An array element, guarded: no index the printer writes reaches outside its array. */
function element(e: Extract<Expr, { k: 'index' }>, p: Printing): string {
  const name = wgslName(e.array), i = expr(e.index, p), u = e.index.ty === 'u32' ? i : `u32(${i})`;
  if (p.storage.has(e.array)) return `${name}[min(${u}, arrayLength(&${name}) - 1u)]`;
  const size = p.shared.get(e.array);
  if (size === undefined) throw new Error(`internal: ${p.k.name} indexes '${e.array}', which is no storage, workgroup or local array`);
  return (p.accesses.get(e)?.span.hi ?? Infinity) < size ? `${name}[${i}]` : `${name}[min(${u}, ${size - 1}u)]`;
}

export function expr(e: Expr, p: Printing): string {
  const { k, t } = p;
  switch (e.k) {
    case 'lit': return lit(e);
    case 'var': return wgslName(e.name);
    case 'uniform': return `u.${wgslName(e.name)}`;
    case 'spec': return wgslName(e.name);
    case 'builtin':
      if (e.name === 'local') return 'lid.x';
      if (e.name === 'size') return `${k.workgroupSize}u`;
      if (e.name === 'subgroupSize') return t.subgroups ? 'sgsize' : '1u';
      if (e.name === 'subgroupId') return t.subgroups ? 'sgid' : 'lid.x';
      if (e.name === 'group') return '(wid.x + wid.y * nwg.x)';
      return `((wid.x + wid.y * nwg.x) * ${k.workgroupSize}u + lid.x)`;
    case 'index': return element(e, p);
    case 'len': return `arrayLength(&${wgslName(e.array)})`;
    case 'bin': return `(${expr(e.a, p)} ${e.op} ${expr(e.b, p)})`;
    case 'un': return `(${e.op}${expr(e.a, p)})`;
    case 'call': {
      const args = e.args.map((a) => expr(a, p));
      const lanes = intrinsicOf(e.fn)?.lanes, m = p.accesses.get(e);
      if (lanes && (m?.span.hi ?? Infinity) >= lanes) args[1] = `min(${args[1]}, ${lanes - 1}u)`;
      // a subgroup matrix is loaded or stored whole: it must be shown inside its workgroup array
      if (m && m.array && m.span.hi >= (p.shared.get(m.array) ?? 0))
        throw new Error(`internal: ${k.name}: ${e.fn} on '${m.array}' is not shown inside its ${p.shared.get(m.array)} elements (its last element may be ${m.span.hi}): compiler/kernel/bounds.ts`);
      // an intrinsic spells itself; WGSL builtins (sqrt, max, conversions) are written as called
      return intrinsicOf(e.fn)?.wgsl(args, t) ?? `${e.fn}(${args.join(', ')})`;
    }
    case 'select': return `select(${expr(e.b, p)}, ${expr(e.a, p)}, ${expr(e.cond, p)})`;
    case 'hole': return expr(e.args[0]!, p);
    case 'member': return `${expr(e.a, p)}.${e.field}`;
    case 'ref': return `&${wgslName(e.array)}`;
    case 'arg': throw new Error('internal: a fragment argument outside a fragment');
  }
}

function stmt(s: Stmt, p: Printing, ind: string): string {
  const block = (b: Stmt[]) => b.map((x) => stmt(x, p, ind + '  ')).join('');
  const ex = (e: Expr) => expr(e, p);
  switch (s.k) {
    case 'let':
      return `${ind}${s.mutable ? 'var' : 'let'} ${wgslName(s.name)}: ${wgslType(s.ty)}${s.init ? ` = ${ex(s.init)}` : ''};\n`;
    case 'assign': return `${ind}${ex(s.target)} ${s.op} ${ex(s.value)};\n`;
    case 'if':
      // (an unrolled loop's copy: a block of its own, compiler/kernel/unroll.ts)
      if (s.cond.k === 'lit' && s.cond.text === 'true' && !s.else.length) return `${ind}{\n${block(s.then)}${ind}}\n`;
      return `${ind}if (${ex(s.cond)}) {\n${block(s.then)}${ind}}${s.else.length ? ` else {\n${block(s.else)}${ind}}` : ''}\n`;
    case 'for': {
      const init = s.init ? stmt(s.init, p, '').trim().replace(/;$/, '') : '';
      const upd = s.update ? stmt(s.update, p, '').trim().replace(/;$/, '') : '';
      return `${ind}for (${init}; ${s.cond ? ex(s.cond) : ''}; ${upd}) {\n${block(s.body)}${ind}}\n`;
    }
    case 'while': return `${ind}while (${ex(s.cond)}) {\n${block(s.body)}${ind}}\n`;
    case 'break': return `${ind}break;\n`;
    case 'continue': return `${ind}continue;\n`;
    case 'return': return `${ind}return;\n`;
    case 'barrier': return `${ind}${s.scope}Barrier();\n`;
    case 'call': return `${ind}${ex(s.call)};\n`;
  }
}

// WGSL written once per kernel object and target kind (kernel IR is never changed once made)
const written = new WeakMap<KernelIR, Map<boolean, string>>();

/** A complete WGSL module for one kernel: bindings in parameter order, then the uniform struct. */
export function toWGSL(k: KernelIR, t: Target = WITH_SUBGROUPS): string {
  let byTarget = written.get(k);
  if (!byTarget) written.set(k, (byTarget = new Map()));
  let code = byTarget.get(t.subgroups);
  if (code === undefined) byTarget.set(t.subgroups, (code = writeWGSL(k, t)));
  return code;
}

function writeWGSL(k: KernelIR, t: Target): string {
  const sg = t.subgroups && usesSubgroups(k);
  const sgid = t.subgroups && someInStmts(k.body, (e) => e.k === 'builtin' && e.name === 'subgroupId');
  const matrices = usesMatrices(k);
  // subgroup matrices are held by subgroups: a device without subgroups never gets such a kernel
  if (matrices && !t.subgroups) throw new Error(`internal: ${k.name} multiplies subgroup matrices, for a target without subgroups`);
  const pr = printing(k, t);
  const out: string[] = [`// ${k.name} — generated by tapir from ${k.source}`];
  // directives come before declarations (a comment may precede them)
  if (matrices || k.shared.some((s) => s.elem === 'f16') || someInStmts(k.body, (e) => e.ty === 'f16')) out.push('enable f16;');
  if (sg || sgid) out.push('enable subgroups;');
  if (matrices) {
    out.push('enable chromium_experimental_subgroup_matrix;');
    // offsets derived from the subgroup's index are uniform within the subgroup, which WGSL cannot see
    out.push('diagnostic(off, chromium.subgroup_matrix_uniformity);');
  }
  const storage = storageParams(k);
  storage.forEach((p, i) => {
    const access = p.kind === 'in' ? 'read' : 'read_write';
    out.push(`@group(0) @binding(${i}) var<storage, ${access}> ${wgslName(p.name)}: array<${wgslType(p.elem)}>;`);
  });
  for (const p of specParams(k)) out.push(`override ${wgslName(p.name)}: ${p.ty};`);
  const uni = uniformParams(k);
  if (uni.length) {
    out.push(`struct Params {\n${uni.map((p) => `  ${wgslName(p.name)}: ${p.ty},`).join('\n')}\n}`);
    out.push(`@group(0) @binding(${storage.length}) var<uniform> u: Params;`);
  }
  for (const s of k.shared) out.push(`var<workgroup> ${wgslName(s.name)}: array<${s.elem}, ${s.size}>;`);
  out.push(
    `@compute @workgroup_size(${k.workgroupSize})\n` +
      `fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u${sg ? ', @builtin(subgroup_size) sgsize: u32' : ''}${sgid ? ', @builtin(subgroup_id) sgid: u32' : ''}) {\n` +
      (k.locals ?? []).map((l) => `  var ${wgslName(l.name)}: array<${l.elem}, ${l.size}>;\n`).join('') +
      k.body.map((s) => stmt(s, pr, '  ')).join('') +
      `}`,
  );
  return out.join('\n') + '\n';
}

/** Whether a kernel reads its subgroup size or sums over subgroups (then the module enables them). */
export const usesSubgroups = (k: KernelIR) =>
  someInStmts(k.body, (e) => (e.k === 'call' && intrinsicOf(e.fn)?.subgroup === true) || (e.k === 'builtin' && e.name === 'subgroupSize'));

/** Bytes of the uniform buffer a kernel needs (every scalar is 4 bytes; WGSL wants a multiple of 16). */
export const uniformBytes = (k: KernelIR) => Math.max(16, Math.ceil((uniformParams(k).length * 4) / 16) * 16);
