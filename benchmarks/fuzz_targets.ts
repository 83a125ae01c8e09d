// What the fuzzer feeds and what it calls: base files per format, seeded mutations, and the loader
// path a model file takes up to (not including) the GPU — parse, config, tensor table, tokenizer,
// graph, and reading and dequantizing every weight.
import fs from 'node:fs';
import path from 'node:path';
import { TapirError } from '../compiler/errors.js';
import { llama } from '../models/llama.js';
import { dequantize } from '../ops/dequant.js';
import { parseGGUF } from '../runtime/formats/gguf.js';
import { writeGGUF, type GGUFWriteValue } from '../runtime/formats/gguf_write.js';
import { hfConfigFor, hfFromParts, hfName, parseJsonObject, tokenizerJsonFor } from '../runtime/formats/hf_llama.js';
import { llamaFromGGUF } from '../runtime/formats/llama_gguf.js';
import { llamaMetadata } from '../runtime/formats/llama_gguf_write.js';
import { parseLlama2c, parseLlama2cTokenizer } from '../runtime/formats/llama2c.js';
import { writeSafetensors } from '../runtime/formats/safetensors.js';
import { memorySource } from '../runtime/formats/source.js';
import { modelsDir } from '../runtime/node/load.js';
import { synthModel, synthWeights } from '../runtime/synth/synth.js';
import { makeTokenizer } from '../runtime/tokenizer.js';
import { dtypesOf, type ModelSource } from '../runtime/model.js';
import { GGML_TYPE_ID } from '../ops/dequant.js';

export const FORMATS = ['gguf', 'llama2c', 'safetensors'] as const;
/** `selftest` fails on purpose (a crash, a hang, a runaway allocation, in turn): it shows the harness
 *  notices each kind of failure. */
export type Format = (typeof FORMATS)[number] | 'selftest';
export type Outcome = 'ok' | 'rejected';

/** A seeded xorshift for mutations. */
export function rng(seed: number) {
  // murmur3's finalizer, so neighbouring case numbers start far apart
  let s = Math.imul(seed ^ (seed >>> 16), 0x85ebca6b);
  s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35);
  s = (s ^ (s >>> 16)) | 1;
  const next = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296; };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}
type Rng = ReturnType<typeof rng>;

const INTERESTING = [0n, 1n, 2n, 3n, 31n, 32n, 33n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n,
  2n ** 53n, 2n ** 62n, 2n ** 63n, 2n ** 64n - 1n];

/** Random damage: bit flips, interesting integers, truncation, splices; biased to the header. */
export function mutate(base: Uint8Array, r: Rng, headerBytes: number): Uint8Array {
  let b = base.slice();
  const pos = () => (r.next() < 0.8 ? r.int(Math.max(1, Math.min(headerBytes, b.length))) : r.int(Math.max(1, b.length)));
  const rounds = 1 + r.int(4);
  for (let k = 0; k < rounds; k++) {
    const kind = r.int(7);
    if (kind === 0) for (let i = 1 + r.int(8); i > 0; i--) { const p = pos(); b[p] = b[p]! ^ (1 << r.int(8)); }
    else if (kind === 1) { const p = pos(); b[p] = r.pick([0, 0xff, 0x7f, 0x80, 0x01]); }
    else if (kind === 2 && b.length >= 8) {
      const p = Math.min(pos(), b.length - 8), v = r.pick(INTERESTING);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      if (r.next() < 0.5) dv.setBigUint64(p, BigInt.asUintN(64, v), true); else dv.setUint32(p, Number(BigInt.asUintN(32, v)), true);
    } else if (kind === 3) b = b.slice(0, r.int(b.length + 1));
    else if (kind === 4 && b.length > 16) { // duplicate a chunk in place
      const a = pos(), n = 1 + r.int(64), to = pos();
      b.copyWithin(to, a, Math.min(b.length, a + n));
    } else if (kind === 5 && b.length > 16) { // delete a chunk
      const a = pos(), n = 1 + r.int(64);
      b = Uint8Array.from([...b.subarray(0, a), ...b.subarray(Math.min(b.length, a + n))]);
    } else { const p = pos(); b[p] = r.int(256); }
  }
  return b;
}

/** The whole path from bytes to a model ready for the GPU. */
export function assemble(src: ModelSource): void {
  const graph = llama(src.config, dtypesOf(src.weights));
  for (const n of graph.nodes) {
    if (n.op.name !== 'weight') continue;
    const w = src.weights.get(String(n.attr.name));
    if (!w) throw new TapirError(`missing tensor ${String(n.attr.name)}`);
    if (w.shape.join() !== n.shape.join()) throw new TapirError(`tensor ${String(n.attr.name)} has the wrong shape`);
    dequantize(w.dtype, w.bytes, n.size);
  }
  const tok = makeTokenizer(src.vocab);
  tok.decode(tok.encode('Once upon a time, 123 café 🦙'));
}

// ---- base files --------------------------------------------------------------------------------

function ggufOf(m: ReturnType<typeof synthModel>): Uint8Array {
  const w = synthWeights(m);
  return writeGGUF(llamaMetadata(m.config, m.vocab), [...w].map(([name, t]) => ({ name, dims: [...t.shape].reverse(), type: GGML_TYPE_ID[t.dtype]!, data: t.bytes })));
}

