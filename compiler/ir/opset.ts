// An op set: the ops a graph may use, the rewrite rules that fuse them and the kernels their
// lowerings dispatch. The compiler takes one as an argument (compile, parseGraph) and knows nothing
// of what is in it; ops/index.ts builds tapir's.
import type { Op } from './op.js';
import type { Rule } from '../rewrite.js';
import type { FragmentIR, KernelIR } from '../kernel/ir.js';

export interface OpSet {
  /** by name: the IR text names ops */
  readonly ops: ReadonlyMap<string, Op>;
  /** fusion rules, tried in order on every node */
  readonly rules: readonly Rule[];
  /** the kernels and epilogue fragments lowerings dispatch (generated from the op files) */
  readonly kernels: Readonly<Record<string, KernelIR>>;
  readonly fragments: Readonly<Record<string, FragmentIR>>;
}

export function opSet(ops: readonly Op[], rules: readonly Rule[], kernels: OpSet['kernels'], fragments: OpSet['fragments']): OpSet {
  const byName = new Map<string, Op>();
  for (const o of ops) {
    if (byName.has(o.name)) throw new Error(`internal: two ops named '${o.name}'`);
    byName.set(o.name, o);
  }
  const names = new Set<string>();
  for (const r of rules) {
    if (names.has(r.name)) throw new Error(`internal: two rules named '${r.name}'`);
    names.add(r.name);
  }
  return Object.freeze({ ops: byName, rules: Object.freeze([...rules]), kernels, fragments });
}
