// The `tapir` command line. Every command takes --help and --json; a user's mistake (bad flag,
// bad file, too long a prompt) prints one line and exits with code 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TapirError, UsageError } from '../compiler/errors.js';
import { releaseGpu } from '../runtime/gpu.js';
import { Model } from '../runtime/model.js';
import { defaultModel, loadModelSource, repoRoot } from '../runtime/node/load.js';
import { startServer } from '../viewer/server.js';
import { graphPictures } from '../viewer/graph.js';
import { softmax } from '../runtime/sampler.js';
import { pieceId } from '../runtime/tokenizers/common.js';
import fs from 'node:fs';
import { PRESETS, benchWeights, synthModel } from '../runtime/synth/synth.js';
import { FAMILIES, type FamilyName } from '../models/families.js';
import { renderChat, turnEnds } from '../runtime/chat.js';
import { explain } from '../runtime/interp/explain.js';
import { explanationHtml } from '../runtime/interp/explain_html.js';
import { benchmark } from '../runtime/bench.js';
import { writeAtomically, writeSynthGGUF } from '../runtime/node/write_file.js';
import { writeSafetensors } from '../runtime/formats/safetensors.js';
import { logitLens, type LensCell } from '../runtime/interp/lens.js';
import { heatmapSvg, stackSvgs } from '../runtime/interp/heatmap.js';
import { patchingReport, SITES } from '../runtime/interp/patching.js';
import { directLogitAttribution } from '../runtime/interp/dla.js';
import { attentionPatterns, patternsSvg } from '../runtime/interp/patterns.js';
import { progressBar } from './progress.js';
import { getGpu } from '../runtime/gpu.js';
import { collect, readManifest } from '../runtime/sae/store.js';
import { trainSae } from '../runtime/sae/train.js';
import { evalSae } from '../runtime/sae/eval.js';
import { loadSaeLens, saveSaeLens } from '../runtime/sae/files.js';
import { featureCards, featuresHtml } from '../runtime/sae/features.js';
import path from 'node:path';
import { compile, PASSES } from '../compiler/passes.js';
import { report } from '../compiler/report.js';
import { fusedOps, toDot, toSvg } from '../compiler/svg.js';
import { llama } from '../models/llama.js';
import { OPSET } from '../ops/index.js';
import { target } from '../compiler/target.js';
import { DEFAULT_CONTEXT_CAP } from '../runtime/model.js';
import { toWGSL } from '../compiler/kernel/wgsl.js';
import type { DType } from '../compiler/ir/dtype.js';

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON: Options = {
  model: { type: 'string', short: 'm' },
  tokenizer: { type: 'string' },
  context: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const MODEL_HELP = `  -m, --model PATH      GGUF (llama, qwen2, qwen3, phi3 or granite architecture) or llama2.c .bin
                        (default: ${'<repo>/../shared/models/stories260K.gguf'})
      --tokenizer PATH  tokenizer.bin for a llama2.c checkpoint (default: tokenizer.bin or
                        tok<vocab>.bin beside it)
      --context N       positions the KV cache holds (default: the model's, at most 4096)
      --json            print one JSON object instead of text
  -h, --help            show this help`;

const HELP: Record<string, string> = {
  main: `tapir — run Llama-family models on WebGPU, and see why they say what they say

Usage: tapir <command> [options]

Commands:
  generate   generate text from a prompt
  logits     print the next-token logits at every position of a prompt
  graph      print the model's op graph and its kernel plan
  synth      write a model with seeded random weights and a learned tokenizer (GGUF)
  compile    show how the model becomes kernels: fused IR, plan, WGSL, pictures
  hooks      list the model's hook points (TransformerLens names) and their shapes
  lens       the logit lens: what each layer would predict, as a layer × position heatmap
  patch      activation patching: which activations carry the difference between two prompts
  explain    why the next token is X and not Y: word attributions (two methods), layers and heads,
             a faithfulness check, and an HTML report
  bench      decode and prefill speed, GPU time per token, and the fraction of the memory roofline
  attn       attention patterns per layer and head (destination × source), as JSON or SVG
  dla        direct logit attribution: how much each layer's attention, MLP and head writes toward the answer
  cache      run a prompt and save the values at selected hooks (safetensors)
  sae        sparse autoencoders: collect activations, train on the GPU, evaluate (sae --help)
  serve      the viewer: a local web page for all of the above, on this machine's GPU or the browser's

Run 'tapir <command> --help' for a command's options.`,
  generate: `Usage: tapir generate [-m MODEL] [-p PROMPT] [-n NEW_TOKENS] [options]

Generates text. Without a prompt it starts from BOS.
  -p, --prompt TEXT     the prompt (default: empty)
  -n, --new-tokens N    tokens to generate (default: 256; stops early at EOS or a full context)
      --temperature T   0 is greedy (default: 0)
      --top-p P         nucleus sampling mass, used when T > 0 (default: 0.9; 0 or 1 turns it off)
      --seed S          RNG seed for sampling (default: from the clock; printed with --json)
      --chat            the prompt is a user's message, laid out by the model's chat template
                        (GGUF tokenizer.chat_template); generation stops at the end of the turn
      --system TEXT     with --chat: a system message first
${MODEL_HELP}

--json prints {tokens (BOS first, prompt included), promptTokens, text, seed, timings}.`,
  logits: `Usage: tapir logits [-m MODEL] (-p PROMPT | --tokens 1,403,407) [options]

Runs the prompt and prints, for every position, the logits for the next token.
  -p, --prompt TEXT     the prompt (BOS is added)
      --tokens IDS      comma-separated token ids instead of a prompt (BOS not added)
      --top K           how many top tokens the text output shows per position (default: 5)
${MODEL_HELP}

--json prints {"tokens":[...],"logits":[[...],...]}, one row of logits per position.`,
  synth: `Usage: tapir synth --preset NAME --dtype DTYPE --out FILE [--arch ARCH] [--seed S] [--json]

Writes a GGUF model with the shapes of a real one, seeded random weights of realistic scale and a
tokenizer learned from a small built-in text. The file is written atomically (FILE.partial, then renamed).
      --preset NAME     ${'${PRESET_NAMES}'}
      --dtype DTYPE     f32, f16, bf16, q8_0 or q4_0 (matrices; norm vectors stay f32)
      --out FILE        where to write the .gguf
      --arch ARCH       the model family: ${'${ARCH_NAMES}'} (default llama); its
                        GGUF architecture, tensors (biases, q/k norms, fused QKV) and tokenizer
      --seed S          weight seed (default: 0)
      --json            print a summary as JSON
  -h, --help            show this help`,
  compile: `Usage: tapir compile [-m MODEL] [--svg FILE] [--ir FILE] [--wgsl DIR] [--no-fuse]
                     [--disable-rule NAME]... [--dump-after PASS] [--json]

Compiles the model without running it and reports what one decode step costs: dispatches (per
layer), weight bytes read, memory allocated.
      --svg FILE        the graph after fusion, kernels as clusters (FILE), and before (FILE with .before.svg)
      --ir FILE         the fused graph as text (parses back with tapir's IR grammar)
      --wgsl DIR        one .wgsl file per kernel, each naming the ops it fused
      --no-fuse         compile without the fusion rules
      --disable-rule R  leave out one rule (repeatable): ${'${RULE_NAMES}'}
      --dump-after PASS print the IR after a pass: ${'${PASS_NAMES}'}
${MODEL_HELP}`,
  hooks: `Usage: tapir hooks [-m MODEL] [--json]

Lists every hook point with its shape per position ([batch, pos] come first in a cache).
${MODEL_HELP}`,
  sae: `Usage: tapir sae collect [-m MODEL] --hook HOOK --tokens N --out STORE [--corpus FILE]... [--seed S]
                         [--temperature T] [--seq-len L] [--shard-sequences N] [--json]
       tapir sae train --store STORE --out DIR [--arch topk|relu] [--k K] [--latents 8x|N] [--steps N]
                       [--batch B] [--lr LR] [--l1 C] [--seed S] [--checkpoint-every N] [--json]
       tapir sae eval [-m MODEL] --sae DIR --store STORE [--sequences N] [--json]
       tapir sae features [-m MODEL] --sae DIR --store STORE --html FILE [--latents 0,5,9] [--json]

collect  streams the values at one hook into an activation store (shards of f32 rows + their token
         sequences; every tenth shard held out). Without --corpus it samples stories from the model
         (temperature T, default 1; seeds from --seed and each sequence's index, recorded). Killed and run
         again with the same arguments, it resumes from the last whole shard.
train    trains an SAE on the store's training rows on the GPU (Adam; TopK keeps decoder rows at unit
         norm; ReLU takes an L1 penalty weighted by decoder-row norms), logging loss, L0, FVU and dead
         fraction. Checkpoints (DIR/checkpoint.safetensors) are atomic; the same command resumes and ends
         bit-identical to an uninterrupted run. At the end DIR holds the SAE in SAELens's layout
         (cfg.json + sae_weights.safetensors, the input scale folded in).
eval     on the held-out rows: L0, FVU (per-dimension mean), dead fraction, log10 density histogram, and
         with the model the CE loss recovered, (CE_zero − CE_sae) / (CE_zero − CE_clean).
features one offline HTML page of dashboards over the store's rows: per latent its top-activating
         contexts (tokens shaded by activation), activation histogram, density and logit effect (the
         top and bottom tokens of W_dec · W_U).
${MODEL_HELP}`,
  cache: `Usage: tapir cache [-m MODEL] -p PROMPT --hooks SELECTOR --out FILE.safetensors [--json]

Runs the prompt (BOS first) and writes the value at each selected hook, at every position, as F32
tensors named by hook, shaped [1, pos, ...] as TransformerLens shapes them.
      --hooks SEL       e.g. 'blocks.*.hook_resid_post', 'blocks.3-7.attn.hook_z',
                        'blocks.2.attn.hook_z[head=5]', 'blocks.4.hook_resid_pre[pos=-1]' (comma-separated)
      --out FILE        the safetensors file to write (atomically)
${MODEL_HELP}`,
  lens: `Usage: tapir lens [-m MODEL] -p PROMPT [--target PIECE | --target-id N] [--top K] [--svg FILE] [--json]

For every layer and position: the residual stream after the block, read through the final norm and
the unembedding — its top tokens and probabilities, the target's rank and probability, and the KL
divergence from the model's final output. The last layer's row is the model's own prediction.
      --target PIECE    a vocabulary entry written exactly as in the vocabulary (e.g. " Lily")
      --target-id N     the target by id
      --top K           top tokens per cell (default: 5)
      --svg FILE        a heatmap: top token in each cell, its probability (or the target's) as colour
${MODEL_HELP}`,
  explain: `Usage: tapir explain [-m MODEL] -p PROMPT --answer PIECE [--alternative PIECE] [--baseline PIECE]
                     [--draws N] [--seed S] [--html FILE] [--json]

Why the model's next token after PROMPT is ANSWER rather than ALTERNATIVE (default: the most likely other
token), on their logit difference: each word's share by occlusion (its tokens replaced by the baseline,
the prompt re-run from there on the cached prefix) and by erasure (its embeddings zeroed), direct logit
attribution per layer and head, and a faithfulness check: occluding the top-k words must move the
decision more than k random words (the deletion curve).
      --answer PIECE        the token to explain, written exactly as in the vocabulary (e.g. " Lily")
      --answer-id N         ... or by id
      --alternative PIECE   the token it is weighed against (--alternative-id N by id)
      --baseline PIECE      what occlusion puts in a word's place (default: the unknown token)
      --draws N             random draws per k on the deletion curve (default: 20)
      --seed S              seed of those draws (default: 0)
      --html FILE           the report as one HTML page (works offline)
${MODEL_HELP}`,
  patch: `Usage: tapir patch [-m MODEL] --clean TEXT --corrupt TEXT (--target PIECE | --target-id N)
                   [--distractor PIECE | --distractor-id N] [--sites LIST] [--svg FILE] [--json]

Transplants the clean run's activation at one site at a time into the corrupted run and scores
(patched − corrupted) / (clean − corrupted) on the metric: the target's logit at the last position,
minus the distractor's if one is given. The two prompts must tokenize to the same length.
      --sites LIST      comma-separated, of ${'${SITES}'} (default: resid_pre);
                        z patches one head at all positions, the others one position
      --svg FILE        one heatmap per site kind (diverging colours, values in tooltips)
${MODEL_HELP}`,
  bench: `Usage: tapir bench [-m MODEL | --synth PRESET [--dtype T]] [--prompt-tokens N] [--prefill-tokens N] [--gen-tokens N] [--json]

Measures, on this device: prefill tokens/s (a random prompt, median of three) and its matrix products'
TFLOP/s, decode tokens/s (greedy, the
token loop on the GPU, read back once), GPU time per token (timestamp queries where offered), the
dispatches and bytes a token costs, and the fraction of the memory-bandwidth roofline that is, against a
streaming-read kernel measured in the same run. A benchmark: it prints numbers, it asserts nothing.
      --synth PRESET    seeded random weights in memory, no file (presets: ${'${PRESETS}'})
      --dtype T         with --synth: f32, f16, bf16, q8_0 or q4_0 (default f16)
      --prompt-tokens N the prompt before decoding (default 128)
      --prefill-tokens N  time the prefill on a prompt of this many tokens (default: --prompt-tokens)
      --gen-tokens N    default 256
      --check N         also compare N decode steps' logits with the float64 CPU reference
      --taps SEL        also decode with these hooks tapped (e.g. 'blocks.*.hook_resid_post'), values kept on the GPU
${MODEL_HELP}`,
  serve: `Usage: tapir serve [-m MODEL] [--port P] [--host H] [--sae DIR [--sae-store DIR]]

Starts the viewer, a web page over one model: generation token by token with probabilities, the logit
lens, attention patterns, activation patching, the compiled graph, SAE features and explain reports.
Prints its URL and runs until interrupted (Ctrl-C). Work runs on this machine's GPU, one request at a
time; open the URL with ?client=1 to run the model in the browser on its own WebGPU instead.
      --port P          port to listen on (default 8177; 0: any free port)
      --host H          address to listen on (default 127.0.0.1: this machine only). Any other address
                        exposes the viewer to the network; the page then says so
      --sae DIR         an SAE in SAELens's layout, shown token by token (its hook must be the model's)
      --sae-store DIR   the activation store its feature dashboards take top contexts from
${MODEL_HELP}`,
  attn: `Usage: tapir attn [-m MODEL] -p PROMPT [--layers LIST] [--svg FILE] [--json]

The attention pattern of every head ([head, query, key]: softmax over the keys up to the query), as
TransformerLens's blocks.L.attn.hook_pattern gives it. Text: each head's strongest source per query.
      --layers LIST     comma-separated layer numbers (default: all)
      --svg FILE        one destination × source heatmap per head (masked cells grey, values in tooltips)
${MODEL_HELP}`,
  dla: `Usage: tapir dla [-m MODEL] -p PROMPT (--target PIECE | --target-id N) [--distractor PIECE | --distractor-id N] [--json]

Splits the target's logit (minus the distractor's) at the last position into what the embedding and
each layer's attention (per head too) and MLP wrote into the residual stream, read through the final
norm with its scale frozen. The parts add up to the model's own logit difference.
${MODEL_HELP}`,
  graph: `Usage: tapir graph [-m MODEL] [--plan] [options]

Prints the model's op graph as text, one node per line; --plan adds the kernel dispatches.
      --plan            also print the lowered plan (buffers and dispatches)
      --wgsl            also print the WGSL of every kernel the plan dispatches
${MODEL_HELP}`,
};

function parse(command: string, argv: string[], extra: Options): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args: argv, options: { ...COMMON, ...extra }, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]} (see 'tapir ${command} --help')`);
  }
}

function int(v: string | boolean | undefined, name: string, min: number, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`${name} must be an integer >= ${min}, got '${String(v)}'`);
  return n;
}
function num(v: string | boolean | undefined, name: string, lo: number, hi: number, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || n < lo || n > hi) throw new UsageError(`${name} must be a number in [${lo}, ${hi}], got '${String(v)}'`);
  return n;
}

async function openModel(o: Record<string, string | boolean | undefined>) {
  const t0 = performance.now();
  const file = typeof o.model === 'string' ? o.model : defaultModel();
  const src = loadModelSource(file, { tokenizer: o.tokenizer as string | undefined });
  const contextLength = o.context === undefined ? undefined : int(o.context, '--context', 1, 0);
  const model = await Model.create(src, { contextLength });
  return { model, loadMs: performance.now() - t0 };
}

const out = (s: string): void => { process.stdout.write(s); };

async function generate(argv: string[]) {
  const o = parse('generate', argv, {
    prompt: { type: 'string', short: 'p' },
    'new-tokens': { type: 'string', short: 'n' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    chat: { type: 'boolean' },
    system: { type: 'string' },
  });
  if (o.help) return out(HELP.generate + '\n');
  if (o.system !== undefined && !o.chat) throw new UsageError('--system goes with --chat');
  const maxNewTokens = int(o['new-tokens'], '--new-tokens', 0, 256);
  const temperature = num(o.temperature, '--temperature', 0, 100, 0);
  const topP = num(o['top-p'], '--top-p', 0, 1, 0.9);
  const seed = o.seed === undefined ? undefined : int(o.seed, '--seed', 0, 0);
  const { model, loadMs } = await openModel(o);
  try {
    // --chat: the prompt is the user's turn, laid out by the model's own chat template
    const chat = o.chat ? renderChat(model.tokenizer, [...(typeof o.system === 'string' ? [{ role: 'system' as const, content: o.system }] : []), { role: 'user', content: (o.prompt as string | undefined) ?? '' }]) : undefined;
    const r = await model.generate({
      ...(chat !== undefined ? { tokens: model.tokenizer.encode(chat, { bos: false, special: true }), stopTokens: turnEnds(model.tokenizer) } : { prompt: (o.prompt as string | undefined) ?? '' }),
      maxNewTokens, temperature, topP, seed,
      onText: o.json ? undefined : out,
    });
    if (o.json) {
      out(JSON.stringify({
        model: model.file, tokens: r.tokens, promptTokens: r.promptTokens, text: r.text, ...(chat !== undefined ? { chatPrompt: chat } : {}),
        temperature, topP, seed: r.seed, timings: { loadMs: +loadMs.toFixed(1), prefillMs: +r.timings.prefillMs.toFixed(1), decodeMs: +r.timings.decodeMs.toFixed(1), decodeTokensPerSecond: +r.timings.decodeTokensPerSecond.toFixed(2) },
      }) + '\n');
    } else {
      out('\n');
      process.stderr.write(`tapir: ${r.tokens.length - r.promptTokens} tokens at ${r.timings.decodeTokensPerSecond.toFixed(1)} tokens/s\n`);
    }
  } finally {
    model.dispose();
  }
}

function parseTokenList(s: string): number[] {
  const parts = s.split(',').map((x) => x.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) throw new UsageError(`--tokens must be comma-separated token ids, got '${s}'`);
  return parts.map(Number);
}

async function logits(argv: string[]) {
  const o = parse('logits', argv, { prompt: { type: 'string', short: 'p' }, tokens: { type: 'string' }, top: { type: 'string' } });
  if (o.help) return out(HELP.logits + '\n');
  if ((o.prompt === undefined) === (o.tokens === undefined)) throw new UsageError("give either -p PROMPT or --tokens IDS (see 'tapir logits --help')");
  const top = int(o.top, '--top', 1, 5);
  const ids = typeof o.tokens === 'string' ? parseTokenList(o.tokens) : undefined;
  const { model } = await openModel(o);
  try {
    const tokens = ids ?? model.tokenizer.encode(o.prompt as string);
    const rows = await model.logits(tokens);
    if (o.json) {
      // one row per position, written row by row: a 128k vocabulary makes long lines
      out(`{"tokens":${JSON.stringify(tokens)},"logits":[`);
      rows.forEach((r, i) => out(`${i ? ',' : ''}[${Array.from(r).join(',')}]`));
      out(']}\n');
      return;
    }
    const tok = model.tokenizer;
    rows.forEach((r, i) => {
      const p = softmax(r);
      const best = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]!).slice(0, top);
      out(`${String(i).padStart(4)} ${JSON.stringify(tok.piece(tokens[i]!)).padEnd(14)} -> ${best.map((b) => `${JSON.stringify(tok.piece(b))} ${r[b]!.toFixed(3)} (${(p[b]! * 100).toFixed(1)}%)`).join('  ')}\n`);
    });
  } finally {
    model.dispose();
  }
}

async function graph(argv: string[]) {
  const o = parse('graph', argv, { plan: { type: 'boolean' }, wgsl: { type: 'boolean' } });
  if (o.help) return out(HELP.graph + '\n');
  const { model } = await openModel(o);
  try {
    if (o.json) {
      out(JSON.stringify({
        nodes: model.graph.nodes.map((n) => ({ id: n.id, op: n.op.name, srcs: n.srcs.map((s) => s.id), attr: n.attr, shape: n.shape, dtype: n.dtype })),
        wgsl: o.wgsl ? Object.fromEntries([...new Set(model.plan.dispatches.map((d) => d.kernel))].map((k) => [k, toWGSL(model.plan.kernels.get(k)!)])) : undefined,
        dispatches: o.plan ? model.plan.dispatches.map((d) => ({ kernel: d.kernel, node: d.node.id, groups: d.groups, bind: d.bind, uniforms: d.uniforms })) : undefined,
      }) + '\n');
    } else {
      out(model.graph.toString());
      if (o.plan) out('\n' + model.plan.toString());
      if (o.wgsl) for (const k of new Set(model.plan.dispatches.map((d) => d.kernel))) out('\n' + toWGSL(model.plan.kernels.get(k)!));
    }
  } finally {
    model.dispose();
  }
}

async function synth(argv: string[]) {
  const o = parse('synth', argv, {
    preset: { type: 'string' }, dtype: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, arch: { type: 'string' },
  });
  if (o.help) return out(HELP.synth!.replace('${PRESET_NAMES}', Object.keys(PRESETS).join(', ')).replace('${ARCH_NAMES}', Object.keys(FAMILIES).join(', ')) + '\n');
  if (typeof o.preset !== 'string' || typeof o.dtype !== 'string' || typeof o.out !== 'string')
    throw new UsageError("synth needs --preset, --dtype and --out (see 'tapir synth --help')");
  const seed = int(o.seed, '--seed', 0, 0);
  const arch = (o.arch ?? 'llama') as string;
  if (!(arch in FAMILIES)) throw new UsageError(`unknown --arch '${arch}' (architectures: ${Object.keys(FAMILIES).join(', ')})`);
  const m = synthModel(o.preset, o.dtype as DType, seed, arch as FamilyName);
  const bar = progressBar(`synth ${arch} ${o.preset} ${o.dtype}`, m.tensors.length);
  const t0 = performance.now();
  writeSynthGGUF(m, o.out, (i) => bar.update(i + 1));
  bar.done();
  const bytes = fs.statSync(o.out).size;
  if (o.json) out(JSON.stringify({ out: o.out, arch, preset: o.preset, dtype: o.dtype, seed, bytes, tensors: m.tensors.length + (m.config.ropeFactors ? 1 : 0), vocab: m.vocab.pieces.length, seconds: +((performance.now() - t0) / 1000).toFixed(2) }) + '\n');
  else out(`wrote ${o.out} (${(bytes / 2 ** 20).toFixed(1)} MiB, ${arch} ${o.preset}, ${o.dtype}, seed ${seed})\n`);
}

async function compileCmd(argv: string[]) {
  const o = parse('compile', argv, {
    svg: { type: 'string' }, ir: { type: 'string' }, wgsl: { type: 'string' }, 'no-fuse': { type: 'boolean' },
    'disable-rule': { type: 'string', multiple: true }, 'dump-after': { type: 'string' },
  }) as Record<string, string | boolean | string[] | undefined>;
  if (o.help) {
    return out(HELP.compile!.replace('${RULE_NAMES}', OPSET.rules.map((r) => r.name).join(', ')).replace('${PASS_NAMES}', PASSES.map((p) => p.name).join(', ')) + '\n');
  }
  const file = typeof o.model === 'string' ? o.model : defaultModel();
  const src = loadModelSource(file, { tokenizer: o.tokenizer as string | undefined });
  const contextLength = o.context === undefined ? Math.min(src.config.contextLength, DEFAULT_CONTEXT_CAP) : int(o.context as string, '--context', 1, 0);
  if (contextLength > src.config.contextLength) throw new UsageError(`--context ${contextLength} is more than the model's ${src.config.contextLength}`);
  const config = { ...src.config, contextLength };
  const graph = llama(config, (n) => src.weights.get(n)?.dtype ?? 'f32');
  // no GPU needed: plan for WebGPU's default binding limit
  const opts = { fuse: !o['no-fuse'], disableRules: (o['disable-rule'] as string[] | undefined) ?? [], dumpAfter: o['dump-after'] as string | undefined };
  const t = target({ maxBindingBytes: 128 << 20 });
  const c = compile(graph, OPSET, t, opts);
  const plan = c.plan!;
  const r = report(plan);
  if (typeof o.ir === 'string') fs.writeFileSync(o.ir, c.graph.toString());
  if (typeof o.wgsl === 'string') {
    fs.mkdirSync(o.wgsl, { recursive: true });
    for (const [name, code] of c.wgsl!) {
      const nodes = plan.dispatches.filter((d) => d.kernel === name).map((d) => d.node);
      const fused = [...new Set(nodes.map((n) => fusedOps(n).join(' + ')))].join('; ');
      fs.writeFileSync(path.join(o.wgsl, `${name.replace(/\+/g, '__')}.wgsl`), `// fuses: ${fused}\n${code}`);
    }
  }
  if (typeof o.svg === 'string') {
    const before = compile(graph, OPSET, t, { ...opts, fuse: false });
    fs.writeFileSync(o.svg, await toSvg(toDot(c.graph, plan, `${path.basename(file)}: ${r.dispatches} dispatches per token (${r.dispatchesPerLayer} per layer)`)));
    fs.writeFileSync(o.svg.replace(/(\.svg)?$/, '.before.svg'), await toSvg(toDot(before.graph, before.plan, `${path.basename(file)} before fusion: ${before.plan!.dispatches.length} dispatches per token`)));
  }
  if (c.dump) out(c.dump);
  if (o.json) out(JSON.stringify({ model: file, fused: !o['no-fuse'], rulesFired: c.fired, ...r }) + '\n');
  else if (!c.dump) {
    out(`${r.dispatches} dispatches per token (${r.dispatchesPerLayer} per layer, ${r.layers} layers), ${r.kernels.length} kernels\n`);
    for (const b of r.byPosition.slice(1)) out(`  from position ${b.from}: ${b.dispatches} dispatches per token (${b.dispatchesPerLayer} per layer)\n`);
    out(`weights read per token: ${(r.weightBytesPerToken / 2 ** 20).toFixed(2)} MiB; activations: ${r.activationBytes} B (${r.activationBytesWithoutReuse} B without buffer reuse)\n`);
    out(`rules fired: ${Object.entries(c.fired).map(([k, v]) => `${k}×${v}`).join(', ') || 'none'}\n`);
  }
}

async function hooks(argv: string[]) {
  const o = parse('hooks', argv, {});
  if (o.help) return out(HELP.hooks + '\n');
  const file = typeof o.model === 'string' ? o.model : defaultModel();
  const src = loadModelSource(file, { tokenizer: o.tokenizer as string | undefined });
  const graph = llama({ ...src.config, contextLength: Math.min(src.config.contextLength, 16) });
  const list = Object.entries(graph.hooks).map(([name, h]) => ({ name, shape: h.shape }));
  if (o.json) out(JSON.stringify(list) + '\n');
  else for (const h of list) out(`${h.name.padEnd(32)} [batch, pos, ${h.shape.join(', ')}]\n`);
}

async function cache(argv: string[]) {
  const o = parse('cache', argv, { prompt: { type: 'string', short: 'p' }, hooks: { type: 'string' }, out: { type: 'string' } });
  if (o.help) return out(HELP.cache + '\n');
  if (typeof o.prompt !== 'string' || typeof o.hooks !== 'string' || typeof o.out !== 'string')
    throw new UsageError("cache needs -p PROMPT, --hooks SELECTOR and --out FILE (see 'tapir cache --help')");
  const { model } = await openModel(o);
  try {
    const tokens = model.tokenizer.encode(o.prompt);
    const { cache } = await model.runWithCache(tokens, { hooks: o.hooks });
    const tensors = [...cache].map(([name, e]) => ({ name, dtype: 'f32' as const, shape: e.shape, bytes: new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength) }));
    const file = o.out;
    writeAtomically(file, (fd) => { fs.writeSync(fd, writeSafetensors(tensors, { model: model.file, tokens: JSON.stringify(tokens) })); });
    if (o.json) out(JSON.stringify({ out: file, tokens, hooks: [...cache].map(([name, e]) => ({ name, shape: e.shape })) }) + '\n');
    else out(`wrote ${cache.size} hook(s) over ${tokens.length} positions to ${file}\n`);
  } finally {
    model.dispose();
  }
}