/** Structured damage the random mutator rarely finds: GGUF files built wrong on purpose. */
function structuredGGUF(r: Rng): Uint8Array {
  const str = (value: string): GGUFWriteValue => ({ type: 'string', value });
  const t = (name: string, dims: (number | bigint)[], type = 0, data = new Uint8Array(64)) => ({ name, dims, type, data });
  const cases: (() => Uint8Array)[] = [
    () => writeGGUF([['general.alignment', { type: 'u32', value: r.pick([0, 3, 7, 2 ** 31, 2 ** 32 - 1]) }]], [t('a', [16])]),
    () => writeGGUF([], [t('a', [16]), t('a', [16])]),
    () => writeGGUF([['general.architecture', str('llama')], ['general.architecture', str('llama')]], []),
    () => writeGGUF([], [t('a', [BigInt(r.pick(INTERESTING.map(Number))) || 1n, BigInt(r.pick(INTERESTING.map(Number))) || 1n])]),
    () => writeGGUF([], [t('a', [16], r.int(64))]),
    () => writeGGUF([], [t('a', Array.from({ length: r.int(12) }, () => 1 + r.int(4)))]),
    () => { const b = writeGGUF([[`k${r.int(9)}`, str('v'.repeat(r.int(40)))]], []); new DataView(b.buffer).setBigUint64(24, r.pick(INTERESTING), true); return b; },
    () => { const b = writeGGUF([], []); new DataView(b.buffer).setBigUint64(r.pick([8, 16]), r.pick(INTERESTING), true); return b; },
    () => writeGGUF([['a', { type: 'array', elem: 'string', value: Array.from({ length: r.int(50) }, (_, i) => String(i)) }]], []),
  ];
  return r.pick(cases)();
}

export interface Target { name: Format; run(r: Rng): Outcome }

/** Each format's target, built on demand (only the base files that format needs). */
export function makeTarget(format: Format): Target {
  const selftest: Target = {
    name: 'selftest',
    run(r) {
      const kind = r.int(4);
      if (kind === 0) throw new TypeError('a crash, on purpose');
      if (kind === 1) for (;;) { /* a hang, on purpose */ }
      const hog: unknown[] = [];
      // out of memory, on purpose: on the JS heap, or in buffers outside it
      if (kind === 2) for (;;) hog.push(new Array(1 << 16).fill(kind));
      for (;;) hog.push(new Uint8Array(1 << 24).fill(1));
    },
  };
  if (format === 'selftest') return selftest;
  const models = modelsDir();
  const file = (name: string) => new Uint8Array(fs.readFileSync(path.join(models, name)));
  const outcome = (f: () => void): Outcome => {
    try { f(); return 'ok'; } catch (e) { if (e instanceof TapirError) return 'rejected'; throw e; }
  };
  if (format === 'gguf') {
    const stories = file('stories260K.gguf');
    const tinyQ4 = ggufOf(synthModel('tiny', 'q4_0', 1));
    const tinyQ8 = ggufOf(synthModel('tiny', 'q8_0', 2));
    return {
      name: 'gguf',
      run(r) {
        const bytes = r.next() < 0.15 ? structuredGGUF(r) : mutate(r.pick([stories, tinyQ4, tinyQ8]), r, 16384);
        return outcome(() => {
          const g = parseGGUF(bytes, 'fuzz.gguf');
          assemble({ ...llamaFromGGUF(g, memorySource(bytes), 'fuzz.gguf'), file: 'fuzz.gguf' });
        });
      },
    };
  }
  if (format === 'llama2c') {
    const bin = file('stories260K.bin');
    const tok = file('tok512.bin');
    return {
      name: 'llama2c',
      run(r) {
        const damageModel = r.next() < 0.6;
        const b = damageModel ? mutate(bin, r, 256) : bin;
        const t = damageModel ? tok : mutate(tok, r, tok.length);
        return outcome(() => {
          const { config, weights } = parseLlama2c(memorySource(b), 'fuzz.bin');
          assemble({ config, weights, vocab: parseLlama2cTokenizer(t, 'fuzz-tok.bin', config.vocabSize), file: 'fuzz.bin' });
        });
      },
    };
  }
  const hfModel = synthModel('tiny', 'f16', 3);
  const st = writeSafetensors([...synthWeights(hfModel)].map(([name, w]) => ({ name: hfName(name) ?? name, dtype: w.dtype as 'f16', shape: w.shape, bytes: w.bytes })));
  const cfgText = new TextEncoder().encode(JSON.stringify(hfConfigFor(hfModel.config, hfModel.vocab, 'f16')));
  const tokText = new TextEncoder().encode(JSON.stringify(tokenizerJsonFor(hfModel.vocab)));
  return {
      name: 'safetensors',
      run(r) {
        const which = r.next();
        const s = which < 0.7 ? mutate(st, r, 8 + Number(new DataView(st.buffer).getBigUint64(0, true))) : st;
        const c = which >= 0.7 && which < 0.85 ? mutate(cfgText, r, cfgText.length) : cfgText;
        const k = which >= 0.85 ? mutate(tokText, r, tokText.length) : tokText;
        return outcome(() => {
          assemble({ ...hfFromParts({
            config: parseJsonObject(c, 'config.json'), configFile: 'config.json',
            tokenizer: parseJsonObject(k, 'tokenizer.json'), tokenizerFile: 'tokenizer.json',
            shards: [{ file: 'model.safetensors', src: memorySource(s) }], dir: 'fuzz',
          }), file: 'fuzz' });
        });
      },
  };
}
