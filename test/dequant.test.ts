// The weight formats on the CPU: conversions, quantizers, and the DSL's bit helpers agreeing with them.
import { describe, expect, it } from 'vitest';
import { WTYPE, bf16ToFloat, dequantize, floatToBf16, floatToHalf, halfToFloat, quantize, repack, weightAt } from '../ops/dequant.js';
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

  // the kernels' own reader (weightAt runs as plain JavaScript); 96 columns: 9 q8_0 blocks, so the
  // f16 scales end in half a word
  it.each([[3, 64], [3, 96]])('repacking keeps every value (%i x %i, read back by the kernels\' weightAt on the CPU)', (rows, cols) => {
    const x = rnd.normal(rows * cols);
    for (const dtype of ['q4_0', 'q8_0'] as const) {
      const q = quantize(dtype, x), p = repack(dtype, q, rows, cols), d = dequantize(dtype, q, rows * cols);
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) expect(weightAt(p, WTYPE[dtype]!, rows, cols, r, c)).toBeCloseTo(d[r * cols + c]!, 6);
    }
  });
});