/** A PIECE names one vocabulary entry exactly as written there (or --target-id gives the id). */
function targetOf(model: Model, piece: unknown, id: unknown): number | undefined {
  if (piece !== undefined && id !== undefined) throw new UsageError('give --target or --target-id, not both');
  if (id !== undefined) return int(id as string, '--target-id', 0, 0);
  return piece === undefined ? undefined : pieceId(model.tokenizer, String(piece), 'the piece');
}

async function lens(argv: string[]) {
  const o = parse('lens', argv, { prompt: { type: 'string', short: 'p' }, target: { type: 'string' }, 'target-id': { type: 'string' }, top: { type: 'string' }, svg: { type: 'string' } });
  if (o.help) return out(HELP.lens + '\n');
  if (typeof o.prompt !== 'string') throw new UsageError("lens needs -p PROMPT (see 'tapir lens --help')");
  const top = int(o.top, '--top', 1, 5);
  const { model } = await openModel(o);
  try {
    const target = targetOf(model, o.target, o['target-id']);
    const r = await logitLens(model, model.tokenizer.encode(o.prompt), { target, top });
    if (typeof o.svg === 'string') {
      const cell = (c: LensCell) => c.target ? c.target.prob : c.top[0]!.prob;
      fs.writeFileSync(o.svg, heatmapSvg({
        title: `logit lens${r.target ? ` — P(${JSON.stringify(r.target.piece)})` : ' — top token and its probability'}`,
        rows: r.layers.map((l) => l.hook.replace('.hook_resid_post', '')),
        cols: r.pieces,
        values: r.layers.map((l) => l.cells.map(cell)),
        labels: r.layers.map((l) => l.cells.map((c) => c.top[0]!.piece)),
        tooltips: r.layers.map((l) => l.cells.map((c) => c.top.map((t) => `${JSON.stringify(t.piece)} ${(100 * t.prob).toFixed(1)}%`).join('\n') +
          (c.target ? `\ntarget rank ${c.target.rank}, ${(100 * c.target.prob).toFixed(2)}%` : '') + `\nKL to final ${c.kl.toFixed(3)}`)),
      }));
    }
    if (o.json) out(JSON.stringify({ tokens: r.tokens, pieces: r.pieces, target: r.target, layers: r.layers }) + '\n');
    else {
      out(`position:  ${r.pieces.map((p) => JSON.stringify(p).padEnd(12)).join(' ')}\n`);
      for (const l of r.layers) out(`${l.hook.replace('.hook_resid_post', '').padEnd(9)}  ${l.cells.map((c) => `${JSON.stringify(c.top[0]!.piece)} ${(c.top[0]!.prob * 100).toFixed(0)}%`.padEnd(12)).join(' ')}\n`);
    }
  } finally {
    model.dispose();
  }
}

