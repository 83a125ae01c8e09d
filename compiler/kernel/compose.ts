// Kernel composition: fill a kernel's epilogue holes with fragments, in order, giving a new kernel IR.
// (v, i) -> f1(v, i) -> f2(f1(v, i), i) -> ...; each fragment's own parameters join the kernel's,
// renamed so two fragments of the same kind do not collide. A fragment that stores (a tap) needs the
// value it sees in a variable: the statement holding the hole is preceded by `let ep_j = v; t[i] = ep_j;`.
// No WGSL is written here.
import { mapExpr } from './visit.js';
import type { Expr, FragmentIR, KernelIR, Param, Stmt } from './ir.js';

/** A fragment and the hole it fills ('epilogue' unless the kernel names others). */
export interface FragmentUse { frag: FragmentIR; hole?: string }

// Compositions made once per (kernel, fragments, holes): kernels and fragments are the op set's
// constants, so every plan variant gets the same composed object, and what is derived from it (its
// WGSL, its pipeline) is found again by identity.
const made = new WeakMap<KernelIR, Map<string, KernelIR>>();
const fragIds = new WeakMap<FragmentIR, number>();
const fragId = (f: FragmentIR) => { let id = fragIds.get(f); if (id === undefined) fragIds.set(f, (id = nextFragId++)); return id; };
let nextFragId = 0;

export function withEpilogues(k: KernelIR, fragsIn: readonly (FragmentIR | FragmentUse)[]): KernelIR {
  const uses: FragmentUse[] = fragsIn.map((f) => ('frag' in f ? f : { frag: f }));
  if (uses.length === 0) return k;
  const key = uses.map((u) => `${fragId(u.frag)}@${u.hole ?? 'epilogue'}`).join(' ');
  let byKey = made.get(k);
  if (!byKey) made.set(k, (byKey = new Map()));
  let out = byKey.get(key);
  if (!out) byKey.set(key, (out = compose(k, uses)));
  return out;
}

function compose(k: KernelIR, uses: readonly FragmentUse[]): KernelIR {
  const frags = uses.map((u) => u.frag);
  const holeOf = (j: number) => uses[j]!.hole ?? 'epilogue';
  const taken = new Set([...k.params, ...k.shared, ...(k.locals ?? [])].map((p) => p.name));
  const fresh = (base: string) => { let name = base; while (taken.has(name)) name += '_'; taken.add(name); return name; };
  const params: Param[] = [...k.params];
  const renames = frags.map((f, j) => {
    const map = new Map<string, string>();
    for (const p of f.params) {
      const name = fresh(`${p.name}_e${j}`);
      map.set(p.name, name);
      params.push({ ...p, name });
    }
    return map;
  });
  const inst = (e: Expr, j: number, args: Expr[]): Expr => {
    const m = renames[j]!;
    return mapExpr(e, (x) => {
      switch (x.k) {
        case 'arg': return args[x.n]!;
        case 'index': case 'len': return { ...x, array: m.get(x.array) ?? x.array };
        case 'uniform': return { ...x, name: m.get(x.name) ?? x.name };
        default: return x;
      }
    });
  };
  // statements to place before the one being rewritten (the stores of tap fragments)
  let before: Stmt[] = [];
  // bottom-up, so a hole's own arguments are filled (and their stores placed) before it is
  const fill = (e: Expr): Expr => mapExpr(e, (x) => {
    if (x.k !== 'hole') return x;
    const [v0, i] = x.args as [Expr, Expr];
    let v = v0;
    frags.forEach((f, j) => {
      if (holeOf(j) !== x.name) return;
      if (f.stores?.length) {
        const name = fresh(`ep_${j}`);
        before.push({ k: 'let', name, ty: 'f32', init: v, mutable: false });
        v = { k: 'var', name, ty: 'f32' };
        for (const s of f.stores)
          before.push({ k: 'assign', op: '=', target: { k: 'index', array: renames[j]!.get(s.array)!, index: inst(s.index, j, [v, i]), ty: 'f32' }, value: inst(s.value, j, [v, i]) });
      }
      v = inst(f.body, j, [v, i]);
    });
    return v;
  });
  const withBefore = (make: () => Stmt): Stmt[] => {
    const saved = before;
    before = [];
    const s = make();
    const out = [...before, s];
    before = saved;
    return out;
  };
  const block = (b: Stmt[]) => b.flatMap(stmt);
  const stmt = (s: Stmt): Stmt[] => {
    switch (s.k) {
      case 'let': return withBefore(() => ({ ...s, init: s.init && fill(s.init) }));
      case 'assign': return withBefore(() => ({ ...s, target: fill(s.target) as typeof s.target, value: fill(s.value) }));
      case 'if': return withBefore(() => ({ ...s, cond: fill(s.cond), then: block(s.then), else: block(s.else) }));
      case 'for': {
        const header = (h: Stmt | null) => {
          const out = h && stmt(h);
          if (out && out.length > 1) throw new Error(`internal: a storing epilogue in a for-loop header of ${k.name}`);
          return out ? out[0]! : null;
        };
        return [{ ...s, init: header(s.init), cond: s.cond && fill(s.cond), update: header(s.update), body: block(s.body) }];
      }
      case 'while': return [{ ...s, cond: fill(s.cond), body: block(s.body) }];
      default: return [s];
    }
  };
  return {
    ...k,
    name: [k.name, ...uses.map((u) => (u.hole && u.hole !== 'epilogue' ? `${u.hole}:${u.frag.name}` : u.frag.name))].join('+'),
    source: [k.source, ...frags.map((f) => f.source)].join(' + '),
    params,
    body: block(k.body),
  };
}
