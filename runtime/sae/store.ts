// The activation store: a directory of shards, each the values of one hook at every position of a few
// token sequences, and a manifest. Shard k is `shard-0000k.f32` (little-endian f32 [rows, d_in], row
// = one position) beside `shard-0000k.json` (the token sequences, for evaluation in context). Every
// tenth shard (k % 10 = 9) is held out. Files are written atomically and the manifest last, so a killed
// collection resumes from its last whole shard, and the sequences' seeds depend only on their index:
// the resumed store equals an uninterrupted one.
import fs from 'node:fs';
import path from 'node:path';
import { FormatError, UsageError } from '../../compiler/errors.js';
import { writeAtomically } from '../node/write_file.js';
import type { Model } from '../model.js';

export const STORE_FORMAT = 'tapir-activations/1';
export interface ShardInfo { file: string; rows: number; sequences: number }
export interface StoreManifest {
  format: typeof STORE_FORMAT;
  model: string;
  hook: string;
  dIn: number;
  /** how the sequences were made: sampled from the model (seed, temperature) or cut from a corpus */
  source: { kind: 'sampled'; seed: number; temperature: number; maxTokens: number } | { kind: 'corpus'; files: string[]; seqLen: number };
  shards: ShardInfo[];
  /** the shards held out for evaluation; stores without the field hold out every tenth (k % 10 = 9) */
  heldOut?: number[];
}
/** Whether shard k of a store is held out: every tenth, and in a store of fewer than ten its last. */
export const isHeldOut = (k: number, m?: Pick<StoreManifest, 'heldOut'>) => (m?.heldOut ? m.heldOut.includes(k) : k % 10 === 9);

const writeJson = (file: string, v: unknown) => writeAtomically(file, (fd) => { fs.writeSync(fd, JSON.stringify(v, null, 1)); });

export function readManifest(dir: string): StoreManifest {
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(file)) throw new UsageError(`${dir} is not an activation store (no manifest.json)`);
  let m: StoreManifest;
  try { m = JSON.parse(fs.readFileSync(file, 'utf8')) as StoreManifest; } catch (e) { throw new FormatError(file, `not JSON (${(e as Error).message})`); }
  if (m.format !== STORE_FORMAT) throw new FormatError(file, `format '${String(m.format)}', expected '${STORE_FORMAT}'`);
  if (!Number.isInteger(m.dIn) || m.dIn < 1 || !Array.isArray(m.shards)) throw new FormatError(file, 'd_in or the shard list is missing');
  return m;
}

/** Rows of shard k, checked against the manifest (its size must be rows × d_in × 4 bytes). */
export function readShard(dir: string, m: StoreManifest, k: number): { x: Float32Array; tokens: number[][] } {
  const s = m.shards[k]!;
  const file = path.join(dir, s.file);
  const bytes = fs.readFileSync(file);
  if (bytes.byteLength !== s.rows * m.dIn * 4) throw new FormatError(file, `${bytes.byteLength} bytes, but the manifest says ${s.rows} rows of ${m.dIn} f32 (${s.rows * m.dIn * 4} bytes)`);
  const tokens = JSON.parse(fs.readFileSync(file.replace(/\.f32$/, '.json'), 'utf8')) as number[][];
  if (tokens.reduce((n, t) => n + t.length, 0) !== s.rows) throw new FormatError(file, 'its token sequences do not add up to its rows');
  return { x: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), tokens };
}

/** Every row of the training (or held-out) shards, in order. */
export function readSplit(dir: string, m: StoreManifest, heldOut: boolean): { x: Float32Array; rows: number; tokens: number[][] } {
  const parts = m.shards.map((_, k) => k).filter((k) => isHeldOut(k, m) === heldOut).map((k) => readShard(dir, m, k));
  const rows = parts.reduce((n, p) => n + p.x.length / m.dIn, 0);
  const x = new Float32Array(rows * m.dIn);
  let at = 0;
  for (const p of parts) { x.set(p.x, at); at += p.x.length; }
  return { x, rows, tokens: parts.flatMap((p) => p.tokens) };
}

export interface CollectOptions {
  hook: string;
  /** rows wanted in all, the held-out ones included (the last shard may take it past) */
  tokens: number;
  out: string;
  corpus?: string[];
  seed?: number;
  temperature?: number;
  /** longest sampled sequence (BOS included) / corpus sequence length */
  seqLen?: number;
  /** sequences a shard */
  perShard?: number;
  progress?: (done: number, total: number) => void;
}