async function explainCmd(argv: string[]) {
  const o = parse('explain', argv, {
    prompt: { type: 'string', short: 'p' }, answer: { type: 'string' }, 'answer-id': { type: 'string' }, alternative: { type: 'string' }, 'alternative-id': { type: 'string' },
    baseline: { type: 'string' }, draws: { type: 'string' }, seed: { type: 'string' }, html: { type: 'string' },
  });
  if (o.help) return out(HELP.explain + '\n');
  if (typeof o.prompt !== 'string') throw new UsageError("explain needs -p PROMPT (see 'tapir explain --help')");
  if (o.answer === undefined && o['answer-id'] === undefined) throw new UsageError("explain needs --answer PIECE (see 'tapir explain --help')");
  const { model } = await openModel(o);
  try {
    const idOf = (piece: unknown, id: unknown, flag: string) => {
      if (piece !== undefined && id !== undefined) throw new UsageError(`give --${flag} or --${flag}-id, not both`);
      return id !== undefined ? int(id as string, `--${flag}-id`, 0, 0) : piece === undefined ? undefined : targetOf(model, piece, undefined);
    };
    const e = await explain(model, model.tokenizer.encode(o.prompt), {
      answer: idOf(o.answer, o['answer-id'], 'answer')!, alternative: idOf(o.alternative, o['alternative-id'], 'alternative'), baseline: idOf(o.baseline, undefined, 'baseline'),
      draws: int(o.draws, '--draws', 1, 20), seed: int(o.seed, '--seed', 0, 0),
    });
    if (typeof o.html === 'string') { const html = explanationHtml(e); writeAtomically(o.html, (fd) => { fs.writeSync(fd, html); }); }
    if (o.json) out(JSON.stringify(e) + '\n');
    else {
      for (const s of e.sentences) out(`${s}\n`);
      out(`\n${'word'.padEnd(16)} ${'occlusion'.padStart(10)} ${'erasure'.padStart(10)}\n`);
      for (const w of e.words) out(`${JSON.stringify(w.text).padEnd(16)} ${w.occlusion.toFixed(3).padStart(10)} ${w.erasure.toFixed(3).padStart(10)}\n`);
    }
  } finally {
    model.dispose();
  }
}

