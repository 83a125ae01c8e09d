// Hook selectors: `blocks.*.hook_resid_post`, `blocks.3-7.attn.hook_z`, `blocks.2.attn.hook_z[head=5]`,
// `blocks.4.hook_resid_pre[pos=-1]`, several separated by commas. Parsed with an ohm-js grammar and
// matched against the hook names a graph has; a selector that matches nothing is an error that lists
// the nearest real names.
import * as ohm from 'ohm-js';
import { UsageError } from './errors.js';

/** The hook names of a Llama-style model, for editors (TransformerLens's names). */
export type LayerHook =
  | 'hook_resid_pre' | 'hook_resid_mid' | 'hook_resid_post' | 'hook_attn_out' | 'hook_mlp_out'
  | 'attn.hook_q' | 'attn.hook_k' | 'attn.hook_v' | 'attn.hook_rot_q' | 'attn.hook_rot_k' | 'attn.hook_z'
  | 'mlp.hook_pre' | 'mlp.hook_pre_linear' | 'mlp.hook_post' | 'attn.hook_attn_scores' | 'attn.hook_pattern'
  | 'ln1.hook_scale' | 'ln1.hook_normalized' | 'ln2.hook_scale' | 'ln2.hook_normalized';
export type HookName = 'hook_embed' | 'hook_logits' | 'ln_final.hook_scale' | 'ln_final.hook_normalized' | `blocks.${number}.${LayerHook}`;

const grammar = ohm.grammar(String.raw`
HookSelector {
  List = NonemptyListOf<Sel, ",">
  Sel = path filter*
  path = seg ("." seg)*
  seg = "*" -- any
      | digit+ "-" digit+ -- range
      | (alnum | "_")+ -- word
  filter = "[" key "=" value "]"
  key = (alnum | "_")+
  value = (~"]" ~"," any)*
}`);

/** TransformerLens's short names (utils.get_act_name) and the hook each names at every layer. */
const SHORT: Readonly<Record<string, string>> = {
  resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post', attn_out: 'hook_attn_out', mlp_out: 'hook_mlp_out',
  q: 'attn.hook_q', k: 'attn.hook_k', v: 'attn.hook_v', z: 'attn.hook_z', rot_q: 'attn.hook_rot_q', rot_k: 'attn.hook_rot_k',
  pattern: 'attn.hook_pattern', attn: 'attn.hook_pattern', attn_scores: 'attn.hook_attn_scores', scores: 'attn.hook_attn_scores',
  pre: 'mlp.hook_pre', pre_linear: 'mlp.hook_pre_linear', post: 'mlp.hook_post', embed: 'hook_embed', logits: 'hook_logits',
};

/** A hook's full name from TransformerLens's ways of naming it: a full name as it is; a short name
 *  (`resid_post`, `z`, `embed`) or a name within a block (`hook_resid_post`, `attn.hook_z`) with its layer
 *  (TL's `cache["resid_post", 5]`). */
export function hookName(name: string, layer?: number): string {
  if (layer === undefined) return name.includes('.') || name.startsWith('hook_') ? name : SHORT[name] ?? name;
  const within = SHORT[name] ?? name;
  return within.startsWith('blocks.') ? within : `blocks.${layer}.${within}`;
}

/** What a selection may be filtered by, as its help says it. */
const FILTERS: Readonly<Record<string, string>> = { pos: 'a position (negative counts from the end)', head: 'an attention head' };

export interface HookSelection {
  hook: string;
  /** one attention head of a [head, d_head] hook */
  head?: number;
  /** one position (negative counts from the end) */
  pos?: number;
  /** how the selection is named in a cache: the hook, with its filters */
  key: string;
}

interface Seg { any?: true; lo?: number; hi?: number; word?: string }

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length]!;
}

export function nearest(name: string, names: readonly string[], n = 3): string[] {
  return [...names].sort((a, b) => editDistance(name, a) - editDistance(name, b) || a.localeCompare(b)).slice(0, n);
}

type Sel = { text: string; segs: Seg[]; filters: Record<string, number>; source: string };
// one set of semantics for every selector (making them per call cost milliseconds a hooked run)
const semantics = grammar.createSemantics();
semantics.addOperation<Sel[] | Sel>('sels', {
  List(list) { return list.asIteration().children.map((c: ohm.Node) => c['sels']() as Sel); },
  Sel(path, filters) {
    const all = [path.children[0]!, ...path.children[2]!.children];
    const f: Record<string, number> = {};
    for (const x of filters.children) {
      const key = x.children[1]!.sourceString, value = x.children[3]!.sourceString.trim();
      if (!FILTERS[key]) throw new UsageError(`'${this.sourceString}' has the filter [${key}=...], which hooks do not take: ${Object.entries(FILTERS).map(([k, m]) => `[${k}=N] selects ${m}`).join(', ')}`);
      if (!/^-?\d+$/.test(value)) throw new UsageError(`'${this.sourceString}': [${key}=${value}] needs a whole number, e.g. [${key}=${key === 'pos' ? '-1' : '0'}]`);
      f[key] = Number(value);
    }
    return { text: path.sourceString, segs: all.map((n) => n['seg']() as Seg), filters: f, source: this.sourceString };
  },
});
semantics.addOperation<Seg>('seg', {
  seg_any(_s) { return { any: true }; },
  seg_range(a, _d, b) { return { lo: Number(a.sourceString), hi: Number(b.sourceString) }; },
  seg_word(w) { return { word: w.sourceString }; },
});
/** selectors parsed before (a workload asks for the same hooks call after call) */
const parsed = new Map<string, readonly Sel[]>();
const PARSED_KEPT = 256;

