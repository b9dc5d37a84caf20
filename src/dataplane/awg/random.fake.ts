/** Deterministic random sources for tests (not built into dist/). */
import type { RandomSource } from './random.js';

/** Deterministic PRNG (sfc32) for tests and simulations; not for production keys. */
export function seededRandom(seed: number): RandomSource {
  let a = 0x9e3779b9,
    b = 0x243f6a88,
    c = 0xb7e15162,
    d = seed >>> 0;
  const next = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) next();
  return {
    bytes(n) {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = next() & 0xff;
      return out;
    },
    intn(n) {
      if (n <= 1) return 0;
      return Math.floor(((next() * 2 ** 21 + (next() >>> 11)) / 2 ** 53) * n);
    },
  };
}

/**
 * Replays scripted values in order: `bytes(n)` takes the next queued array (must have length
 * n), `intn` the next queued integer. Falls back to `fallback` when a queue is empty.
 */
export function scriptedRandom(
  script: { bytes?: Uint8Array[]; ints?: number[] },
  fallback: RandomSource = seededRandom(1),
): RandomSource {
  const bytes = [...(script.bytes ?? [])];
  const ints = [...(script.ints ?? [])];
  return {
    bytes(n) {
      const b = bytes.shift();
      if (!b) return fallback.bytes(n);
      if (b.length !== n) throw new Error(`scripted random: wanted ${n} bytes, queued ${b.length}`);
      return b;
    },
    intn(n) {
      const v = ints.shift();
      if (v === undefined) return fallback.intn(n);
      if (v < 0 || v >= n) throw new Error(`scripted random: ${v} not in [0, ${n})`);
      return v;
    },
  };
}