async function patch(argv: string[]) {
  const o = parse('patch', argv, {
    clean: { type: 'string' }, corrupt: { type: 'string' }, target: { type: 'string' }, 'target-id': { type: 'string' },
    distractor: { type: 'string' }, 'distractor-id': { type: 'string' }, sites: { type: 'string' }, svg: { type: 'string' },
  });
  if (o.help) return out(HELP.patch!.replace('${SITES}', Object.keys(SITES).join(', ')) + '\n');
  if (typeof o.clean !== 'string' || typeof o.corrupt !== 'string') throw new UsageError("patch needs --clean and --corrupt (see 'tapir patch --help')");
  const { model } = await openModel(o);
  try {
    const target = targetOf(model, o.target, o['target-id']);
    if (target === undefined) throw new UsageError('patch needs --target PIECE or --target-id N');
    const distractor = targetOf(model, o.distractor, o['distractor-id']);
    const sites = typeof o.sites === 'string' ? o.sites.split(',').map((x) => x.trim()) : ['resid_pre'];
    const r = await patchingReport(model, model.tokenizer.encode(o.clean), model.tokenizer.encode(o.corrupt), { target, distractor, sites });
    if (typeof o.svg === 'string') {
      const maps = r.sites.map((s) => heatmapSvg({
        title: `activation patching: ${s.site} (score = (patched − corrupted) / (clean − corrupted))`,
        rows: s.rows, cols: s.cols, values: s.scores.map((row) => row.map((v) => v ?? NaN)), diverging: true,
        labels: s.scores.map((row) => row.map((v) => (v === null ? '' : v.toFixed(2)))),
        tooltips: s.scores.map((row, i) => row.map((v, j) => `${s.rows[i]} ${s.cols[j]}: score ${v === null ? 'undefined' : v.toFixed(4)}, effect ${s.effects[i]![j]!.toFixed(4)}`)),
      }));
      fs.writeFileSync(o.svg, stackSvgs(maps));
    }
    if (o.json) out(JSON.stringify(r) + '\n');
    else {
      out(`metric: clean ${r.clean.toFixed(4)}, corrupted ${r.corrupted.toFixed(4)}\n`);
      for (const s of r.sites) {
        out(`\n${s.site}: ${s.cols.map((c) => JSON.stringify(c).slice(0, 8).padEnd(8)).join(' ')}\n`);
        s.rows.forEach((row, i) => out(`${row.padEnd(8)} ${s.scores[i]!.map((v) => (v ?? NaN).toFixed(2).padStart(8)).join(' ')}\n`));
      }
    }
  } finally {
    model.dispose();
  }
}

