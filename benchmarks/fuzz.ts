// The loader fuzzer: `node --no-concurrent-recompilation dist/benchmarks/fuzz.js [--cases N] [--seed S]
// [--formats gguf,llama2c,safetensors] [--timeout-ms T] [--memory-mb M] [--json]`.
// Each format runs in a worker thread with a heap limit; a case that sends no word for T ms is a hang
// (the worker is stopped and the run goes on from the next case). A crash is any exception that is
// not the loader's own TapirError. Exit code 1 if there was any crash, hang or out-of-memory.
import { Worker } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import { FORMATS, type Format } from './fuzz_targets.js';

export interface FuzzReport {
  format: Format; cases: number; ok: number; rejected: number; crashes: number; hangs: number; ooms: number;
  maxMs: number; seconds: number; failures: { case: number; kind: string; error?: string }[];
}

export async function fuzzFormat(format: Format, cases: number, seed: number, timeoutMs: number, memoryMb: number, onProgress?: (done: number) => void): Promise<FuzzReport> {
  const rep: FuzzReport = { format, cases, ok: 0, rejected: 0, crashes: 0, hangs: 0, ooms: 0, maxMs: 0, seconds: 0, failures: [] };
  const t0 = performance.now();
  let next = 0;
  while (next < cases) {
    next = await new Promise<number>((settle) => {
      let current = next, timer: NodeJS.Timeout | undefined, over = false;
      // one outcome per worker: a worker stopped for one reason can still report another on its way
      // out (a heap that outgrew the RSS bound also ends in ERR_WORKER_OUT_OF_MEMORY); count only the first
      const resolve = (n: number) => { over = true; clearTimeout(timer); clearInterval(rssWatch); settle(n); };
      const w = new Worker(new URL('./fuzz_worker.js', import.meta.url), {
        workerData: { format, start: next, end: cases, seed },
        resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: 64 },
      });
      let ready = false;
      // the heap limit does not see typed arrays: watch the process's resident memory as well
      const baseRss = process.memoryUsage.rss();
      const rssWatch: NodeJS.Timeout = setInterval(() => {
        if (over || process.memoryUsage.rss() - baseRss < memoryMb * 2 ** 20) return;
        rep.ooms++;
        rep.failures.push({ case: current, kind: 'oom', error: `resident memory grew past ${memoryMb} MiB` });
        void w.terminate();
        resolve(current + 1);
      }, 20);
      const arm = () => {
        clearTimeout(timer);
        // building the base files is not a case: it gets a minute
        timer = setTimeout(() => {
          if (over) return;
          if (!ready) { rep.crashes++; rep.failures.push({ case: current, kind: 'crash', error: 'the worker did not start' }); void w.terminate(); resolve(cases); return; }
          rep.hangs++;
          rep.failures.push({ case: current, kind: 'hang' });
          void w.terminate();
          resolve(current + 1);
        }, ready ? timeoutMs : 60_000);
      };
      arm();
      w.on('message', (m: { i: number; phase: string; outcome?: string; ms?: number; error?: string }) => {
        if (over) return;
        current = m.i;
        if (m.phase === 'ready') ready = true;
        arm();
        if (m.phase !== 'done') return;
        rep.maxMs = Math.max(rep.maxMs, m.ms ?? 0);
        if (m.outcome === 'ok') rep.ok++;
        else if (m.outcome === 'rejected') rep.rejected++;
        else { rep.crashes++; rep.failures.push({ case: m.i, kind: 'crash', error: m.error }); }
        onProgress?.(m.i + 1);
      });
      w.on('error', (e: Error & { code?: string }) => {
        if (over) return;
        const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
        if (oom) rep.ooms++; else rep.crashes++;
        rep.failures.push({ case: current, kind: oom ? 'oom' : 'crash', error: e.message });
        resolve(current + 1);
      });
      w.on('exit', () => { if (!over) resolve(cases); });
    });
  }
  rep.seconds = +((performance.now() - t0) / 1000).toFixed(2);
  rep.maxMs = +rep.maxMs.toFixed(1);
  return rep;
}

async function main() {
  const { values: o } = parseArgs({ options: {
    cases: { type: 'string', default: '10000' }, seed: { type: 'string', default: '1' }, formats: { type: 'string', default: FORMATS.join(',') },
    'timeout-ms': { type: 'string', default: '5000' }, 'memory-mb': { type: 'string', default: '1024' }, json: { type: 'boolean' },
  } });
  const formats = o.formats!.split(',') as Format[];
  const reports: FuzzReport[] = [];
  for (const f of formats) {
    if (!FORMATS.includes(f as (typeof FORMATS)[number]) && f !== 'selftest') { console.error(`fuzz: unknown format '${f}'`); process.exit(2); }
    const n = Number(o.cases);
    const r = await fuzzFormat(f, n, Number(o.seed), Number(o['timeout-ms']), Number(o['memory-mb']), (d) => {
      if (process.stderr.isTTY && d % 100 === 0) process.stderr.write(`\rfuzz ${f}: ${d}/${n}`);
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    reports.push(r);
    if (!o.json) console.log(`${f}: ${r.cases} cases, ${r.ok} loaded, ${r.rejected} rejected with a typed error, ${r.crashes} crashes, ${r.hangs} hangs, ${r.ooms} out-of-memory; slowest case ${r.maxMs} ms; ${r.seconds} s`);
    for (const x of r.failures.slice(0, 10)) console.error(`  ${f} case ${x.case}: ${x.kind} ${x.error ?? ''}`);
  }
  if (o.json) console.log(JSON.stringify(reports));
  const bad = reports.some((r) => r.crashes || r.hangs || r.ooms);
  process.exitCode = bad ? 1 : 0;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!)) await main();
