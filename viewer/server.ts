// `tapir serve`: the viewer's web server. It serves its own built page (a fixed set of files read into
// memory at start: no path is ever joined with a URL, so `/../` and its encodings have nothing to reach)
// and a JSON API over one model; every GPU job goes through one queue. Bound to loopback unless told
// otherwise; requests naming another Host are refused there (a web page elsewhere cannot reach it by
// DNS rebinding). Request bodies are capped and checked field by field before any work starts.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { CancelledError, TapirError } from '../compiler/errors.js';
import type { Model } from '../runtime/model.js';
import type { SaeModel } from '../runtime/sae/sae.js';
import { featureCards, featuresHtml, logitEffect, type FeatureCard } from '../runtime/sae/features.js';
import { GpuQueue } from './queue.js';
import { attentionJob, checkRequest, explainJob, generateJob, lensJob, patchJob, promptTokens, type RequestKind } from './jobs.js';

/** largest request body, in bytes */
export const MAX_BODY = 64 * 1024;
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export interface ServeOptions {
  model: Model;
  /** the model file, offered to the page for ?client=1 (GGUF only) */
  modelFile: string;
  host: string;
  port: number;
  /** the built page: dist/page */
  assets: string;
  /** the compiled graph as SVG, fused and not (made once, when first asked for) */
  graphSvg: (fused: boolean) => Promise<string>;
  sae?: SaeModel;
  /** an activation store for the SAE's feature dashboards (top contexts, density) */
  saeStore?: string;
}

export interface Viewer { url: string; server: http.Server; queue: GpuQueue; exposed: boolean; close(): Promise<void> }

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
const HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // the page's own script and styles only; reports and dashboards render in sandboxed frames
  'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-src 'self' data: about:; connect-src 'self'; object-src 'none'; base-uri 'none'",
};

/** The built page's files, by URL path: read once, never looked up on disk per request. */
function loadAssets(dir: string): Map<string, { type: string; body: Buffer }> {
  if (!fs.existsSync(path.join(dir, 'index.html'))) throw new TapirError(`the viewer's page is not built (${dir}/index.html is missing): run npm run build`);
  const out = new Map<string, { type: string; body: Buffer }>();
  for (const f of fs.readdirSync(dir)) {
    const type = TYPES[path.extname(f)];
    if (type && fs.statSync(path.join(dir, f)).isFile()) out.set(`/${f}`, { type, body: fs.readFileSync(path.join(dir, f)) });
  }
  out.set('/', out.get('/index.html')!);
  return out;
}

/** Whether a file begins with GGUF's magic (the page can run those); folders and other files cannot. */
function startsWithGGUF(file: string): boolean {
  if (!fs.statSync(file).isFile()) return false;
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === 'GGUF';
  } finally {
    fs.closeSync(fd);
  }
}

class HttpError extends Error { constructor(readonly status: number, msg: string) { super(msg); } }

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY) { reject(new HttpError(413, `the request body is over ${MAX_BODY} bytes`)); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) { reject(new HttpError(413, `the request body is over ${MAX_BODY} bytes`)); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => {
      try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null')); } catch { reject(new HttpError(400, 'the request body is not JSON')); }
    });
    req.on('error', reject);
  });
}