function parseSelector(selector: string): readonly Sel[] {
  let sels = parsed.get(selector);
  if (!sels) {
    const m = grammar.match(selector);
    if (m.failed()) throw new UsageError(`bad hook selector '${selector}': ${m.shortMessage}`);
    sels = semantics(m)['sels']() as Sel[];
    if (parsed.size >= PARSED_KEPT) parsed.delete(parsed.keys().next().value!);
    parsed.set(selector, sels);
  }
  return sels;
}

/** A graph's hook names, in order, one frozen array per hooks record: selections against it are kept
 *  (selectHooks), so a workload asking for the same hooks call after call matches them once. */
export function hookNamesOf(hooks: Readonly<Record<string, unknown>>): readonly string[] {
  let names = namesOf.get(hooks);
  if (!names) namesOf.set(hooks, (names = Object.freeze(Object.keys(hooks))));
  return names;
}
const namesOf = new WeakMap<object, readonly string[]>();
/** selections made, by the names array they were made against (matching a selector splits and compares
 *  every name: 16 selectors against the 1B shape's ~500 hooks took ~2 ms of a 12 ms lens on the H100) */
const selected = new WeakMap<readonly string[], Map<string, readonly HookSelection[]>>();

/** Expand a selector against the hook names a model has. */
export function selectHooks(selector: string, names: readonly string[]): HookSelection[] {
  let memo = selected.get(names);
  if (!memo) selected.set(names, (memo = new Map()));
  let sels = memo.get(selector);
  if (!sels) {
    sels = expandSelector(selector, names);
    if (memo.size >= PARSED_KEPT) memo.delete(memo.keys().next().value!);
    memo.set(selector, sels);
  }
  return sels.map((x) => ({ ...x })); // (callers own what they get)
}

function expandSelector(selector: string, names: readonly string[]): HookSelection[] {
  const sels = parseSelector(selector);
  const out: HookSelection[] = [];
  for (const s of sels) {
    // a short name alone ('resid_post') is that hook at every layer, as get_act_name would name each
    const short = s.segs.length === 1 && s.segs[0]!.word !== undefined && !names.includes(s.segs[0]!.word) ? SHORT[s.segs[0]!.word] : undefined;
    const segs: readonly Seg[] = !short ? s.segs : short.startsWith('hook_') && names.includes(short) ? [{ word: short }] : [{ word: 'blocks' }, { any: true }, ...short.split('.').map((word) => ({ word }))];
    const matches = names.filter((name) => {
      const parts = name.split('.');
      return parts.length === segs.length && parts.every((p, i) => {
        const g = segs[i]!;
        return g.any || (g.word !== undefined ? g.word === p : /^\d+$/.test(p) && Number(p) >= g.lo! && Number(p) <= g.hi!);
      });
    });
    if (!matches.length) {
      // a layer past the model's last: say so, not which names are nearest
      const layers = 1 + Math.max(-1, ...names.map((nm) => /^blocks\.(\d+)\./.exec(nm)).filter((x) => x).map((x) => Number(x![1])));
      const asked = segs[0]?.word === 'blocks' ? segs[1] : undefined;
      const top = asked?.hi ?? (asked?.word !== undefined && /^\d+$/.test(asked.word) ? Number(asked.word) : undefined);
      if (top !== undefined && layers > 0 && top >= layers)
        throw new UsageError(`'${s.text}': layer ${top} is out of range: the model has ${layers} layers, blocks.0 .. blocks.${layers - 1}`);
      const probe = s.text.replace(/\*/g, '0').replace(/(\d+)-\d+/g, '$1');
      throw new UsageError(`unknown hook '${s.text}'; the nearest hooks are ${nearest(probe, names).join(', ')} ('tapir hooks' lists them all)`);
    }
    for (const hook of matches) {
      const sel: HookSelection = { hook, key: hook + s.source.slice(s.text.length) };
      if (s.filters.head !== undefined) sel.head = s.filters.head;
      if (s.filters.pos !== undefined) sel.pos = s.filters.pos;
      out.push(sel);
    }
  }
  return out;
}
