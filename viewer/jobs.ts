// What the viewer computes, one function per view, over a Model: the server runs them on Dawn, the page
// (with ?client=1) on the browser's own WebGPU: the same code, the same JSON. Requests arrive as
// untrusted JSON and are checked here against declared schemas (checkRequest) before any GPU work; a
// bad one is a UsageError.
// Long jobs report progress and stop between units of work when their signal is aborted.
import { z } from 'zod';
import { CancelledError, UsageError } from '../compiler/errors.js';
import type { Model } from '../runtime/model.js';
import { Sampler, softmax } from '../runtime/sampler.js';
import { StreamDecoder, pieceId } from '../runtime/tokenizers/common.js';
import { logitLens } from '../runtime/interp/lens.js';
import { attentionPatterns } from '../runtime/interp/patterns.js';
import { SITES } from '../runtime/interp/patching.js';
import { METHODS, patchingReport } from '../runtime/interp/patch_report.js';
import { explain, type Explanation } from '../runtime/interp/explain.js';
import { explanationHtml } from '../runtime/interp/explain_html.js';

/** Stops a job between units of work (a token, a patched run): an AbortSignal or anything like it. */
export interface Stop { readonly aborted: boolean }
const check = (s?: Stop) => { if (s?.aborted) throw new CancelledError(); };

// ---- requests: one declared schema each (zod), every field typed and bounded; unknown fields are
// errors, not ignored; the request types are the schemas' ---------------------------------------------
const MAX_TEXT = 4000;
const text = z.string({ error: 'must be a string' }).max(MAX_TEXT, { error: `is longer than ${MAX_TEXT} characters` });
const int = (min: number, max: number) => z.number({ error: 'must be an integer' }).int({ error: 'must be an integer' }).min(min, { error: `must be between ${min} and ${max}` }).max(max, { error: `must be between ${min} and ${max}` });
const number = (min: number, max: number) => z.number({ error: 'must be a number' }).min(min, { error: `must be between ${min} and ${max}` }).max(max, { error: `must be between ${min} and ${max}` });
const siteNames = Object.keys(SITES) as [string, ...string[]];
const SITES_ERROR = `must be a list of sites (${siteNames.join(', ')})`;
const sites = z.array(z.enum(siteNames, { error: SITES_ERROR }), { error: SITES_ERROR }).min(1, { error: SITES_ERROR }).default(['resid_pre']);
export const REQUESTS = {
  generate: z.strictObject({ prompt: text, maxNewTokens: int(1, 256).optional(), temperature: number(0, 2).optional(), seed: int(0, 2 ** 31).optional() }),
  lens: z.strictObject({ prompt: text, target: text.optional() }),
  attention: z.strictObject({ prompt: text, layer: int(0, 1023) }),
  patch: z.strictObject({ clean: text, corrupt: text, target: text, distractor: text.optional(), sites, method: z.enum(METHODS, { error: `must be one of ${METHODS.join(', ')}` }).default('exact'), compareExact: z.boolean({ error: 'must be true or false' }).optional() }),
  explain: z.strictObject({ prompt: text, answer: text, alternative: text.optional() }),
  sae: z.strictObject({ prompt: text }),
  saeFeature: z.strictObject({ prompt: text, latent: int(0, 2 ** 24) }),
};
export type RequestKind = keyof typeof REQUESTS;
export type GenerateRequest = z.infer<typeof REQUESTS.generate>;
export type LensRequest = z.infer<typeof REQUESTS.lens>;
export type AttentionRequest = z.infer<typeof REQUESTS.attention>;
export type PatchRequest = z.input<typeof REQUESTS.patch> & { sites: string[] };
export type ExplainRequest = z.infer<typeof REQUESTS.explain>;
export type SaeRequest = z.infer<typeof REQUESTS.sae>;

/** The request of `kind` in `body` (parsed JSON), checked against its schema; the first problem is
 *  the error (a field given as null counts as left out). */
export function checkRequest(kind: RequestKind, body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new UsageError('the request body must be a JSON object');
  const given = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null));
  // (a "__proto__" key from JSON.parse is an own field here, and unknown like any other)
  const r = REQUESTS[kind].safeParse(given);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') throw new UsageError(`unknown field '${issue.keys[0]}' (${kind} takes ${Object.keys(REQUESTS[kind].shape).join(', ')})`);
  const field = String(issue.path[0] ?? '');
  throw new UsageError(given[field] === undefined ? `'${field}' is required` : `'${field}' ${issue.message}`);
}

