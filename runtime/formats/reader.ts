// A bounds-checked little-endian cursor over a model file. Every read says what it was reading, so
// a truncated or lying file fails with "<file>: truncated reading <what> at byte N", never a RangeError.
import { FormatError } from '../../compiler/errors.js';

/** Thrown when a header runs past the prefix read so far but not past the file: read more, retry. */
export class NeedMoreBytes extends Error {}

export class Reader {
  private view: DataView;
  pos = 0;
  /** `bytes` may be a prefix of the file; `fileSize` is the whole file's */
  constructor(readonly bytes: Uint8Array, readonly file: string, readonly fileSize = bytes.byteLength) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  /** bytes left in the file */
  get remaining() { return this.fileSize - this.pos; }
  fail(msg: string): never { throw new FormatError(this.file, msg); }
  need(n: number, what: string) {
    if (!(n >= 0) || n > this.remaining) this.fail(`truncated: ${what} at byte ${this.pos} needs ${n} bytes, ${this.remaining} left`);
    if (this.pos + n > this.bytes.byteLength) throw new NeedMoreBytes();
  }
  u8(what: string) { this.need(1, what); return this.view.getUint8(this.pos++); }
  i8(what: string) { this.need(1, what); return this.view.getInt8(this.pos++); }
  u16(what: string) { this.need(2, what); const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  i16(what: string) { this.need(2, what); const v = this.view.getInt16(this.pos, true); this.pos += 2; return v; }
  u32(what: string) { this.need(4, what); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  i32(what: string) { this.need(4, what); const v = this.view.getInt32(this.pos, true); this.pos += 4; return v; }
  f32(what: string) { this.need(4, what); const v = this.view.getFloat32(this.pos, true); this.pos += 4; return v; }
  f64(what: string) { this.need(8, what); const v = this.view.getFloat64(this.pos, true); this.pos += 8; return v; }
  u64big(what: string) { this.need(8, what); const v = this.view.getBigUint64(this.pos, true); this.pos += 8; return v; }
  i64big(what: string) { this.need(8, what); const v = this.view.getBigInt64(this.pos, true); this.pos += 8; return v; }
  /** a u64 that must fit a JS number (sizes, counts, offsets) */
  u64(what: string): number {
    const v = this.u64big(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, too large`);
    return Number(v);
  }
  bytesAt(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  utf8(n: number, what: string): string {
    return new TextDecoder('utf-8', { fatal: false }).decode(this.bytesAt(n, what));
  }
}
