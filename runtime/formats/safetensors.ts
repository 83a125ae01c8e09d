// safetensors: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
// shape and [begin, end) byte range in the data that follows, then the data. Everything the header
// claims is checked against the file before it is trusted.
import { FormatError } from '../../compiler/errors.js';
import type { DType } from '../../compiler/ir/dtype.js';
import { dequantize } from '../../ops/dequant.js';

export interface SafetensorsTensor { name: string; dtype: DType; shape: number[]; begin: number; end: number }
export interface SafetensorsFile { tensors: Map<string, SafetensorsTensor>; metadata: Map<string, string>; dataOffset: number }

const DTYPES: Readonly<Record<string, [DType, number]>> = { F32: ['f32', 4], F16: ['f16', 2], BF16: ['bf16', 2] };
const KNOWN_OTHER = new Set(['F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64', 'BOOL', 'F8_E4M3', 'F8_E5M2']);
const MAX_HEADER = 100 << 20;

/** Parse the header. `head` holds at least the first 8 + header-length bytes; `fileSize` is the whole file's. */
export function parseSafetensors(head: Uint8Array, file: string, fileSize = head.byteLength): SafetensorsFile {
  const fail = (m: string): never => { throw new FormatError(file, m); };
  if (fileSize < 8 || head.byteLength < 8) fail('truncated: no safetensors header length');
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER) || n > BigInt(fileSize - 8)) fail(`header length ${n} is larger than the file or ${MAX_HEADER} bytes`);
  const hlen = Number(n);
  if (head.byteLength < 8 + hlen) fail(`truncated: the header needs ${hlen} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(8, 8 + hlen)));
  } catch (e) {
    fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('the header is not a JSON object');
  const dataOffset = 8 + hlen, dataBytes = fileSize - dataOffset;
  const tensors = new Map<string, SafetensorsTensor>();
  const metadata = new Map<string, string>();
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__proto__' || name === 'constructor' || name === 'prototype') fail(`header key '${name}' is not allowed`);
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null) fail('__metadata__ must be an object');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) if (typeof s === 'string') metadata.set(k, s);
      continue;
    }
    if (typeof v !== 'object' || v === null) fail(`tensor '${name}' is not described by an object`);
    const { dtype, shape, data_offsets } = v as Record<string, unknown>;
    if (typeof dtype !== 'string') fail(`tensor '${name}' has no dtype`);
    const dt = DTYPES[dtype as string];
    if (!dt) fail(KNOWN_OTHER.has(dtype as string) ? `tensor '${name}' is ${dtype}; tapir reads F32, F16 and BF16 safetensors` : `tensor '${name}' has unknown dtype '${dtype}'`);
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor '${name}' has a bad shape`);
    if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor '${name}' has bad data_offsets`);
    const [begin, end] = data_offsets as [number, number];
    let elems = 1;
    for (const d of shape as number[]) { elems *= d; if (elems > dataBytes) fail(`tensor '${name}' has more elements than the file can hold`); }
    if (end < begin || end > dataBytes) fail(`tensor '${name}' lies past the end of the file (bytes ${begin}..${end} of ${dataBytes})`);
    if (end - begin !== elems * dt![1]) fail(`tensor '${name}' spans ${end - begin} bytes but its shape needs ${elems * dt![1]}`);
    tensors.set(name, { name, dtype: dt![0], shape: shape as number[], begin: dataOffset + begin, end: dataOffset + end });
  }
  // overlapping tensors are a lie too
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) if (sorted[i]!.begin < sorted[i - 1]!.end) fail(`tensors '${sorted[i - 1]!.name}' and '${sorted[i]!.name}' overlap`);
  return { tensors, metadata, dataOffset };
}

/** A safetensors file from named tensors (raw bytes in row-major order). */
export function writeSafetensors(tensors: { name: string; dtype: 'f32' | 'f16' | 'bf16'; shape: readonly number[]; bytes: Uint8Array }[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype.toUpperCase(), shape: t.shape, data_offsets: [at, at + t.bytes.length] };
    at += t.bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // keep the data 8-byte aligned
  const hbytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hbytes.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  let o = 8 + hbytes.length;
  for (const t of tensors) { out.set(t.bytes, o); o += t.bytes.length; }
  return out;
}

/** A tensor's values as f32 (its bytes are `file`'s, from the start of the file). */
export function tensorValues(file: Uint8Array, t: SafetensorsTensor): Float32Array {
  return Float32Array.from(dequantize(t.dtype, file.subarray(t.begin, t.end), t.shape.reduce((a, b) => a * b, 1)));
}
