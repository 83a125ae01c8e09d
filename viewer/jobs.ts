// What the viewer computes, one function per view, over a Model: the server runs them on Dawn, the page
// (with ?client=1) on the browser's own WebGPU: the same code, the same JSON. Requests arrive as
// untrusted JSON and are checked here (checkRequest) before any GPU work; a bad one is a UsageError.
// Long jobs report progress and stop between units of work when their signal is aborted.
import { CancelledError, UsageError } from '../compiler/errors.js';
import type { Model } from '../runtime/model.js';
import { Sampler, softmax } from '../runtime/sampler.js';
import { StreamDecoder, pieceId } from '../runtime/tokenizers/common.js';
import { logitLens } from '../runtime/interp/lens.js';
import { attentionPatterns } from '../runtime/interp/patterns.js';
import { SITES, patchingReport } from '../runtime/interp/patching.js';
import { explain, type Explanation } from '../runtime/interp/explain.js';
import { explanationHtml } from '../runtime/interp/explain_html.js';

/** Stops a job between units of work (a token, a patched run): an AbortSignal or anything like it. */
export interface Stop { readonly aborted: boolean }
const check = (s?: Stop) => { if (s?.aborted) throw new CancelledError(); };

// ---- requests: every field typed and bounded; unknown fields are errors, not ignored -----------------
const MAX_TEXT = 4000;
type FieldRule = { type: 'text'; optional?: boolean } | { type: 'int'; min: number; max: number; optional?: boolean } | { type: 'number'; min: number; max: number; optional?: boolean } | { type: 'sites' };
const REQUESTS = {
  generate: { prompt: { type: 'text' }, maxNewTokens: { type: 'int', min: 1, max: 256, optional: true }, temperature: { type: 'number', min: 0, max: 2, optional: true }, seed: { type: 'int', min: 0, max: 2 ** 31, optional: true } },
  lens: { prompt: { type: 'text' }, target: { type: 'text', optional: true } },
  attention: { prompt: { type: 'text' }, layer: { type: 'int', min: 0, max: 1023 } },
  patch: { clean: { type: 'text' }, corrupt: { type: 'text' }, target: { type: 'text' }, distractor: { type: 'text', optional: true }, sites: { type: 'sites' } },
  explain: { prompt: { type: 'text' }, answer: { type: 'text' }, alternative: { type: 'text', optional: true } },
  sae: { prompt: { type: 'text' } },
  saeFeature: { prompt: { type: 'text' }, latent: { type: 'int', min: 0, max: 2 ** 24 } },
} as const satisfies Record<string, Record<string, FieldRule>>;
export type RequestKind = keyof typeof REQUESTS;
export interface GenerateRequest { prompt: string; maxNewTokens?: number; temperature?: number; seed?: number }
export interface LensRequest { prompt: string; target?: string }
export interface AttentionRequest { prompt: string; layer: number }
export interface PatchRequest { clean: string; corrupt: string; target: string; distractor?: string; sites: string[] }
export interface ExplainRequest { prompt: string; answer: string; alternative?: string }
export interface SaeRequest { prompt: string }

/** The request of `kind` in `body` (parsed JSON), checked field by field. */
export function checkRequest(kind: RequestKind, body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new UsageError('the request body must be a JSON object');
  const rules = REQUESTS[kind] as Record<string, FieldRule>;
  for (const k of Object.keys(body)) if (!Object.hasOwn(rules, k)) throw new UsageError(`unknown field '${k}' (${kind} takes ${Object.keys(rules).join(', ')})`);
  const out: Record<string, unknown> = {};
  for (const [k, r] of Object.entries(rules)) {
    const v = (body as Record<string, unknown>)[k];
    if (v === undefined || v === null) {
      if (r.type === 'sites') { out[k] = ['resid_pre']; continue; }
      if (r.optional) continue;
      throw new UsageError(`'${k}' is required`);
    }
    if (r.type === 'text') {
      if (typeof v !== 'string') throw new UsageError(`'${k}' must be a string`);
      if (v.length > MAX_TEXT) throw new UsageError(`'${k}' is longer than ${MAX_TEXT} characters`);
    } else if (r.type === 'int' || r.type === 'number') {
      if (typeof v !== 'number' || !Number.isFinite(v) || (r.type === 'int' && !Number.isInteger(v))) throw new UsageError(`'${k}' must be ${r.type === 'int' ? 'an integer' : 'a number'}`);
      if (v < r.min || v > r.max) throw new UsageError(`'${k}' must be between ${r.min} and ${r.max}`);
    } else if (!Array.isArray(v) || v.length === 0 || v.some((s) => typeof s !== 'string' || !Object.hasOwn(SITES, s))) {
      throw new UsageError(`'${k}' must be a list of sites (${Object.keys(SITES).join(', ')})`);
    }
    out[k] = v;
  }
  return out;
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

/** The reactive patching sweep, as `tapir patch --json` prints it; progress in patched runs. */
export async function patchJob(model: Model, r: PatchRequest, onProgress?: (done: number, total: number) => void, stop?: Stop) {
  const target = pieceId(model.tokenizer, r.target, 'target');
  const distractor = r.distractor === undefined || r.distractor === '' ? undefined : pieceId(model.tokenizer, r.distractor, 'distractor');
  return patchingReport(model, promptTokens(model, r.clean), promptTokens(model, r.corrupt), { target, distractor, sites: r.sites, onProgress, stop });
}

/** `tapir explain`'s report: the explanation and its offline HTML page; progress by phase. */
export async function explainJob(model: Model, r: ExplainRequest, onProgress?: (phase: string, done: number, total: number) => void, stop?: Stop): Promise<{ explanation: Explanation; html: string }> {
  const answer = pieceId(model.tokenizer, r.answer, 'answer');
  const alternative = r.alternative === undefined || r.alternative === '' ? undefined : pieceId(model.tokenizer, r.alternative, 'alternative');
  const e = await explain(model, promptTokens(model, r.prompt), { answer, alternative, onProgress, stop });
  return { explanation: e, html: explanationHtml(e) };
}
