// The viewer's server (tapir serve) over stories260K: its API gives what the CLI gives, it serves only
// its own files, refuses bad requests, keeps many concurrent requests apart on the one GPU, and drops
// the work of a request whose client went away.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { Model } from '../runtime/model.js';
import { loadModelSource, repoRoot } from '../runtime/node/load.js';
import { MAX_BODY, startServer, type Viewer } from '../viewer/server.js';
import { checkRequest, lensJob } from '../viewer/jobs.js';
import { GGUF } from './helpers/models.js';

let model: Model;
let viewer: Viewer;
beforeAll(async () => {
  model = await Model.create(loadModelSource(GGUF));
  viewer = await startServer({ model, modelFile: GGUF, host: '127.0.0.1', port: 0, assets: path.join(repoRoot, 'dist/page'), graphSvg: async (fused) => `<svg data-fused="${fused}"></svg>` });
});
afterAll(async () => { await viewer?.close(); model?.dispose(); });

/** A raw request (no URL normalisation: paths go out exactly as written). */
function request(method: string, rawPath: string, o: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const { port } = new URL(viewer.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: rawPath, headers: { ...(o.body ? { 'Content-Type': 'application/json' } : {}), ...o.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}
const post = (p: string, body: unknown) => request('POST', p, { body: JSON.stringify(body) });
const lines = (body: string) => body.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
const status = async () => JSON.parse((await request('GET', '/api/status')).body) as { running: boolean; waiting: number; done: number; failed: number; cancelled: number };

describe('tapir serve: the API', () => {
  it('serves its page, its script and its info', async () => {
    const page = await request('GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.body).toContain('app.js');
    expect((await request('GET', '/app.js')).status).toBe(200);
    const info = JSON.parse((await request('GET', '/api/info')).body);
    expect(info).toMatchObject({ model: 'stories260K.gguf', exposed: false, config: { layers: 5, heads: 8, vocab: 512 }, client: { model: '/api/model' } });
    const file = await request('GET', '/api/model');
    expect(file.status).toBe(200);
    expect(Number(file.headers['content-length'])).toBeGreaterThan(1000);
  });

  it('gives the logit lens the CLI gives, and generation token by token with probabilities', async () => {
    const prompt = 'Once upon a time, there was a little girl named';
    const lens = JSON.parse((await post('/api/lens', { prompt, target: ' Lily' })).body);
    expect(lens).toEqual(JSON.parse(JSON.stringify(await lensJob(model, { prompt, target: ' Lily' }))));
    expect(lens.layers).toHaveLength(5);
    const gen = lines((await post('/api/generate', { prompt, maxNewTokens: 8 })).body);
    const tokens = gen.filter((x) => x.type === 'token') as { id: number; prob: number }[];
    const result = gen.at(-1) as { type: string; result: { tokens: { id: number }[] } };
    expect(result.type).toBe('result');
    expect(tokens.map((t) => t.id)).toEqual(result.result.tokens.map((t) => t.id));
    expect(tokens).toHaveLength(8);
    for (const t of tokens) expect(t.prob).toBeGreaterThan(0);
    // greedy: the tokens the model's own generate() picks
    const alone = await model.generate({ prompt, maxNewTokens: 8 });
    expect(tokens.map((t) => t.id)).toEqual(alone.tokens.slice(alone.promptTokens));
  });

  it('streams a patching sweep with progress, ending in the CLI\'s result', async () => {
    const r = lines((await post('/api/patch', { clean: 'Lily saw a dog', corrupt: 'Tim saw a dog', target: ' and', distractor: '.', sites: ['resid_pre'] })).body);
    const progress = r.filter((x) => x.type === 'progress') as { done: number; total: number }[];
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual({ type: 'progress', done: progress[0]!.total, total: progress[0]!.total });
    const res = r.at(-1) as { type: string; result: { sites: { scores: (number | null)[][] }[] } };
    expect(res.type).toBe('result');
    expect(res.result.sites[0]!.scores).toHaveLength(5);
  });

  it('gives attribution patching beside the exact sweep, as `tapir patch --method attribution --compare-exact` does', async () => {
    const r = lines((await post('/api/patch', { clean: 'Lily saw a dog', corrupt: 'Tim saw a dog', target: ' and', distractor: '.', sites: ['resid_pre'], method: 'attribution', compareExact: true })).body);
    const res = r.at(-1) as { type: string; result: { method: string; sites: { scores: (number | null)[][] }[]; exact: { scores: (number | null)[][] }[]; correlation: Record<string, number> } };
    expect(res.type).toBe('result');
    expect(res.result.method).toBe('attribution');
    expect(res.result.sites[0]!.scores).toHaveLength(5);
    expect(res.result.exact[0]!.scores[0]![1]).toBeCloseTo(1, 5);
    expect(Math.abs(res.result.correlation.resid_pre!)).toBeLessThanOrEqual(1);
  });
});

describe('tapir serve: explain', () => {
  it('streams an explain report\'s progress, phase by phase, then the report', async () => {
    const r = lines((await post('/api/explain', { prompt: 'Once upon a time, there was a little girl named', answer: ' Lily' })).body);
    const phases = [...new Set(r.filter((x) => x.type === 'progress').map((x) => x.phase))];
    expect(phases).toEqual(['occlusion', 'deletion curve', 'erasure']);
    const res = r.at(-1) as { type: string; result: { explanation: { answer: { piece: string }; faithfulness: { passes: boolean } }; html: string } };
    expect(res.type).toBe('result');
    expect(res.result.explanation.answer.piece).toBe(' Lily');
    expect(res.result.html).toMatch(/^<!doctype html>/i);
  });
});

describe('tapir serve: what it refuses', () => {
  it('answers only for its own files: traversal in any spelling is 404', async () => {
    for (const p of ['/../package.json', '/%2e%2e/package.json', '/..%2fpackage.json', '/%2e%2e%2fpackage.json', '/app.js/../../package.json', '//etc/passwd', '/dist/page/app.js', '/index.html%00', '/.%2e/.%2e/package.json', '/api/../package.json', '/nothing'])
      expect((await request('GET', p)).status, p).toBe(404);
  });

  it('refuses another Host (DNS rebinding), wrong methods, bodies too large or not JSON, and bad fields', async () => {
    expect((await request('GET', '/', { headers: { Host: 'attacker.example:80' } })).status).toBe(403);
    expect((await request('GET', '/api/lens')).status).toBe(405);
    expect((await request('POST', '/api/nope', { body: '{}' })).status).toBe(404);
    const big = await request('POST', '/api/lens', { body: JSON.stringify({ prompt: 'x'.repeat(MAX_BODY) }) });
    expect(big.status).toBe(413);
    expect((await request('POST', '/api/lens', { body: '{"prompt": ' })).status).toBe(400);
    expect((await request('POST', '/api/lens', { body: 'prompt=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } })).status).toBe(415);
    const bad = async (b: unknown) => { const r = await post('/api/lens', b); return [r.status, JSON.parse(r.body).error as string]; };
    expect(await bad([1])).toEqual([400, expect.stringMatching(/JSON object/)]);
    expect(await bad({ prompt: 3 })).toEqual([400, expect.stringMatching(/'prompt' must be a string/)]);
    expect(await bad({ prompt: 'a', extra: 1 })).toEqual([400, expect.stringMatching(/unknown field 'extra'/)]);
    expect(await bad(JSON.parse('{"prompt": "a", "__proto__": {"x": 1}}'))).toEqual([400, expect.stringMatching(/unknown field '__proto__'/)]);
    expect(await bad({ prompt: '' })).toEqual([400, expect.stringMatching(/empty/)]);
    expect(await bad({ prompt: 'a', target: 'not a piece at all' })).toEqual([400, expect.stringMatching(/not a vocabulary entry/)]);
    expect(await bad({ prompt: 'x'.repeat(4001) })).toEqual([400, expect.stringMatching(/longer than 4000 characters/)]);
    expect(await bad({ prompt: '😀'.repeat(600) })).toEqual([400, expect.stringMatching(/the context holds 2048/)]); // four byte tokens an emoji
    const gen = await post('/api/generate', { prompt: 'a', maxNewTokens: 100000 });
    expect([gen.status, JSON.parse(gen.body).error]).toEqual([400, expect.stringMatching(/between 1 and 256/)]);
    const patch = await post('/api/patch', { clean: 'a', corrupt: 'b', target: ' and', sites: ['../etc'] });
    expect(patch.status).toBe(400);
    expect(JSON.parse(patch.body).error).toMatch(/'sites' must be a list of sites \(resid_pre, /);
    // every request is checked against its declared schema (viewer/jobs.ts REQUESTS)
    expect(() => checkRequest('attention', { prompt: 'a' })).toThrow(/'layer' is required/);
    expect(() => checkRequest('attention', { prompt: 'a', layer: 1.5 })).toThrow(/'layer' must be an integer/);
    expect(() => checkRequest('generate', { prompt: 'a', temperature: '1' })).toThrow(/'temperature' must be a number/);
    expect(checkRequest('generate', { prompt: 'a', seed: null })).toEqual({ prompt: 'a' }); // null: left out
    expect(checkRequest('patch', { clean: 'a', corrupt: 'b', target: 'c' })).toEqual({ clean: 'a', corrupt: 'b', target: 'c', sites: ['resid_pre'], method: 'exact' });
    expect(() => checkRequest('patch', { clean: 'a', corrupt: 'b', target: 'c', method: 'guess' })).toThrow(/'method' must be one of exact, attribution/);
    expect(() => checkRequest('patch', { clean: 'a', corrupt: 'b', target: 'c', sites: [] })).toThrow(/must be a list of sites/);
    expect((await status()).failed).toBe(0); // each a refusal, none a failure
  });
});

describe('tapir serve: one GPU, many requests', () => {
  it('keeps 30 concurrent requests apart: each gets its own prompt\'s answer, none is lost', async () => {
    const prompts = ['Once upon a time', 'Lily saw a dog', 'Tim had a red ball', 'The sun was hot', 'Sue and her mom', 'One day, a cat'];
    const want = new Map<string, string>();
    for (const p of prompts) want.set(p, JSON.stringify(await lensJob(model, { prompt: p })));
    const before = await status();
    const jobs = Array.from({ length: 30 }, (_, i) => prompts[i % prompts.length]!);
    const got = await Promise.all(jobs.map(async (p, i) => {
      if (i % 5 === 4) { // some streams among them
        const g = lines((await post('/api/generate', { prompt: p, maxNewTokens: 4 })).body);
        return { p, kind: 'generate', ok: g.at(-1)!.type === 'result' && (g.at(-1)!.result as { promptTokens: number[] }).promptTokens.join() === model.tokenizer.encode(p).join() };
      }
      const r = await post('/api/lens', { prompt: p });
      return { p, kind: 'lens', ok: r.status === 200 && r.body === want.get(p) };
    }));
    expect(got.filter((g) => !g.ok)).toEqual([]);
    const after = await status();
    expect(after.done - before.done).toBe(30);
    expect(after).toMatchObject({ running: false, waiting: 0, failed: before.failed });
  });

  it('drops a request whose client went away: waiting, it never runs; running, it stops between steps', async () => {
    const before = await status();
    // a long sweep, then a lens request queued behind it; the client of each leaves early
    const sweep = new AbortController();
    const res = await fetch(new URL('/api/patch', viewer.url), {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: sweep.signal,
      body: JSON.stringify({ clean: 'Lily saw a dog and a cat in the big park', corrupt: 'Tim saw a dog and a cat in the big park', target: ' and', sites: ['resid_pre', 'attn_out', 'mlp_out', 'z'] }),
    });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('"progress"')) { // it is running
      const { value, done } = await reader.read();
      if (done) throw new Error(`the sweep ended before it was stopped: ${text}`);
      text += new TextDecoder().decode(value);
    }
    const queued = new AbortController();
    const waiting = fetch(new URL('/api/lens', viewer.url), { method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: queued.signal, body: JSON.stringify({ prompt: 'a queued request' }) }).catch((e: Error) => e.name);
    await expect.poll(async () => (await status()).waiting, { timeout: 10_000 }).toBe(1);
    queued.abort();
    expect(await waiting).toBe('AbortError');
    sweep.abort();
    await expect.poll(status, { timeout: 30_000 }).toMatchObject({ running: false, waiting: 0, cancelled: before.cancelled + 2 });
    expect((await status()).done).toBe(before.done); // neither finished
    // and the GPU is free for the next one
    expect((await post('/api/lens', { prompt: 'after' })).status).toBe(200);
  });
});

describe('tapir serve: the command', () => {
  it('listens on loopback unless told otherwise, prints its URL, and exits on SIGTERM', async () => {
    const run = (...args: string[]) => new Promise<{ url: string; exposed: boolean; code: number | null }>((resolve, reject) => {
      const p = spawn(path.join(repoRoot, 'bin/tapir.js'), ['serve', '--port', '0', '--json', ...args], { cwd: repoRoot });
      let out = '';
      let first: { url: string; exposed: boolean } | undefined;
      p.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (!first && out.includes('\n')) {
          first = JSON.parse(out.split('\n')[0]!);
          void fetch(new URL('/api/info', first!.url)).then((r) => r.json()).then((info: { exposed: boolean }) => {
            expect(info.exposed).toBe(first!.exposed);
            p.kill('SIGTERM');
          }, reject);
        }
      });
      p.on('exit', (code) => (first ? resolve({ ...first, code }) : reject(new Error(`serve exited (${code}) before printing its URL`))));
    });
    const plain = await run();
    expect(plain).toMatchObject({ exposed: false, code: 0 });
    expect(new URL(plain.url).hostname).toBe('127.0.0.1');
    const open = await run('--host', '0.0.0.0');
    expect(open).toMatchObject({ exposed: true, code: 0 });
  }, 60_000);

  it('says its own pid (--json), and with --stdin-stop ends when its standard input closes', async () => {
    const p = spawn(path.join(repoRoot, 'bin/tapir.js'), ['serve', '--port', '0', '--json', '--stdin-stop'], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
    const first = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
      let out = '';
      p.stdout.on('data', (c: Buffer) => { out += c.toString(); if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!)); });
      p.on('exit', (code) => reject(new Error(`serve exited (${code}) before printing its URL`)));
    });
    expect(first.pid).toBe(p.pid); // the serving process itself (bin/tapir.js runs in it)
    expect((await fetch(new URL('/api/info', first.url))).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => p.on('exit', resolve));
    p.stdin.end();
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000))]);
    if (code === 'hung') p.kill('SIGKILL');
    expect(code).toBe(0);
  }, 60_000);
});
