// GGUF writer (v3). Writes exactly what it is given — tests use that to build broken files too.
export type GGUFWriteValue =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64' | 'i64'; value: number | bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; elem: 'u8' | 'i32' | 'u32' | 'f32' | 'string'; value: (number | string)[] };

export interface GGUFWriteTensor {
  name: string;
  /** GGUF order (columns first) */
  dims: (number | bigint)[];
  /** ggml type id (0 = F32) */
  type: number;
  data: Uint8Array;
}

const TYPE_ID = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;

class Writer {
  private chunks: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array) { this.chunks.push(b); this.length += b.length; }
  private num(n: number, f: (v: DataView) => void) { const b = new Uint8Array(n); f(new DataView(b.buffer)); this.bytes(b); }
  u8(v: number) { this.num(1, (d) => d.setUint8(0, v)); }
  u32(v: number) { this.num(4, (d) => d.setUint32(0, v, true)); }
  u64(v: number | bigint) { this.num(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  str(s: string) { const b = new TextEncoder().encode(s); this.u64(b.length); this.bytes(b); }
  scalar(type: string, v: number | bigint | boolean | string) {
    switch (type) {
      case 'u8': return this.u8(Number(v));
      case 'i8': return this.num(1, (d) => d.setInt8(0, Number(v)));
      case 'u16': return this.num(2, (d) => d.setUint16(0, Number(v), true));
      case 'i16': return this.num(2, (d) => d.setInt16(0, Number(v), true));
      case 'u32': return this.u32(Number(v));
      case 'i32': return this.num(4, (d) => d.setInt32(0, Number(v), true));
      case 'f32': return this.num(4, (d) => d.setFloat32(0, Number(v), true));
      case 'f64': return this.num(8, (d) => d.setFloat64(0, Number(v), true));
      case 'u64': return this.u64(v as number);
      case 'i64': return this.num(8, (d) => d.setBigInt64(0, BigInt(v as number), true));
      case 'bool': return this.u8(v ? 1 : 0);
      case 'string': return this.str(String(v));
    }
  }
  pad(alignment: number) { const n = (alignment - (this.length % alignment)) % alignment; if (n) this.bytes(new Uint8Array(n)); }
  finish() {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.length; }
    return out;
  }
}

/** The header and tensor table of a GGUF file; tensor data follows at `dataOffset`, each tensor at
 *  its aligned `offsets[i]` from there. */
export function ggufHeader(metadata: [string, GGUFWriteValue][], tensors: readonly Omit<GGUFWriteTensor, 'data'>[], sizes: readonly number[], alignment = 32) {
  const w = new Writer();
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, v] of metadata) {
    w.str(key);
    w.u32(TYPE_ID[v.type]);
    if (v.type === 'array') {
      w.u32(TYPE_ID[v.elem]);
      w.u64(v.value.length);
      for (const x of v.value) w.scalar(v.elem, x);
    } else w.scalar(v.type, v.value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const size of sizes) {
    offsets.push(offset);
    offset += Math.ceil(size / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offsets[i]!);
  });
  w.pad(alignment);
  return { header: w.finish(), offsets, dataBytes: offset };
}

/** A whole GGUF file in memory (small models and tests; it writes exactly what it is given). */
export function writeGGUF(metadata: [string, GGUFWriteValue][], tensors: GGUFWriteTensor[], alignment = 32): Uint8Array {
  const { header, offsets, dataBytes } = ggufHeader(metadata, tensors, tensors.map((t) => t.data.length), alignment);
  const out = new Uint8Array(header.length + dataBytes);
  out.set(header);
  tensors.forEach((t, i) => out.set(t.data, header.length + offsets[i]!));
  return out;
}