const json = (res: http.ServerResponse, status: number, value: unknown) => {
  if (res.headersSent) return;
  res.writeHead(status, { ...HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(value));
};

export async function startServer(o: ServeOptions): Promise<Viewer> {
  const assets = loadAssets(o.assets);
  const queue = new GpuQueue();
  const { model } = o;
  const exposed = !LOOPBACK.has(o.host);
  const isGGUF = startsWithGGUF(o.modelFile);
  let port = o.port;
  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `${o.host}:${port}`]);

  const info = () => ({
    model: path.basename(o.modelFile), exposed, host: o.host,
    config: { dim: model.config.dim, layers: model.config.nLayers, heads: model.config.nHeads, kvHeads: model.config.nKvHeads, vocab: model.config.vocabSize, context: model.contextLength },
    hooks: model.hookNames.length,
    sites: ['resid_pre', 'attn_out', 'mlp_out', 'z'],
    sae: o.sae ? { hook: o.sae.hook, latents: o.sae.dims.dSae, arch: o.sae.dims.arch, store: !!o.saeStore } : null,
    // the page can run the model itself (?client=1): the file it fetches
    client: isGGUF ? { model: '/api/model' } : null,
  });

  /** Run a job on the GPU for this request: it is dropped or stopped if the client goes away. */
  const onGpu = <T>(req: http.IncomingMessage, res: http.ServerResponse, work: (signal: AbortSignal) => Promise<T>) => {
    const ac = new AbortController();
    res.on('close', () => { if (!res.writableFinished) ac.abort(); });
    return queue.run(ac.signal, () => work(ac.signal));
  };

  const api: Record<string, (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void>> = {
    'GET /api/info': async (_req, res) => json(res, 200, info()),
    'GET /api/status': async (_req, res) => json(res, 200, queue.state),
    'POST /api/lens': async (req, res) => {
      const r = await body(req, 'lens');
      json(res, 200, await onGpu(req, res, () => lensJob(model, r as never)));
    },
    'POST /api/attention': async (req, res) => {
      const r = await body(req, 'attention');
      json(res, 200, await onGpu(req, res, () => attentionJob(model, r as never)));
    },
    'POST /api/explain': async (req, res) => {
      const r = await body(req, 'explain');
      await stream(req, res, (send, signal) => explainJob(model, r as never, (phase, done, total) => send({ type: 'progress', phase, done, total }), signal));
    },
    'POST /api/generate': async (req, res) => {
      const r = await body(req, 'generate');
      await stream(req, res, (send, signal) => generateJob(model, r as never, (t) => send({ type: 'token', ...t }), signal));
    },
    'POST /api/patch': async (req, res) => {
      const r = await body(req, 'patch');
      await stream(req, res, (send, signal) => patchJob(model, r as never, (done, total) => send({ type: 'progress', done, total }), signal));
    },
    'POST /api/sae': async (req, res) => {
      const sae = needSae();
      const r = (await body(req, 'sae')) as { prompt: string };
      json(res, 200, await onGpu(req, res, async () => {
        const { pieces, acts } = await saeActs(sae, r.prompt), d = sae.dims.dSae;
        return {
          hook: sae.hook, pieces,
          latents: pieces.map((_, p) => [...acts.subarray(p * d, (p + 1) * d)].map((act, latent) => ({ latent, act })).filter((x) => x.act > 0).sort((a, b) => b.act - a.act).slice(0, 12)),
        };
      }));
    },
    'POST /api/sae/feature': async (req, res) => {
      const sae = needSae();
      const r = (await body(req, 'saeFeature')) as { prompt: string; latent: number };
      const j = r.latent, d = sae.dims.dSae;
      if (j >= d) throw new HttpError(400, `'latent' must be below ${d}`);
      const card = await onGpu(req, res, async () => {
        const { pieces, acts } = await saeActs(sae, r.prompt);
        const c: FeatureCard = o.saeStore
          ? (await featureCards(model.executor.gpu, sae, o.saeStore, model, { latents: [j] }))[0]!
          : { latent: j, density: null, maxAct: null, histogram: null, top: [], logits: logitEffect(model, sae, j) };
        return { ...c, onPrompt: { tokens: pieces, acts: pieces.map((_, p) => acts[p * d + j]!) } };
      });
      json(res, 200, { card, html: featuresHtml([card], `latent ${j} of the SAE at ${sae.hook}`) });
    },
    'GET /api/graph': async (_req, res, url) => {
      const svg = await o.graphSvg(url.searchParams.get('fused') !== '0');
      res.writeHead(200, { ...HEADERS, 'Content-Type': 'image/svg+xml', 'Cache-Control': 'no-store' });
      res.end(svg);
    },
    'GET /api/model': async (_req, res) => {
      if (!isGGUF) throw new HttpError(404, 'the page can run GGUF models only; this one is not');
      res.writeHead(200, { ...HEADERS, 'Content-Type': 'application/octet-stream', 'Content-Length': fs.statSync(o.modelFile).size });
      fs.createReadStream(o.modelFile).pipe(res);
    },
  };

  /** The SAE's latents at every position of the prompt ([pos, latent]), spliced in at its hook. */
  const saeActs = async (sae: SaeModel, prompt: string) => {
    const tokens = promptTokens(model, prompt);
    const name = `${sae.hook}.hook_sae_acts_post`;
    const run = await model.runWithHooks(tokens, { interventions: [], saes: [{ sae, errorTerm: true }], hooks: [name] });
    return { pieces: tokens.map((t) => model.tokenizer.piece(t)), acts: run.cache.get(name)!.data };
  };
  const needSae = () => {
    if (!o.sae) throw new HttpError(404, 'no SAE is loaded (start tapir serve with --sae DIR)');
    return o.sae;
  };
  const body = async (req: http.IncomingMessage, kind: RequestKind) => {
    if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'send the request body as application/json');
    return checkRequest(kind, await readBody(req));
  };
  /** A long job's answer as NDJSON: its progress lines as they come, then {type: 'result'} or {type: 'error'}. */
  const stream = async <T>(req: http.IncomingMessage, res: http.ServerResponse, work: (send: (x: object) => void, signal: AbortSignal) => Promise<T>) => {
    const send = (x: object) => {
      if (!res.headersSent) res.writeHead(200, { ...HEADERS, 'Content-Type': 'application/x-ndjson; charset=utf-8', 'Cache-Control': 'no-store' });
      if (!res.destroyed) res.write(JSON.stringify(x) + '\n');
    };
    send({ type: 'queued', ...queue.state });
    try {
      const result = await onGpu(req, res, (signal) => work(send, signal));
      send({ type: 'result', result });
    } catch (e) {
      if (e instanceof CancelledError) return;
      send({ type: 'error', error: e instanceof TapirError ? e.message : `internal error: ${(e as Error).message}` });
      if (!(e instanceof TapirError)) console.error(e);
    } finally {
      res.end();
    }
  };

  const server = http.createServer((req, res) => {
    void (async () => {
      const host = req.headers.host ?? '';
      if (!exposed && !allowedHosts().has(host)) throw new HttpError(403, `this server answers to ${o.host}:${port} only`);
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname.startsWith('/api/')) {
        const handler = api[`${req.method} ${url.pathname}`];
        if (!handler) throw new HttpError(Object.keys(api).some((k) => k.endsWith(` ${url.pathname}`)) ? 405 : 404, `no ${req.method} ${url.pathname}`);
        return handler(req, res, url);
      }
      // the page's files, by exact path (the raw URL, not a decoded or normalised one)
      const asset = req.method === 'GET' || req.method === 'HEAD' ? assets.get(req.url!.split('?')[0]!) : undefined;
      if (!asset) throw new HttpError(404, 'not found');
      res.writeHead(200, { ...HEADERS, 'Content-Type': asset.type, 'Content-Length': asset.body.length });
      res.end(req.method === 'HEAD' ? undefined : asset.body);
    })().catch((e: unknown) => {
      if (e instanceof CancelledError) { if (!res.writableEnded) res.destroy(); return; }
      if (e instanceof HttpError) return json(res, e.status, { error: e.message });
      if (e instanceof TapirError) return json(res, 400, { error: e.message });
      console.error(e);
      json(res, 500, { error: `internal error: ${(e as Error).message}` });
    });
  });
  server.requestTimeout = 0; // long sweeps stream for as long as they run
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new TapirError(`port ${o.port} is in use (try --port 0 for any free port)`) : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' ? new TapirError(`cannot listen on ${o.host}`) : e));
    server.listen(o.port, o.host, () => resolve());
  });
  port = (server.address() as { port: number }).port;
  const shown = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${shown === '0.0.0.0' || shown === '[::]' ? '127.0.0.1' : shown}:${port}/`, server, queue, exposed,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