/** Fill (or resume) an activation store from the model at one hook. */
export async function collect(model: Model, modelName: string, o: CollectOptions): Promise<StoreManifest> {
  if (!model.hookNames.includes(o.hook)) throw new UsageError(`unknown hook '${o.hook}' (see tapir hooks)`);
  const dIn = model.graph.hooks[o.hook]!.node.size;
  const seqLen = Math.min(o.seqLen ?? 128, model.contextLength);
  const perShard = o.perShard ?? 64;
  const source: StoreManifest['source'] = o.corpus
    ? { kind: 'corpus', files: o.corpus.map((f) => path.resolve(f)), seqLen }
    : { kind: 'sampled', seed: o.seed ?? 0, temperature: o.temperature ?? 1, maxTokens: seqLen };
  fs.mkdirSync(o.out, { recursive: true });
  let m: StoreManifest = { format: STORE_FORMAT, model: modelName, hook: o.hook, dIn, source, shards: [] };
  if (fs.existsSync(path.join(o.out, 'manifest.json'))) {
    const old = readManifest(o.out);
    if (old.hook !== o.hook || old.dIn !== dIn || JSON.stringify(old.source) !== JSON.stringify(source))
      throw new UsageError(`${o.out} holds a store made differently (hook ${old.hook}, ${JSON.stringify(old.source)}): use another --out`);
    m = old;
  }
  // the corpus, cut into sequences of seqLen tokens (BOS first)
  const corpus: number[][] = [];
  if (o.corpus) {
    for (const f of o.corpus) {
      if (!fs.existsSync(f)) throw new UsageError(`corpus file ${f} does not exist`);
      const ids = model.tokenizer.encode(fs.readFileSync(f, 'utf8'), { bos: false });
      for (let i = 0; i + seqLen - 1 <= ids.length; i += seqLen - 1) corpus.push([model.tokenizer.vocab.bos, ...ids.slice(i, i + seqLen - 1)]);
    }
    if (corpus.length === 0) throw new UsageError(`the corpus has fewer than ${seqLen} tokens`);
  }
  // what is asked, held-out rows included: every tenth shard is held out, and a store that ends with
  // fewer holds out its last (so there are at least two shards)
  const collected = () => m.shards.reduce((n, s) => n + s.rows, 0);
  while (collected() < o.tokens || m.shards.length < 2) {
    const k = m.shards.length;
    // sequence i of the store: corpus piece i, or the story sampled with seed (seed·1000003 + i), all of
    // a shard's stories sampled together
    const index = Array.from({ length: perShard }, (_, s) => k * perShard + s);
    const seqs = source.kind === 'corpus' ? index.map((i) => corpus[i % corpus.length]!)
      : (await model.sampleBatch(index.map((i) => source.seed * 1000003 + i), seqLen, source.temperature)).filter((t) => t.length > 0);
    const rows: Float32Array[] = [];
    for (const t of seqs) rows.push((await model.runWithCache(t, { hooks: o.hook })).cache.get(o.hook)!.data);
    const x = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
    let at = 0;
    for (const r of rows) { x.set(r, at); at += r.length; }
    const file = `shard-${String(k).padStart(5, '0')}.f32`;
    writeAtomically(path.join(o.out, file), (fd) => { fs.writeSync(fd, new Uint8Array(x.buffer)); });
    writeJson(path.join(o.out, file.replace(/\.f32$/, '.json')), seqs);
    const shards = [...m.shards, { file, rows: x.length / dIn, sequences: seqs.length }];
    const last = collected() + x.length / dIn >= o.tokens && shards.length >= 2;
    const held = shards.map((_, j) => j).filter((j) => j % 10 === 9);
    m = { ...m, shards, heldOut: held.length || !last ? held : [shards.length - 1] };
    writeJson(path.join(o.out, 'manifest.json'), m);
    o.progress?.(Math.min(collected(), o.tokens), o.tokens);
  }
  return m;
}

/** A store from rows already in hand (e.g. synthetic data, or activations made elsewhere): one shard per
 *  `perShard` rows, each row its own one-token "sequence" (token 0), every tenth shard held out. */
export function writeStoreFromRows(dir: string, x: Float32Array, dIn: number, o: { model?: string; hook?: string; perShard?: number } = {}): StoreManifest {
  const rows = x.length / dIn, per = o.perShard ?? 1024;
  fs.mkdirSync(dir, { recursive: true });
  const m: StoreManifest = { format: STORE_FORMAT, model: o.model ?? 'external', hook: o.hook ?? 'external', dIn, source: { kind: 'corpus', files: [], seqLen: 1 }, shards: [] };
  for (let k = 0; k * per < rows; k++) {
    const part = x.subarray(k * per * dIn, Math.min(rows, (k + 1) * per) * dIn);
    const file = `shard-${String(k).padStart(5, '0')}.f32`;
    writeAtomically(path.join(dir, file), (fd) => { fs.writeSync(fd, new Uint8Array(part.buffer, part.byteOffset, part.byteLength)); });
    writeJson(path.join(dir, file.replace(/\.f32$/, '.json')), Array.from({ length: part.length / dIn }, () => [0]));
    m.shards.push({ file, rows: part.length / dIn, sequences: part.length / dIn });
  }
  writeJson(path.join(dir, 'manifest.json'), m);
  return m;
}
