// Where the page's work runs. The server engine asks `tapir serve` (its Dawn GPU); the client engine
// (?client=1) downloads the model file and runs the same jobs (viewer/jobs.ts) on the browser's own
// WebGPU. Both answer with the same JSON.
import type { GeneratedToken, GenerateRequest, LensRequest, AttentionRequest, PatchRequest, ExplainRequest } from '../jobs.js';

export type Lens = Awaited<ReturnType<typeof import('../jobs.js').lensJob>>;
export type Attention = Awaited<ReturnType<typeof import('../jobs.js').attentionJob>>;
export type Patch = Awaited<ReturnType<typeof import('../jobs.js').patchJob>>;
export type Generated = Awaited<ReturnType<typeof import('../jobs.js').generateJob>>;
export interface Report { explanation: { sentences: string[] }; html: string }

export interface Info {
  model: string; exposed: boolean; host: string;
  config: { dim: number; layers: number; heads: number; kvHeads: number; vocab: number; context: number };
  hooks: number; sites: string[];
  sae: { hook: string; latents: number; arch: string; store: boolean } | null;
  client: { model: string } | null;
}

export interface Engine {
  /** in words, where the work runs */
  readonly where: string;
  generate(r: GenerateRequest, onToken: (t: GeneratedToken) => void): Promise<Generated>;
  lens(r: LensRequest): Promise<Lens>;
  attention(r: AttentionRequest): Promise<Attention>;
  patch(r: PatchRequest, onProgress: (done: number, total: number) => void): Promise<Patch>;
  explain(r: ExplainRequest, onProgress: (phase: string, done: number, total: number) => void): Promise<Report>;
}

/** An answer the server refused: its message, for the page to show. */
export class ApiError extends Error {}

export async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, init);
  const body = await res.json() as { error?: string };
  if (!res.ok) throw new ApiError(body.error ?? `${res.status} ${res.statusText}`);
  return body as T;
}
export const post = <T>(url: string, body: unknown) => getJson<T>(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

/** A streamed answer (NDJSON): each line to `onLine`, until the result or an error. */
async function postStream<T>(url: string, body: unknown, onLine: (x: Record<string, unknown>) => void): Promise<T> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok || !res.body) throw new ApiError(((await res.json()) as { error?: string }).error ?? `${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      buf = buf.slice(nl + 1);
      if (line.type === 'result') return line.result as T;
      if (line.type === 'error') throw new ApiError(String(line.error));
      onLine(line);
    }
  }
  throw new ApiError('the server ended the answer early');
}

export const serverEngine: Engine = {
  where: "the server's GPU (tapir serve, Dawn)",
  generate: (r, onToken) => postStream('/api/generate', r, (x) => { if (x.type === 'token') onToken(x as unknown as GeneratedToken); }),
  lens: (r) => post('/api/lens', r),
  attention: (r) => post('/api/attention', r),
  patch: (r, onProgress) => postStream('/api/patch', r, (x) => { if (x.type === 'progress') onProgress(x.done as number, x.total as number); }),
  explain: (r, onProgress) => postStream('/api/explain', r, (x) => { if (x.type === 'progress') onProgress(x.phase as string, x.done as number, x.total as number); }),
};

/** The model, run in this page: downloaded from the server (progress in bytes), then compiled for
 *  this browser's WebGPU. Jobs run one at a time, as on the server. */
export async function clientEngine(info: Info, onDownload: (done: number, total: number) => void): Promise<Engine> {
  if (!info.client) throw new ApiError('this model cannot run in the page (GGUF models only)');
  if (!('gpu' in navigator)) throw new ApiError('this browser offers no WebGPU (navigator.gpu is missing)');
  const res = await fetch(info.client.model);
  if (!res.ok || !res.body) throw new ApiError(`the model file could not be fetched (${res.status})`);
  const total = Number(res.headers.get('Content-Length') ?? 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes.set(value, at);
    at += value.length;
    onDownload(at, total);
  }
  const [{ Model }, { ggufModelSource }, { memorySource }, jobs] = await Promise.all([
    import('../../runtime/model.js'), import('../../runtime/formats/open.js'), import('../../runtime/formats/source.js'), import('../jobs.js'),
  ]);
  const model = await Model.create(ggufModelSource(memorySource(bytes.subarray(0, at)), info.model), { contextLength: info.config.context });
  let tail: Promise<unknown> = Promise.resolve();
  const one = <T>(f: () => Promise<T>): Promise<T> => { const p = tail.then(f, f); tail = p.catch(() => undefined); return p; };
  return {
    where: "this browser's WebGPU (the model runs in the page)",
    generate: (r, onToken) => one(() => jobs.generateJob(model, r, onToken)),
    lens: (r) => one(() => jobs.lensJob(model, r)),
    attention: (r) => one(() => jobs.attentionJob(model, r)),
    patch: (r, onProgress) => one(() => jobs.patchJob(model, r, onProgress)),
    explain: (r, onProgress) => one(() => jobs.explainJob(model, r, onProgress)),
  };
}
