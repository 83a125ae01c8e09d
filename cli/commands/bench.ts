// tapir bench: prefill and decode speed on this device, against its own memory roofline.
import { UsageError } from '../../compiler/errors.js';
import type { DType } from '../../compiler/ir/dtype.js';
import { benchmark } from '../../runtime/bench.js';
import { DEFAULT_CONTEXT_CAP, Model } from '../../runtime/model.js';
import { defaultModel, loadModelSource } from '../../runtime/node/load.js';
import { PRESETS, benchWeights, synthModel } from '../../runtime/synth/synth.js';
import { command } from '../command.js';
import { out } from '../common.js';
import { progressBar } from '../progress.js';

const BENCH_DAWN_OPTIONS = 'enable-dawn-features=disable_robustness,disable_workgroup_init,skip_validation'; // (timestamps unquantized: runtime/gpu.ts, every command)

export default command({
  name: 'bench',
  summary: 'decode and prefill speed, GPU time per token, and the fraction of the memory roofline',
  usage: 'tapir bench [-m MODEL | --synth PRESET [--dtype T]] [--prompt-tokens N] [--prefill-tokens N] [--gen-tokens N] [--json]',
  about: `Measures, on this device: prefill tokens/s (a random prompt, median of three) and its matrix products'
TFLOP/s, decode tokens/s (greedy, the
token loop on the GPU, read back once), GPU time per token (timestamp queries where offered), the
dispatches and bytes a token costs, and the fraction of the memory-bandwidth roofline that is, against a
streaming-read kernel measured in the same run. A benchmark: it prints numbers, it asserts nothing.`,
  options: {
    synth: { kind: 'string', arg: 'PRESET', help: 'seeded random weights in memory, no file (presets: ${PRESETS})' },
    dtype: { kind: 'string', arg: 'T', default: 'f16', help: 'with --synth: f32, f16, bf16, q8_0 or q4_0 (default f16)' },
    'prompt-tokens': { kind: 'int', arg: 'N', min: 2, default: 128, help: 'the prompt before decoding (default 128)' },
    'prefill-tokens': { kind: 'int', arg: 'N', min: 2, help: 'time the prefill on a prompt of this many tokens (default: --prompt-tokens)' },
    'gen-tokens': { kind: 'int', arg: 'N', min: 1, default: 256, help: 'default 256' },
    check: { kind: 'int', arg: 'N', min: 0, default: 0, help: "also compare N decode steps' logits with the float64 CPU reference" },
    taps: { kind: 'string', arg: 'SEL', help: "also decode with these hooks tapped (e.g. 'blocks.*.hook_resid_post'), values kept on the GPU" },
  },
  fill: () => ({ PRESETS: Object.keys(PRESETS).join(', ') }),
  async run(o) {
    const promptTokens = o['prompt-tokens'], genTokens = o['gen-tokens'];
    const prefillTokens = o['prefill-tokens'] ?? promptTokens;
    if (o.synth !== undefined && o.model !== undefined) throw new UsageError('give -m MODEL or --synth PRESET, not both');
    // Dawn toggles for speed that keep results correct (tapir's kernels stay in bounds, its plans are
    // validated in the tests); and unquantized timestamps, so short kernels can be timed at all
    process.env.TAPIR_DAWN_OPTIONS ??= BENCH_DAWN_OPTIONS;
    const t0 = performance.now();
    let src;
    if (o.synth !== undefined) {
      const m = synthModel(o.synth, o.dtype as DType, 1);
      src = { config: m.config, vocab: m.vocab, weights: benchWeights(m), file: `synth:${o.synth}:${o.dtype}` };
    } else src = loadModelSource(o.model ?? defaultModel(), { tokenizer: o.tokenizer });
    // the context a user gets by default (the KV cache's size decides the attention plan)
    const contextLength = o.context ?? Math.min(src.config.contextLength, DEFAULT_CONTEXT_CAP);
    if (promptTokens + genTokens > contextLength) throw new UsageError(`--prompt-tokens + --gen-tokens (${promptTokens + genTokens}) is over the context of ${contextLength}`);
    if (prefillTokens > contextLength) throw new UsageError(`--prefill-tokens ${prefillTokens} is over the context of ${contextLength}`);
    const check = o.check;
    if (check > promptTokens) throw new UsageError('--check N compares the first N prompt positions: N must be at most --prompt-tokens');
    const model = await Model.create(src, { contextLength });
    const loadMs = performance.now() - t0;
    try {
      const bars = new Map<string, ReturnType<typeof progressBar>>();
      const r = await benchmark(model, { promptTokens, prefillTokens, genTokens, check, taps: o.taps, progress: (phase, done, total) => {
        let b = bars.get(phase);
        if (!b) bars.set(phase, (b = progressBar(phase.padEnd(8), total)));
        b.update(done);
        if (done === total) b.done();
      } });
      if (o.json) return out(JSON.stringify({ ...r, loadMs: +loadMs.toFixed(0) }) + '\n');
      const d = r.decode;
      out(`device    ${r.device} (${r.features.join(', ') || 'no optional features'})\n`);
      out(`model     ${r.model.file}: ${r.model.layers} layers, dim ${r.model.dim}, vocab ${r.model.vocab}, weights ${r.model.weightDtype.join('/')} (loaded in ${(loadMs / 1000).toFixed(1)} s)\n`);
      out(`roofline  ${r.roofline.GBps} GB/s reading ${(r.roofline.bytes / 2 ** 20).toFixed(0)} MiB once: streaming read ${r.roofline.stream.GBps} GB/s, f16 matvec ${r.roofline.matvec.GBps} GB/s\n`);
      out(`prefill   ${r.prefill.tokens} tokens in ${r.prefill.ms} ms (median of ${r.prefill.runsMs.join(', ')}): ${r.prefill.tokensPerSecond} tokens/s; matrix products ${r.prefill.matmulTflops} TFLOP/s (${r.matrixProducts})\n`);
      out(`decode    ${d.tokens} tokens in ${d.ms} ms: ${d.tokensPerSecond} tokens/s (GPU loop, median of ${d.runsTokensPerSecond.join(', ')}; the host encodes a step in ${d.encodeMsPerToken} ms); ${d.hostLoopTokensPerSecond} tokens/s with a host round trip per token\n`);
      out(`per token ${d.dispatchesPerToken} dispatches, ${(d.weightBytesPerToken / 1e6).toFixed(1)} MB of weights + ${(d.kvBytesPerToken / 1e6).toFixed(2)} MB of KV cache` +
        `${d.gpuMsPerToken !== undefined ? `, ${d.gpuMsPerToken} ms GPU time` : ''}: ${d.achievedGBps} GB/s = ${(100 * d.rooflineFraction).toFixed(1)}% of the roofline\n`);
      if (r.tapped) out(`tapped    ${r.tapped.hooks} hooks kept on the GPU each step: ${r.tapped.tokensPerSecond} tokens/s (median of ${r.tapped.runsTokensPerSecond.join(', ')}), ${(100 * r.tapped.ratio).toFixed(1)}% of untapped${r.tapped.sameTokens ? '' : ' (different tokens!)'}\n`);
      if (r.check) out(`check     logits of ${r.check.positions} decode steps vs the float64 reference: max ‖Δ‖/‖ref‖ = ${r.check.maxRelErr.toExponential(2)}\n`);
      if (r.kernelsByTime) out(`kernels   ${r.kernelsByTime.slice(0, 8).map((k) => `${k.kernel}×${k.count} ${k.us} µs`).join(', ')} (each in its own pass)\n`);
    } finally {
      model.dispose();
    }
  },
});
