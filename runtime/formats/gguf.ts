// GGUF v2/v3 reader: header, metadata, tensor table. Validates every count, length, dimension and
// offset against the file before trusting it. Spec: github.com/ggml-org/ggml docs/gguf.md.
import { Reader } from './reader.js';

export type GGUFValue = number | bigint | boolean | string | GGUFValue[];

/** ggml tensor types tapir knows the block layout of: [name, elements per block, bytes per block] */
export const GGML_TYPES: Readonly<Record<number, readonly [string, number, number]>> = {
  0: ['F32', 1, 4], 1: ['F16', 1, 2], 2: ['Q4_0', 32, 18], 3: ['Q4_1', 32, 20], 6: ['Q5_0', 32, 22], 7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34], 9: ['Q8_1', 32, 36], 10: ['Q2_K', 256, 84], 11: ['Q3_K', 256, 110], 12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176], 14: ['Q6_K', 256, 210], 15: ['Q8_K', 256, 292], 24: ['I8', 1, 1], 25: ['I16', 1, 2],
  26: ['I32', 1, 4], 27: ['I64', 1, 8], 28: ['F64', 1, 8], 30: ['BF16', 1, 2],
};

export interface GGUFTensor {
  name: string;
  /** GGUF order: dims[0] is the fastest-varying (columns) */
  dims: number[];
  type: string;
  /** absolute byte offset in the file */
  offset: number;
  bytes: number;
}

export interface GGUFFile {
  version: number;
  metadata: ReadonlyMap<string, GGUFValue>;
  tensors: ReadonlyMap<string, GGUFTensor>;
  alignment: number;
  dataOffset: number;
}

const MAX_DIMS = 4;
const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

function readString(r: Reader, what: string): string {
  const n = r.u64(`length of ${what}`);
  return r.utf8(n, what);
}

function readValue(r: Reader, type: number, what: string, depth = 0): GGUFValue {
  switch (type) {
    case 0: return r.u8(what);
    case 1: return r.i8(what);
    case 2: return r.u16(what);
    case 3: return r.i16(what);
    case 4: return r.u32(what);
    case 5: return r.i32(what);
    case 6: return r.f32(what);
    case 7: {
      const b = r.u8(what);
      if (b > 1) r.fail(`${what}: boolean byte is ${b}`);
      return b === 1;
    }
    case 8: return readString(r, what);
    case 9: {
      if (depth > 0) r.fail(`${what}: nested arrays are not supported`);
      const elemType = r.u32(`element type of ${what}`);
      const n = r.u64(`length of ${what}`);
      // every element takes at least one byte: a count past the end of the file is a lie
      if (n > r.remaining) r.fail(`${what} claims ${n} elements but only ${r.remaining} bytes remain`);
      const out: GGUFValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(r, elemType, what, depth + 1);
      return out;
    }
    case 10: { const v = r.u64big(what); return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }
    case 11: { const v = r.i64big(what); return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v; }
    case 12: return r.f64(what);
    default: return r.fail(`${what} has unknown value type ${type}`);
  }
}

/** Parse a GGUF header from `bytes`, a prefix of a file of `fileSize` bytes (throws NeedMoreBytes
 *  if the header runs past the prefix). */
export function parseGGUF(bytes: Uint8Array, file: string, fileSize = bytes.byteLength): GGUFFile {
  const r: Reader = new Reader(bytes, file, fileSize);
  if (bytes.byteLength < 4 || new TextDecoder().decode(bytes.subarray(0, 4)) !== 'GGUF')
    r.fail('not a GGUF file (the first 4 bytes are not "GGUF")');
  r.pos = 4;
  const version = r.u32('version');
  if (version !== 2 && version !== 3) r.fail(`GGUF version ${version} is not supported (tapir reads versions 2 and 3)`);
  const nTensors = r.u64('tensor count');
  const nKV = r.u64('metadata count');
  // each tensor info takes >= 24 bytes and each key/value >= 12: reject impossible counts up front
  if (nTensors * 24 > r.remaining) r.fail(`claims ${nTensors} tensors, more than the file can hold`);
  if (nKV * 12 > r.remaining) r.fail(`claims ${nKV} metadata entries, more than the file can hold`);

  const metadata = new Map<string, GGUFValue>();
  for (let i = 0; i < nKV; i++) {
    const key = readString(r, `metadata key #${i}`);
    const type = r.u32(`type of '${key}'`);
    const value = readValue(r, type, `'${key}'`);
    if (metadata.has(key)) r.fail(`metadata key '${key}' appears twice`);
    // Stored in a Map, so these could do no harm here; but no model has them, and a file that
    // does is built to attack code that copies metadata into plain objects.
    if (key.split('.').some((part) => FORBIDDEN_KEYS.has(part))) r.fail(`metadata key '${key}' is not allowed`);
    metadata.set(key, value);
  }

  const align = metadata.has('general.alignment') ? metadata.get('general.alignment') : 32;
  if (typeof align !== 'number' || align < 1 || (align & (align - 1)) !== 0 || align > 1 << 20)
    r.fail(`general.alignment must be a power of two, got ${String(align)}`);
  const alignment: number = align;

  const infos: { name: string; dims: number[]; type: string; rel: number; bytes: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = readString(r, `name of tensor #${i}`);
    if (names.has(name)) r.fail(`tensor '${name}' appears twice`);
    names.add(name);
    const nDims = r.u32(`dimension count of '${name}'`);
    if (nDims < 1 || nDims > MAX_DIMS) r.fail(`tensor '${name}' has ${nDims} dimensions (1..${MAX_DIMS} allowed)`);
    const dims: number[] = [];
    let elems = 1n;
    for (let d = 0; d < nDims; d++) {
      const v = r.u64big(`dimension ${d} of '${name}'`);
      if (v === 0n) r.fail(`tensor '${name}' has a zero dimension`);
      elems *= v;
      if (elems > BigInt(fileSize) * 8n) r.fail(`tensor '${name}' dimensions multiply to more elements than the file can hold`);
      dims.push(Number(v));
    }
    const typeId = r.u32(`type of '${name}'`);
    const t = GGML_TYPES[typeId];
    if (!t) r.fail(`tensor '${name}' has unknown type ${typeId}`);
    const [tname, blockElems, blockBytes] = t;
    if (dims[0]! % blockElems !== 0) r.fail(`tensor '${name}' has ${dims[0]} columns, not a multiple of the ${tname} block (${blockElems})`);
    const byteSize = (Number(elems) / blockElems) * blockBytes;
    const rel = r.u64(`offset of '${name}'`);
    if (rel % alignment !== 0) r.fail(`tensor '${name}' offset ${rel} is not aligned to ${alignment}`);
    infos.push({ name, dims, type: tname, rel, bytes: byteSize });
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  const tensors = new Map<string, GGUFTensor>();
  for (const t of infos) {
    const offset = dataOffset + t.rel;
    if (offset + t.bytes > fileSize)
      r.fail(`tensor '${t.name}' lies past the end of the file (bytes ${offset}..${offset + t.bytes} of ${fileSize})`);
    tensors.set(t.name, { name: t.name, dims: t.dims, type: t.type, offset, bytes: t.bytes });
  }
  return { version, metadata, tensors, alignment, dataOffset };
}
