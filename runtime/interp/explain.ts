// "Why did the model decide this?" for one next-token decision: the answer against an alternative,
// measured as their logit difference at the prompt's last position, and
//  - which words of the prompt drive it: occlusion (a word's tokens replaced by a baseline token, the
//    prompt re-run from that word on, reusing the cached prefix) and erasure (the word's embeddings
//    zeroed through hook_embed) side by side;
//  - where in the network: direct logit attribution per layer and head (final norm's scale frozen);
//  - whether to trust it: a deletion curve — occluding the k most important words must move the
//    decision more than occluding k random words (seeded draws).
import { CancelledError, UsageError } from '../../compiler/errors.js';
import { NormalRng } from '../synth/synth.js';
import type { Model } from '../model.js';
import { directLogitAttribution } from './dla.js';

export interface ExplainOptions {
  answer: number;
  /** default: the most likely other token */
  alternative?: number;
  /** the token occlusion puts in a word's place (default: the vocabulary's unknown token) */
  baseline?: number;
  /** random draws per k on the deletion curve (default 20) */
  draws?: number;
  seed?: number;
  /** as the work goes: its phase (occlusion, deletion curve, erasure), runs done and runs in it */
  onProgress?: (phase: string, done: number, total: number) => void;
  /** checked before each re-run: when aborted, explain stops with a CancelledError */
  stop?: { readonly aborted: boolean };
}

export interface WordAttribution {
  text: string;
  positions: number[];
  /** decision change when the word's tokens become the baseline token: m(prompt) − m(occluded) */
  occlusion: number;
  /** decision change when the word's embeddings are zeroed */
  erasure: number;
}

export interface Explanation {
  tokens: number[];
  pieces: string[];
  answer: { id: number; piece: string; probability: number; logit: number };
  alternative: { id: number; piece: string; probability: number; logit: number };
  /** the decision: answer's logit − alternative's */
  logitDiff: number;
  baseline: { id: number; piece: string };
  words: WordAttribution[];
  /** occlusion of each token alone (position 0, BOS, is never occluded) */
  tokenOcclusion: { position: number; piece: string; occlusion: number }[];
  /** direct logit attribution: embed, then blocks.L.attn / blocks.L.mlp; they sum to logitDiff */
  components: { name: string; value: number }[];
  /** [layer][head] */
  heads: number[][];
  finalScale: number;
  faithfulness: { k: number[]; top: number[]; random: number[]; draws: number; seed: number; topMean: number; randomMean: number; passes: boolean };
  sentences: string[];
}

const softmaxAt = (logits: Float32Array, id: number) => {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let s = 0;
  for (const v of logits) s += Math.exp(v - max);
  return Math.exp(logits[id]! - max) / s;
};

/** Tokens grouped back into words: a word starts at a token whose text starts with whitespace. */
export function wordsOf(pieces: readonly string[]): { text: string; positions: number[] }[] {
  const words: { text: string; positions: number[] }[] = [];
  pieces.forEach((p, i) => {
    if (i === 0) return; // BOS
    if (words.length === 0 || /^\s/.test(p)) words.push({ text: p, positions: [i] });
    else { const w = words[words.length - 1]!; w.text += p; w.positions.push(i); }
  });
  return words;
}

