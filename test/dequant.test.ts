// The weight formats on the CPU: conversions, quantizers, and the DSL's bit helpers agreeing with them.
import { describe, expect, it } from 'vitest';
import { bf16ToFloat, dequantize, floatToBf16, floatToHalf, halfToFloat, quantize, repack } from '../ops/dequant.js';
import { signedByte, unpackHalf } from '../compiler/kernel/dsl.js';
import { randomSource, relErr } from './helpers/numeric.js';

const rnd = randomSource();

describe('weight formats', () => {
  it('halves round to nearest even and round-trip every half', () => {
    expect(floatToHalf(1)).toBe(0x3c00);
    expect(floatToHalf(-2)).toBe(0xc000);
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(1e6)).toBe(0x7c00);
    expect(floatToHalf(2 ** -24)).toBe(1);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // a tie goes to even
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaNs
      expect(floatToHalf(halfToFloat(h))).toBe(h);
      expect(unpackHalf(h << 16, 1)).toBe(halfToFloat(h));
    }
  });

  it('bf16 keeps the top 16 bits, rounded', () => {
    expect(floatToBf16(1)).toBe(0x3f80);
    expect(bf16ToFloat(floatToBf16(3.140625))).toBe(3.140625);
    expect(Number.isNaN(bf16ToFloat(floatToBf16(NaN)))).toBe(true);
  });

  it('signedByte sign-extends', () => {
    expect(signedByte(0x80ff017f, 0)).toBe(127);
    expect(signedByte(0x80ff017f, 1)).toBe(1);
    expect(signedByte(0x80ff017f, 2)).toBe(-1);
    expect(signedByte(0x80ff017f, 3)).toBe(-128);
  });

  it.each([['f16', 1e-3], ['bf16', 1e-2], ['q8_0', 1e-2], ['q4_0', 0.2]] as const)('%s quantizes within its precision', (dtype, tol) => {
    const x = rnd.normal(32 * 40);
    expect(relErr(dequantize(dtype, quantize(dtype, x), x.length), x)).toBeLessThan(tol);
  });

  it('q4_0 blocks are 18 bytes and q8_0 34, as in GGUF', () => {
    expect(quantize('q4_0', new Float32Array(64)).length).toBe(36);
    expect(quantize('q8_0', new Float32Array(64)).length).toBe(68);
  });

  it('repacking keeps every value (checked by reading the GPU layout on the CPU)', () => {
    const rows = 3, cols = 64;
    const x = rnd.normal(rows * cols);
    const q4 = quantize('q4_0', x), q8 = quantize('q8_0', x);
    const p4 = repack('q4_0', q4, rows, cols), p8 = repack('q8_0', q8, rows, cols);
    const f4 = new Float32Array(p4.buffer), f8 = new Float32Array(p8.buffer);
    const d4 = dequantize('q4_0', q4, rows * cols), d8 = dequantize('q8_0', q8, rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const nib = (p4[r * (cols >> 3) + (c >> 3)]! >>> ((c & 7) * 4)) & 15;
        expect(f4[rows * (cols >> 3) + r * (cols >> 5) + (c >> 5)]! * (nib - 8)).toBeCloseTo(d4[r * cols + c]!, 6);
        expect(f8[rows * (cols >> 2) + r * (cols >> 5) + (c >> 5)]! * signedByte(p8[r * (cols >> 2) + (c >> 2)]!, c & 3)).toBeCloseTo(d8[r * cols + c]!, 6);
      }
  });
});