const BENCH_DAWN_OPTIONS = 'enable-dawn-features=disable_robustness,disable_workgroup_init,skip_validation;disable-dawn-features=timestamp_quantization';

async function bench(argv: string[]) {
  const o = parse('bench', argv, { synth: { type: 'string' }, dtype: { type: 'string' }, 'prompt-tokens': { type: 'string' }, 'prefill-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' }, check: { type: 'string' }, taps: { type: 'string' } });
  if (o.help) return out(HELP.bench!.replace('${PRESETS}', Object.keys(PRESETS).join(', ')) + '\n');
  const promptTokens = int(o['prompt-tokens'], '--prompt-tokens', 2, 128), genTokens = int(o['gen-tokens'], '--gen-tokens', 1, 256);
  const prefillTokens = int(o['prefill-tokens'], '--prefill-tokens', 2, promptTokens);
  if (o.synth !== undefined && o.model !== undefined) throw new UsageError('give -m MODEL or --synth PRESET, not both');
  // Dawn toggles for speed that keep results correct (tapir's kernels stay in bounds, its plans are
  // validated in the tests); and unquantized timestamps, so short kernels can be timed at all
  process.env.TAPIR_DAWN_OPTIONS ??= BENCH_DAWN_OPTIONS;
  const t0 = performance.now();
  let src;
  if (typeof o.synth === 'string') {
    const m = synthModel(o.synth, (o.dtype ?? 'f16') as DType, 1);
    src = { config: m.config, vocab: m.vocab, weights: benchWeights(m), file: `synth:${o.synth}:${o.dtype ?? 'f16'}` };
  } else src = loadModelSource(typeof o.model === 'string' ? o.model : defaultModel(), { tokenizer: o.tokenizer as string | undefined });
  // the context a user gets by default (the KV cache's size decides the attention plan)
  const contextLength = o.context === undefined ? Math.min(src.config.contextLength, DEFAULT_CONTEXT_CAP) : int(o.context, '--context', 1, 0);
  if (promptTokens + genTokens > contextLength) throw new UsageError(`--prompt-tokens + --gen-tokens (${promptTokens + genTokens}) is over the context of ${contextLength}`);
  if (prefillTokens > contextLength) throw new UsageError(`--prefill-tokens ${prefillTokens} is over the context of ${contextLength}`);
  const model = await Model.create(src, { contextLength });
  const loadMs = performance.now() - t0;
  try {
    const bars = new Map<string, ReturnType<typeof progressBar>>();
    const check = int(o.check, '--check', 0, 0);
    if (check > promptTokens) throw new UsageError('--check N compares the first N prompt positions: N must be at most --prompt-tokens');
    const r = await benchmark(model, { promptTokens, prefillTokens, genTokens, check, taps: o.taps as string | undefined, progress: (phase, done, total) => {
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
    out(`prefill   ${r.prefill.tokens} tokens in ${r.prefill.ms} ms (median of ${r.prefill.runsMs.join(', ')}): ${r.prefill.tokensPerSecond} tokens/s; matrix products ${r.prefill.matmulTflops} TFLOP/s\n`);
    out(`decode    ${d.tokens} tokens in ${d.ms} ms: ${d.tokensPerSecond} tokens/s (GPU loop, median of ${d.runsTokensPerSecond.join(', ')}; the host encodes a step in ${d.encodeMsPerToken} ms); ${d.hostLoopTokensPerSecond} tokens/s with a host round trip per token\n`);
    out(`per token ${d.dispatchesPerToken} dispatches, ${(d.weightBytesPerToken / 1e6).toFixed(1)} MB of weights + ${(d.kvBytesPerToken / 1e6).toFixed(2)} MB of KV cache` +
      `${d.gpuMsPerToken !== undefined ? `, ${d.gpuMsPerToken} ms GPU time` : ''}: ${d.achievedGBps} GB/s = ${(100 * d.rooflineFraction).toFixed(1)}% of the roofline\n`);
    if (r.tapped) out(`tapped    ${r.tapped.hooks} hooks kept on the GPU each step: ${r.tapped.tokensPerSecond} tokens/s (median of ${r.tapped.runsTokensPerSecond.join(", ")}), ${(100 * r.tapped.ratio).toFixed(1)}% of untapped${r.tapped.sameTokens ? '' : ' (different tokens!)'}\n`);
    if (r.check) out(`check     logits of ${r.check.positions} decode steps vs the float64 reference: max ‖Δ‖/‖ref‖ = ${r.check.maxRelErr.toExponential(2)}\n`);
    if (r.kernelsByTime) out(`kernels   ${r.kernelsByTime.slice(0, 8).map((k) => `${k.kernel}×${k.count} ${k.us} µs`).join(', ')} (each in its own pass)\n`);
  } finally {
    model.dispose();
  }
}

async function attn(argv: string[]) {
  const o = parse('attn', argv, { prompt: { type: 'string', short: 'p' }, layers: { type: 'string' }, svg: { type: 'string' } });
  if (o.help) return out(HELP.attn + '\n');
  if (typeof o.prompt !== 'string') throw new UsageError("attn needs -p PROMPT (see 'tapir attn --help')");
  const layers = typeof o.layers === 'string' ? o.layers.split(',').map((x) => {
    if (!/^\d+$/.test(x.trim())) throw new UsageError(`--layers takes layer numbers, got '${x}'`);
    return Number(x);
  }) : undefined;
  const { model } = await openModel(o);
  try {
    const p = await attentionPatterns(model, model.tokenizer.encode(o.prompt), layers);
    if (typeof o.svg === 'string') { const svg = patternsSvg(p); writeAtomically(o.svg, (fd) => fs.writeSync(fd, svg)); }
    if (o.json) return out(JSON.stringify(p) + '\n');
    for (const { layer, heads } of p.layers)
      heads.forEach((rows, h) => out(`blocks.${layer} head ${h}: ${rows.map((r, q) => `${JSON.stringify(p.pieces[q])}→${JSON.stringify(p.pieces[r.indexOf(Math.max(...r))])}`).join(' ')}\n`));
  } finally {
    model.dispose();
  }
}

async function dla(argv: string[]) {
  const o = parse('dla', argv, { prompt: { type: 'string', short: 'p' }, target: { type: 'string' }, 'target-id': { type: 'string' }, distractor: { type: 'string' }, 'distractor-id': { type: 'string' } });
  if (o.help) return out(HELP.dla + '\n');
  if (typeof o.prompt !== 'string') throw new UsageError("dla needs -p PROMPT (see 'tapir dla --help')");
  const { model } = await openModel(o);
  try {
    const target = targetOf(model, o.target, o['target-id']);
    if (target === undefined) throw new UsageError('dla needs --target PIECE or --target-id N');
    const distractor = targetOf(model, o.distractor, o['distractor-id']);
    const a = await directLogitAttribution(model, model.tokenizer.encode(o.prompt), { target, distractor });
    if (o.json) return out(JSON.stringify({ target: model.tokenizer.piece(target), distractor: distractor === undefined ? undefined : model.tokenizer.piece(distractor), ...a }) + '\n');
    out(`logit difference ${a.metric.toFixed(4)} = sum of the parts below (final norm scale frozen at ${a.scale.toFixed(4)})\n`);
    for (const c of a.components) out(`${c.name.padEnd(16)} ${c.value.toFixed(4).padStart(9)}\n`);
    out('\nper head (attention):\n');
    a.heads.forEach((row, l) => out(`blocks.${l}  ${row.map((v) => v.toFixed(3).padStart(8)).join(' ')}\n`));
  } finally {
    model.dispose();
  }
}

async function sae(argv: string[]) {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') return out(HELP.sae + '\n');
  if (sub === 'collect') {
    const o = parse('sae', rest, { hook: { type: 'string' }, tokens: { type: 'string' }, out: { type: 'string' }, corpus: { type: 'string', multiple: true }, seed: { type: 'string' }, temperature: { type: 'string' }, 'seq-len': { type: 'string' }, 'shard-sequences': { type: 'string' } });
    if (o.help) return out(HELP.sae + '\n');
    if (typeof o.hook !== 'string' || typeof o.out !== 'string' || o.tokens === undefined) throw new UsageError("sae collect needs --hook, --tokens and --out (see 'tapir sae --help')");
    const tokens = int(o.tokens, '--tokens', 1, 0);
    const { model } = await openModel(o);
    try {
      const bar = progressBar('collect', tokens);
      const m = await collect(model, model.file, { hook: o.hook, tokens, out: o.out, corpus: o.corpus as unknown as string[] | undefined, seed: int(o.seed, '--seed', 0, 0),
        temperature: num(o.temperature, '--temperature', 0, 10, 1), seqLen: int(o['seq-len'], '--seq-len', 2, 128), perShard: int(o['shard-sequences'], '--shard-sequences', 1, 64), progress: (d) => bar.update(d) });
      bar.done();
      const rows = m.shards.reduce((n, s) => n + s.rows, 0);
      if (o.json) out(JSON.stringify({ store: o.out, hook: m.hook, dIn: m.dIn, shards: m.shards.length, rows }) + '\n');
      else out(`${o.out}: ${m.shards.length} shards, ${rows} rows of ${m.dIn} at ${m.hook}\n`);
    } finally {
      model.dispose();
    }
    return;
  }
  if (sub === 'train') {
    const o = parse('sae', rest, { store: { type: 'string' }, out: { type: 'string' }, arch: { type: 'string' }, k: { type: 'string' }, latents: { type: 'string' }, steps: { type: 'string' }, batch: { type: 'string' },
      lr: { type: 'string' }, l1: { type: 'string' }, seed: { type: 'string' }, 'checkpoint-every': { type: 'string' } });
    if (o.help) return out(HELP.sae + '\n');
    if (typeof o.store !== 'string' || typeof o.out !== 'string') throw new UsageError("sae train needs --store and --out (see 'tapir sae --help')");
    const arch = (o.arch ?? 'topk') as string;
    if (arch !== 'topk' && arch !== 'relu') throw new UsageError(`--arch must be topk or relu, got '${arch}'`);
    const dIn = readManifest(o.store).dIn;
    const lat = typeof o.latents === 'string' && /^\d+x$/.test(o.latents) ? dIn * Number(o.latents.slice(0, -1)) : int(o.latents, '--latents', 1, dIn * 8);
    const steps = int(o.steps, '--steps', 1, 1000);
    const bar = progressBar('train', steps);
    const r = await trainSae(await getGpu(), {
      store: o.store, out: o.out, arch, k: int(o.k, '--k', 1, 8), dSae: lat, steps, batch: int(o.batch, '--batch', 1, 256), seed: int(o.seed, '--seed', 0, 0),
      hyper: { lr: num(o.lr, '--lr', 0, 1, 3e-4), beta1: 0.9, beta2: 0.999, eps: 1e-8, l1: arch === 'relu' ? num(o.l1, '--l1', 0, 1e6, 5) : 0 },
      checkpointEvery: int(o['checkpoint-every'], '--checkpoint-every', 1, 100), logEvery: Math.max(1, Math.floor(steps / 50)), deadWindow: 100000,
      onLog: (l) => { bar.update(l.step); if (!o.json && !process.stderr.isTTY) process.stderr.write(`step ${l.step}: loss ${l.loss.toFixed(4)} L0 ${l.l0.toFixed(2)} FVU ${l.fvu.toFixed(4)} dead ${(100 * l.deadFraction).toFixed(1)}%\n`); },
    });
    bar.done();
    saveSaeLens(o.out, { dims: r.dims, params: r.params, inputScale: r.scale, hook: r.hook, model: r.model });
    const last = r.log[r.log.length - 1];
    if (o.json) out(JSON.stringify({ out: o.out, steps: r.step, inputScale: r.scale, last, log: r.log }) + '\n');
    else out(`${o.out}: ${r.dims.arch} SAE, ${r.dims.dIn} -> ${r.dims.dSae}, ${r.step} steps; last: loss ${last?.loss.toFixed(4)} L0 ${last?.l0.toFixed(2)} FVU ${last?.fvu.toFixed(4)}\n`);
    return;
  }
  if (sub === 'eval') {
    const o = parse('sae', rest, { sae: { type: 'string' }, store: { type: 'string' }, sequences: { type: 'string' } });
    if (o.help) return out(HELP.sae + '\n');
    if (typeof o.sae !== 'string' || typeof o.store !== 'string') throw new UsageError("sae eval needs --sae and --store (see 'tapir sae --help')");
    const model = (await openModel(o)).model;
    try {
      const s = loadSaeLens(o.sae);
      const seqs = int(o.sequences, '--sequences', 0, 32);
      const bar = progressBar('eval', seqs);
      const r = await evalSae(await getGpu(), s, o.store, { model, sequences: seqs, progress: (d) => bar.update(d) });
      bar.done();
      if (o.json) return out(JSON.stringify(r) + '\n');
      out(`held-out tokens ${r.tokens}: L0 ${r.l0.toFixed(2)}, FVU ${r.fvu.toFixed(4)}, dead ${(100 * r.deadFraction).toFixed(1)}%\n`);
      if (r.ce) out(`CE (nats, ${r.ce.sequences} sequences): clean ${r.ce.clean.toFixed(4)}, with the SAE ${r.ce.sae.toFixed(4)}, zero-ablated ${r.ce.zero.toFixed(4)}; recovered ${r.ce.recovered.toFixed(4)}\n`);
      out('log10 density  latents\n');
      for (const b of r.densityHistogram) out(`${b.from.toFixed(1).padStart(5)}..${b.to.toFixed(1).padStart(4)}  ${'#'.repeat(Math.min(60, b.count))} ${b.count}\n`);
    } finally {
      model.dispose();
    }
    return;
  }
  if (sub === 'features') {
    const o = parse('sae', rest, { sae: { type: 'string' }, store: { type: 'string' }, html: { type: 'string' }, latents: { type: 'string' } });
    if (o.help) return out(HELP.sae + '\n');
    if (typeof o.sae !== 'string' || typeof o.store !== 'string' || typeof o.html !== 'string') throw new UsageError("sae features needs --sae, --store and --html (see 'tapir sae --help')");
    const model = (await openModel(o)).model;
    try {
      const s = loadSaeLens(o.sae);
      const latents = typeof o.latents === 'string' ? parseTokenList(o.latents) : undefined;
      if (latents?.some((j) => j >= s.dims.dSae)) throw new UsageError(`--latents must be below ${s.dims.dSae}`);
      const cards = await featureCards(await getGpu(), s, o.store, model, latents ? { latents } : {});
      const html = featuresHtml(cards, `${s.hook ?? 'SAE'}: ${s.dims.dSae} latents`);
      writeAtomically(o.html, (fd) => { fs.writeSync(fd, html); });
      if (o.json) out(JSON.stringify({ html: o.html, latents: cards.length, dead: cards.filter((c) => c.density === 0).length }) + '\n');
      else out(`wrote ${cards.length} feature dashboards to ${o.html}\n`);
    } finally {
      model.dispose();
    }
    return;
  }
  throw new UsageError(`unknown sae command '${sub}' (collect, train, eval, features)`);
}

async function serve(argv: string[]) {
  const o = parse('serve', argv, { port: { type: 'string' }, host: { type: 'string' }, sae: { type: 'string' }, 'sae-store': { type: 'string' } });
  if (o.help) return out(HELP.serve + '\n');
  const port = int(o.port, '--port', 0, 8177);
  if (port > 65535) throw new UsageError('--port must be at most 65535');
  const host = typeof o.host === 'string' ? o.host : '127.0.0.1';
  if (o['sae-store'] !== undefined && o.sae === undefined) throw new UsageError('--sae-store goes with --sae');
  const sae = typeof o.sae === 'string' ? loadSaeLens(o.sae) : undefined;
  if (typeof o['sae-store'] === 'string') readManifest(o['sae-store']);
  const { model } = await openModel(o);
  const file = model.file;
  try {
    if (sae && (!sae.hook || !model.hookNames.includes(sae.hook))) throw new UsageError(`the SAE's hook '${sae.hook ?? '(none)'}' is not a hook of this model`);
    const graphSvg = graphPictures(model, file);
    const viewer = await startServer({ model, modelFile: file, host, port, assets: path.join(repoRoot, 'dist/page'), graphSvg, sae, saeStore: o['sae-store'] as string | undefined });
    if (o.json) out(JSON.stringify({ url: viewer.url, exposed: viewer.exposed }) + '\n');
    else out(`tapir viewer: ${viewer.url}${viewer.exposed ? `  (listening on ${host}: reachable from the network)` : ''}\nCtrl-C to stop\n`);
    await new Promise<void>((resolve) => { process.once('SIGINT', resolve); process.once('SIGTERM', resolve); });
    await viewer.close();
  } finally {
    model.dispose();
  }
}

const COMMANDS: Record<string, (argv: string[]) => Promise<void>> = { serve, sae, lens, explain: explainCmd, patch, attn, dla, bench, generate, logits, graph, synth, compile: compileCmd, hooks, cache };

/** Runs a command; returns the exit code. Always releases the GPU so the process can exit. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      out(HELP.main + '\n');
      return cmd ? 0 : 2;
    }
    const run = COMMANDS[cmd];
    if (!run) throw new UsageError(`unknown command '${cmd}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
    await run(rest);
    return 0;
  } catch (e) {
    if (e instanceof TapirError) {
      process.stderr.write(`tapir: error: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`tapir: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  } finally {
    await releaseGpu();
  }
}