export async function explain(model: Model, tokens: number[], o: ExplainOptions): Promise<Explanation> {
  const tok = model.tokenizer, V = model.config.vocabSize;
  const pieceOf = (id: number) => new TextDecoder().decode(tok.tokenBytes(id, tok.vocab.eos)) || tok.piece(id); // (as after a word: its leading space kept)
  if (tokens.length < 2) throw new UsageError('the prompt is empty: explain needs at least one word before the decision');
  const inVocab = (id: number, what: string) => { if (!Number.isInteger(id) || id < 0 || id >= V) throw new UsageError(`${what} id ${id} is outside the vocabulary`); };
  inVocab(o.answer, 'answer');
  const baseline = o.baseline ?? tok.vocab.unk;
  inVocab(baseline, 'baseline');
  const pieces = tokens.map((t, i) => (i === 0 ? tok.piece(t) : pieceOf(t)));

  // the decision; the cache now holds the clean prompt
  await model.prefill(tokens, 'logits');
  const clean = await model.lastLogitsFrom(tokens, tokens.length - 1);
  let alternative = o.alternative;
  if (alternative === undefined) {
    alternative = -1;
    for (let v = 0; v < V; v++) if (v !== o.answer && (alternative < 0 || clean[v]! > clean[alternative]!)) alternative = v;
  }
  inVocab(alternative, 'alternative');
  if (alternative === o.answer) throw new UsageError('the answer and the alternative are the same token');
  const metric = (l: Float32Array) => l[o.answer]! - l[alternative!]!;
  const m0 = metric(clean);

  // every occluded prompt, run from its first occluded position: in descending order of that position,
  // each run's prefix is still the clean prompt's (earlier runs only wrote later positions)
  const words = wordsOf(pieces);
  const draws = o.draws ?? 20, seed = o.seed ?? 0, rng = new NormalRng(seed);
  const K = Math.min(words.length, 10);
  type Run = { positions: number[]; result?: number };
  const runs: Run[] = [];
  // one run per distinct edit: a one-token word, the top word at k = 1 and repeated random draws share theirs
  const byEdit = new Map<string, Run>();
  const run = (positions: number[]) => {
    const sorted = [...positions].sort((a, b) => a - b), key = sorted.join(',');
    let r = byEdit.get(key);
    if (!r) { r = { positions: sorted }; runs.push(r); byEdit.set(key, r); }
    return r;
  };
  const tokenRuns = tokens.map((_, i) => (i === 0 ? undefined : run([i])));
  const wordRuns = words.map((w) => run(w.positions));
  const progress = (phase: string) => (done: number, total: number) => {
    if (o.stop?.aborted) throw new CancelledError();
    o.onProgress?.(phase, done, total);
  };
  await execute(model, tokens, runs, baseline, metric, m0, progress('occlusion'));

  const occlusion = wordRuns.map((r) => r.result!);
  // the deletion curve: the k words occlusion ranks highest, against k words drawn at random
  const order = words.map((_, i) => i).sort((a, b) => occlusion[b]! - occlusion[a]!);
  const curveRuns = Array.from({ length: K }, (_, j) => {
    const k = j + 1;
    const top = run(order.slice(0, k).flatMap((w) => words[w]!.positions));
    const random = Array.from({ length: draws }, () => run(sample(words.length, k, rng).flatMap((w) => words[w]!.positions)));
    return { top, random };
  });
  await execute(model, tokens, runs.filter((r) => r.result === undefined), baseline, metric, m0, progress('deletion curve'));
  const top = curveRuns.map((c) => c.top.result!);
  const random = curveRuns.map((c) => c.random.reduce((s, r) => s + r.result!, 0) / draws);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

  // erasure: the word's embeddings zeroed (a second method, through the hooks)
  const erasure: number[] = [];
  for (const w of words) {
    progress('erasure')(erasure.length, words.length);
    const r = await model.runWithHooks(tokens, { interventions: w.positions.map((p) => ({ hook: `hook_embed[pos=${p}]`, zero: true as const })) });
    erasure.push(m0 - metric(r.logits[tokens.length - 1]!));
  }

  const dla = await directLogitAttribution(model, tokens, { target: o.answer, distractor: alternative });
  const wordAttr = words.map((w, i) => ({ ...w, occlusion: occlusion[i]!, erasure: erasure[i]! }));
  const e: Explanation = {
    tokens, pieces,
    answer: { id: o.answer, piece: pieceOf(o.answer), probability: softmaxAt(clean, o.answer), logit: clean[o.answer]! },
    alternative: { id: alternative, piece: pieceOf(alternative), probability: softmaxAt(clean, alternative), logit: clean[alternative]! },
    logitDiff: m0,
    baseline: { id: baseline, piece: tok.piece(baseline) },
    words: wordAttr,
    tokenOcclusion: tokenRuns.flatMap((r, i) => (r ? [{ position: i, piece: pieces[i]!, occlusion: r.result! }] : [])),
    components: dla.components, heads: dla.heads, finalScale: dla.scale,
    faithfulness: { k: top.map((_, j) => j + 1), top, random, draws, seed, topMean: mean(top), randomMean: mean(random), passes: mean(top) > mean(random) },
    sentences: [],
  };
  e.sentences = sentences(e);
  return e;
}

