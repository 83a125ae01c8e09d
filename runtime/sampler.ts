// Choosing the next token: greedy (temperature 0), or sampling from softmax(logits / T),
// optionally restricted to the top-p nucleus. The RNG is llama2.c's xorshift*, so a seed
// reproduces a run.

export class Rng {
  private s: bigint;
  constructor(seed: number | bigint) {
    this.s = BigInt.asUintN(64, BigInt(seed)) || 1n;
  }
  u32(): number {
    let s = this.s;
    s ^= s >> 12n;
    s ^= BigInt.asUintN(64, s << 25n);
    s ^= s >> 27n;
    this.s = s;
    return Number(BigInt.asUintN(64, s * 0x2545f4914f6cdd1dn) >> 32n);
  }
  /** uniform in [0, 1) */
  f32(): number { return (this.u32() >>> 8) / 16777216; }
  /** the generator's whole state, to resume it exactly (checkpoints) */
  get state(): string { return this.s.toString(); }
  static fromState(state: string): Rng { const r = new Rng(1); r.s = BigInt(state); return r; }
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

export function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  const out = new Float64Array(logits.length);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! / temperature);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i]! / temperature - max);
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

export interface SamplerOptions { temperature: number; topP: number; seed: number }

export class Sampler {
  private rng: Rng;
  constructor(readonly opts: SamplerOptions) {
    this.rng = new Rng(opts.seed);
  }
  sample(logits: ArrayLike<number>): number {
    const { temperature, topP } = this.opts;
    if (temperature === 0) return argmax(logits);
    const probs = softmax(logits, temperature);
    const coin = this.rng.f32();
    if (topP <= 0 || topP >= 1) {
      let cdf = 0;
      for (let i = 0; i < probs.length; i++) if (coin < (cdf += probs[i]!)) return i;
      return probs.length - 1;
    }
    // nucleus: the smallest set of most likely tokens whose mass exceeds topP
    const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b);
    let mass = 0, last = order.length - 1;
    for (let i = 0; i < order.length; i++) {
      mass += probs[order[i]!]!;
      if (mass > topP) { last = i; break; }
    }
    const r = coin * mass;
    let cdf = 0;
    for (let i = 0; i <= last; i++) if (r < (cdf += probs[order[i]!]!)) return order[i]!;
    return order[last]!;
  }
}
