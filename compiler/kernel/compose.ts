// Kernel composition: fill a kernel's epilogue hole with fragments, in order, giving a new kernel IR.
// (v, i) -> f1(v, i) -> f2(f1(v, i), i) -> ...; each fragment's own parameters join the kernel's,
// renamed so two fragments of the same kind do not collide. No WGSL is written here.
import type { Expr, FragmentIR, KernelIR, Param, Stmt } from './ir.js';


export function withEpilogues(k: KernelIR, frags: readonly FragmentIR[]): KernelIR {
  if (frags.length === 0) return k;
  const taken = new Set(k.params.map((p) => p.name).concat(k.shared.map((s) => s.name)));
  const params: Param[] = [...k.params];
  const renames = frags.map((f, j) => {
    const map = new Map<string, string>();
    for (const p of f.params) {
      let name = `${p.name}_e${j}`;
      while (taken.has(name)) name += '_';
      taken.add(name);
      map.set(p.name, name);
      params.push({ ...p, name });
    }
    return map;
  });
  const inst = (e: Expr, j: number, args: Expr[]): Expr => {
    const m = renames[j]!;
    switch (e.k) {
      case 'arg': return args[e.n]!;
      case 'index': return { ...e, array: m.get(e.array) ?? e.array, index: inst(e.index, j, args) };
      case 'len': return { ...e, array: m.get(e.array) ?? e.array };
      case 'uniform': return { ...e, name: m.get(e.name) ?? e.name };
      case 'bin': return { ...e, a: inst(e.a, j, args), b: inst(e.b, j, args) };
      case 'un': return { ...e, a: inst(e.a, j, args) };
      case 'call': return { ...e, args: e.args.map((a) => inst(a, j, args)) };
      case 'select': return { ...e, cond: inst(e.cond, j, args), a: inst(e.a, j, args), b: inst(e.b, j, args) };
      case 'hole': return { ...e, args: e.args.map((a) => inst(a, j, args)) };
      default: return e;
    }
  };
  const fill = (e: Expr): Expr => {
    switch (e.k) {
      case 'hole': {
        const [v0, i] = e.args.map(fill) as [Expr, Expr];
        return frags.reduce<Expr>((v, _, j) => inst(frags[j]!.body, j, [v, i]), v0);
      }
      case 'index': return { ...e, index: fill(e.index) };
      case 'bin': return { ...e, a: fill(e.a), b: fill(e.b) };
      case 'un': return { ...e, a: fill(e.a) };
      case 'call': return { ...e, args: e.args.map(fill) };
      case 'select': return { ...e, cond: fill(e.cond), a: fill(e.a), b: fill(e.b) };
      default: return e;
    }
  };
  const stmt = (s: Stmt): Stmt => {
    switch (s.k) {
      case 'let': return { ...s, init: s.init && fill(s.init) };
      case 'assign': return { ...s, target: fill(s.target) as typeof s.target, value: fill(s.value) };
      case 'if': return { ...s, cond: fill(s.cond), then: s.then.map(stmt), else: s.else.map(stmt) };
      case 'for': return { ...s, init: s.init && stmt(s.init), cond: s.cond && fill(s.cond), update: s.update && stmt(s.update), body: s.body.map(stmt) };
      case 'while': return { ...s, cond: fill(s.cond), body: s.body.map(stmt) };
      default: return s;
    }
  };
  return {
    ...k,
    name: [k.name, ...frags.map((f) => f.name)].join('+'),
    source: [k.source, ...frags.map((f) => f.source)].join(' + '),
    params,
    body: k.body.map(stmt),
  };
}