/** Run each edit (its positions set to the baseline token) from its first position on, reusing the
 *  clean prefix; result = m(clean) − m(edited). Leaves the clean prompt in the cache. */
async function execute(model: Model, tokens: number[], runs: { positions: number[]; result?: number }[], baseline: number, metric: (l: Float32Array) => number, m0: number, progress: (done: number, total: number) => void) {
  const sorted = [...runs].sort((a, b) => b.positions[0]! - a.positions[0]!);
  for (const [i, r] of sorted.entries()) {
    progress(i, sorted.length);
    const edited = tokens.map((t, i) => (r.positions.includes(i) ? baseline : t));
    r.result = m0 - metric(await model.lastLogitsFrom(edited, r.positions[0]!));
  }
  // put the clean tokens back from the earliest edited position on
  const first = Math.min(...runs.map((r) => r.positions[0]!), tokens.length - 1);
  if (runs.length) await model.lastLogitsFrom(tokens, first);
}

/** k distinct indices of n, drawn with the seeded generator */
function sample(n: number, k: number, rng: NormalRng): number[] {
  const idx = [...Array(n).keys()];
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng.uniform() * (n - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, k);
}

const q = (s: string) => JSON.stringify(s);
const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`;

/** The explanation in plain sentences. */
function sentences(e: Explanation): string[] {
  const out: string[] = [];
  const byOcc = [...e.words].sort((a, b) => b.occlusion - a.occlusion);
  const pro = byOcc.filter((w) => w.occlusion > 0), con = byOcc.filter((w) => w.occlusion < 0).reverse();
  out.push(`The model prefers ${q(e.answer.piece)} (probability ${e.answer.probability.toFixed(2)}) over ${q(e.alternative.piece)} (${e.alternative.probability.toFixed(2)}): a logit difference of ${e.logitDiff.toFixed(2)}.`);
  if (pro.length) out.push(`The answer ${q(e.answer.piece)} over ${q(e.alternative.piece)} was driven mostly by ${pro.slice(0, 3).map((w) => `${q(w.text.trim())} (${signed(w.occlusion)})`).join(', ')}: replacing ${pro.length > 1 ? 'each of these words' : 'this word'} with ${q(e.baseline.piece)} lowers the difference by that much.`);
  else out.push(`No single word, replaced with ${q(e.baseline.piece)}, lowers the difference: the decision does not rest on one word.`);
  if (con.length) out.push(`${con.slice(0, 2).map((w) => q(w.text.trim())).join(' and ')} pushed the other way (${con.slice(0, 2).map((w) => signed(w.occlusion)).join(', ')}).`);
  const agree = e.words.length > 1 ? rankAgreement(e.words.map((w) => w.occlusion), e.words.map((w) => w.erasure)) : 1;
  out.push(`Zeroing each word's embedding instead ranks the words ${agree >= 0.7 ? 'much the same' : agree >= 0.3 ? 'somewhat alike' : 'differently'} (rank correlation ${agree.toFixed(2)}); where the two methods disagree, neither alone is the whole story.`);
  const parts = e.components.slice(1).sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
  if (parts[0]) out.push(`Inside the network, ${parts[0].name} wrote the most toward the decision (${signed(parts[0].value)} of ${e.logitDiff.toFixed(2)}).`);
  const f = e.faithfulness;
  out.push(`Check: occluding the top-k words moved the decision by ${f.topMean.toFixed(2)} on average (k = 1..${f.k.length}), random words by ${f.randomMean.toFixed(2)} (${f.draws} draws each): the attribution ${f.passes ? 'passes' : 'fails'} this test.`);
  return out;
}

/** Spearman's rank correlation */
function rankAgreement(a: number[], b: number[]): number {
  const rank = (xs: number[]) => { const r = new Array<number>(xs.length); xs.map((x, i) => [x, i] as const).sort((p, q2) => p[0] - q2[0]).forEach(([, i], k) => (r[i] = k)); return r; };
  const [ra, rb] = [rank(a), rank(b)], n = a.length;
  const d2 = ra.reduce((s, r, i) => s + (r - rb[i]!) ** 2, 0);
  return 1 - (6 * d2) / (n * (n * n - 1));
}
