// Comparing GPU output with float64 references.

/** ‖out − ref‖ / ‖ref‖; NaN when either side holds a NaN, so `<= tol` can never pass on NaN. */
export function relErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) return NaN;
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  return Math.sqrt(num) / Math.sqrt(den || 1);
}

export function maxAbsDiff(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) return NaN;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(out[i]! - ref[i]!);
    if (Number.isNaN(d)) return NaN;
    m = Math.max(m, d);
  }
  return m;
}

/** A seeded generator of normal-ish floats; the seed is fresh each run and shown on failure
 *  (TAPIR_TEST_SEED=<seed> replays a failure). */
export function randomSource(seed = Number(process.env.TAPIR_TEST_SEED) || (Date.now() ^ (Math.random() * 2 ** 31)) >>> 0) {
  let s = seed || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
  return {
    seed,
    uniform: next,
    /** `n` floats from N(0, scale²) (Box–Muller) */
    normal(n: number, scale = 1): Float32Array {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(next() || 1e-12)) * Math.cos(2 * Math.PI * next());
      return out;
    },
    int(lo: number, hi: number) { return lo + Math.floor(next() * (hi - lo)); },
  };
}
