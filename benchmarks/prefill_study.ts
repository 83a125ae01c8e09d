// Which block size and tensor-core tiling a prefill should take (issue 18): each variant's
// plan (the prefill's blocks at a block size, with Target overrides) made for the interp benchmark's
// 1B-shape model and run whole on a 512-token prompt (or 128), as the CLI runs a prefill (every block,
// the last unembedded), timed from submit to the greedy token read back. The variants take turns, round after round, so a GPU whose
// clocks move between them moves all of them alike (run b's profiles were taken at moving clocks);
// each variant's time is its best round. Then the fastest and the default, each dispatch timed alone
// (the product kernels' share).
//
//   node --no-concurrent-recompilation dist/benchmarks/prefill_study.js --out DIR [--rounds 5]
// reads DIR/model.gguf (interp.js --prepare writes it); prints JSON.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Model } from '../runtime/model.js';
import { Executor } from '../runtime/executor.js';
import { releaseGpu } from '../runtime/gpu.js';
import { loadModelSource } from '../runtime/node/load.js';
import { compile } from '../compiler/passes.js';
import type { Target } from '../compiler/target.js';
import { OPSET } from '../ops/index.js';
import { llama } from '../models/llama.js';

const { values: a } = parseArgs({ options: { out: { type: 'string' }, rounds: { type: 'string', default: '5' }, runs: { type: 'string', default: '4' } } });
const file = path.join(a.out ?? '/tmp/interp', 'model.gguf');

/** a variant: its prompt's length, the positions of its blocks and what it changes in the target */
const VARIANTS: Record<string, { prompt: number; block: number; over: Partial<Target> }> = {
  default: { prompt: 512, block: 256, over: {} },
  block512: { prompt: 512, block: 512, over: {} },
  wide8192: { prompt: 512, block: 256, over: { tensorWideRows: 8192 } },
  split1024: { prompt: 512, block: 256, over: { splitCols: 1024 } },
  split256: { prompt: 512, block: 256, over: { splitCols: 256 } },
  block512_split1024: { prompt: 512, block: 512, over: { splitCols: 1024 } },
  // the FFN's gate and up (8192 rows) unsplit, as before run 2026-12-07-h100-j
  split_rows4096: { prompt: 512, block: 256, over: { splitMaxRows: 4096 } },
  block512_split_rows4096: { prompt: 512, block: 512, over: { splitMaxRows: 4096 } },
  // a 128-token prompt (cache128, grad128's forward): one block, where the wide tiles are fewer
  p128_default: { prompt: 128, block: 128, over: {} },
  p128_wide8192: { prompt: 128, block: 128, over: { tensorWideRows: 8192 } },
  p128_split256: { prompt: 128, block: 128, over: { splitCols: 256 } },
  p128_split_rows4096: { prompt: 128, block: 128, over: { splitMaxRows: 4096 } },
  p128_split1024: { prompt: 128, block: 128, over: { splitCols: 1024 } },
  // a 16-token prompt (lens16, patching's and attribution's runs): the small tiles, fewest workgroups
  p16_default: { prompt: 16, block: 16, over: {} },
  p16_split1024: { prompt: 16, block: 16, over: { splitCols: 1024 } },
};

const model = await Model.create(loadModelSource(file));
const out: Record<string, unknown> = { device: model.executor.gpu.adapterInfo, block_size: model.blockSize, max_binding_bytes: model['target'].maxBindingBytes };
try {
  const V = model.config.vocabSize;
  let seed = 4321;
  const tokens = [model.tokenizer.vocab.bos, ...Array.from({ length: 511 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) % V))];
  const made: Record<string, { ex: Executor; block: number; prompt: number }> = {};
  for (const [name, v] of Object.entries(VARIANTS)) {
    try {
      const plan = compile(llama(model.config, (n) => model.weightDtype(n) ?? 'f32', { positions: v.block, head: 'last' }), OPSET, { ...model['target'], ...v.over }, {}).plan!;
      made[name] = { ex: await Executor.create(model.executor.gpu, plan, model['weights'], model.executor), block: v.block, prompt: v.prompt };
    } catch (e) { out[name] = String(e); }
  }
  /** the prompt through one variant: its blocks in order on the cache (as Model.prefill runs them) */
  const prefill = async ({ ex, block, prompt }: { ex: Executor; block: number; prompt: number }) => {
    ex.reset();
    for (let s = 0; s + block < prompt; s += block) ex.submit({ token: Int32Array.from(tokens.slice(s, s + block)), pos: s });
    const s = prompt - block;
    return new Int32Array((await ex.run({ token: Int32Array.from(tokens.slice(s, prompt)), pos: s }, 'next')).buffer)[0]!;
  };
  const best: Record<string, number> = {}, rounds: Record<string, number[]> = {}, next: Record<string, number> = {};
  for (let r = 0; r < Number(a.rounds); r++)
    for (const [name, m] of Object.entries(made)) {
      next[name] = await prefill(m); // (one untimed: its clocks and caches)
      const ms: number[] = [];
      for (let i = 0; i < Number(a.runs); i++) { const s = performance.now(); await prefill(m); ms.push(performance.now() - s); }
      (rounds[name] ??= []).push(+Math.min(...ms).toFixed(2));
      best[name] = Math.min(best[name] ?? Infinity, ...ms);
    }
  out.ms = Object.fromEntries(Object.entries(best).map(([k, v]) => [k, +v.toFixed(2)]));
  out.rounds_ms = rounds;
  out.tokens_per_s = Object.fromEntries(Object.entries(best).map(([k, v]) => [k, Math.round((VARIANTS[k]!.prompt / v) * 1000)]));
  // every variant greedy-picks the same next token (the same model, tiles summing in the same order)
  out.next = next;
  const fastest = Object.entries(best).filter(([k]) => VARIANTS[k]!.prompt === 512).sort((x, y) => x[1] - y[1])[0]![0];
  out.fastest = fastest;
  out.profile = {} as Record<string, unknown>;
  for (const name of new Set(['default', fastest])) {
    const m = made[name];
    if (!m) continue;
    m.ex.reset();
    const p = await m.ex.profile({ token: Int32Array.from(tokens.slice(0, m.block)), pos: 0 });
    const q = await m.ex.profile({ token: Int32Array.from(tokens.slice(0, m.block)), pos: 0 });
    if (!p || !q) break;
    if (name === 'default') {
      // the first block's first two layers, dispatch by dispatch (µs): which product, which attention
      const steps = await m.ex.profileSteps({ token: Int32Array.from(tokens.slice(0, m.block)), pos: 0 });
      const layers01 = (st: typeof steps) => st?.slice(0, 2 + 2 * Math.ceil((st.length - 6) / model.config.nLayers)).map((s) => `${s.kernel} ${s.groups.join('x')} ${(s.ns / 1e3).toFixed(1)}`);
      out.layers01 = layers01(steps);
      // and the second block's (its attention sees the first block's keys too)
      if (m.prompt > m.block) out.layers01_second = layers01(await m.ex.profileSteps({ token: Int32Array.from(tokens.slice(m.block, 2 * m.block)), pos: m.block }));
    }
    (out.profile as Record<string, unknown>)[name] = [...q.entries()].map(([k, v]) => ({ kernel: k, ms: +(Math.min(v.ns, p.get(k)!.ns) / 1e6).toFixed(3), count: v.count })).sort((x, y) => y.ms - x.ms).slice(0, 12);
  }
  for (const m of Object.values(made)) m.ex.destroy();
} finally {
  model.dispose();
  await releaseGpu();
}
console.log(JSON.stringify(out));