/** The prompt's tokens, checked against the context. */
export function promptTokens(model: Model, prompt: string): number[] {
  if (prompt.trim() === '') throw new UsageError('the prompt is empty');
  const tokens = model.tokenizer.encode(prompt);
  model.checkTokens(tokens);
  return tokens;
}

// ---- the views -------------------------------------------------------------------------------------
export interface GeneratedToken { id: number; piece: string; text: string; prob: number }

/** Tokens after the prompt, one at a time, each with the probability the model gave it (greedy:
 *  temperature 0, the default; lowest id among ties, as the GPU's argmax). Stops at EOS. */
export async function generateJob(model: Model, r: GenerateRequest, onToken: (t: GeneratedToken) => void, stop?: Stop): Promise<{ promptTokens: number[]; tokens: GeneratedToken[]; text: string }> {
  const prompt = promptTokens(model, r.prompt);
  const n = Math.min(r.maxNewTokens ?? 32, model.contextLength - prompt.length);
  const sampler = new Sampler({ temperature: r.temperature ?? 0, topP: 1, seed: r.seed ?? 1 });
  const text = new StreamDecoder(model.tokenizer, prompt[prompt.length - 1]);
  const out: GeneratedToken[] = [];
  let logits = await model.prefill(prompt, 'logits');
  for (let i = 0; i < n; i++) {
    check(stop);
    const id = sampler.sample(logits);
    if (id === model.tokenizer.vocab.eos || id === model.tokenizer.vocab.bos) break;
    const t = { id, piece: model.tokenizer.piece(id), text: text.push(id), prob: softmax(logits)[id]! };
    out.push(t);
    onToken(t);
    if (i + 1 < n) logits = await model.forward(id);
  }
  return { promptTokens: prompt, tokens: out, text: out.map((t) => t.text).join('') };
}

/** The logit lens, as `tapir lens --json` prints it. */
export async function lensJob(model: Model, r: LensRequest) {
  const target = r.target === undefined || r.target === '' ? undefined : pieceId(model.tokenizer, r.target, 'target');
  const l = await logitLens(model, promptTokens(model, r.prompt), { target, top: 5 });
  return { tokens: l.tokens, pieces: l.pieces, target: l.target, layers: l.layers };
}

/** One layer's attention patterns: heads[h][query][key], as `tapir attn --json` gives them. */
export async function attentionJob(model: Model, r: AttentionRequest) {
  if (r.layer >= model.config.nLayers) throw new UsageError(`layer ${r.layer} is out of range (0..${model.config.nLayers - 1})`);
  const p = await attentionPatterns(model, promptTokens(model, r.prompt), [r.layer]);
  return { pieces: p.pieces, layer: r.layer, heads: p.layers[0]!.heads };
}

/** The reactive patching sweep (or attribution patching's estimate, with the exact sweep beside it on
 *  request), as `tapir patch --json` prints it; progress in patched runs (sites, for attribution). */
export async function patchJob(model: Model, r: PatchRequest, onProgress?: (done: number, total: number) => void, stop?: Stop) {
  const target = pieceId(model.tokenizer, r.target, 'target');
  const distractor = r.distractor === undefined || r.distractor === '' ? undefined : pieceId(model.tokenizer, r.distractor, 'distractor');
  return patchingReport(model, promptTokens(model, r.clean), promptTokens(model, r.corrupt), { target, distractor, sites: r.sites, method: r.method, compareExact: r.compareExact, onProgress, stop });
}

/** `tapir explain`'s report: the explanation and its offline HTML page; progress by phase. */
export async function explainJob(model: Model, r: ExplainRequest, onProgress?: (phase: string, done: number, total: number) => void, stop?: Stop): Promise<{ explanation: Explanation; html: string }> {
  const answer = pieceId(model.tokenizer, r.answer, 'answer');
  const alternative = r.alternative === undefined || r.alternative === '' ? undefined : pieceId(model.tokenizer, r.alternative, 'alternative');
  const e = await explain(model, promptTokens(model, r.prompt), { answer, alternative, onProgress, stop });
  return { explanation: e, html: explanationHtml(e) };
}
