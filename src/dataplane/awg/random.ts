/**
 * Injectable randomness for AWG framing, indices and ephemerals. Production uses the CSPRNG;
 * golden tests script the exact bytes and integers.
 */
import { randomBytes, randomFillSync } from 'node:crypto';

export interface RandomSource {
  bytes(n: number): Uint8Array;
  /**
   * n random bytes written into out at off (the per-packet S4 prefix, with no array made);
   * sources without it are asked for `bytes(n)` (the scripted sources of golden tests)
   */
  fill?(out: Uint8Array, off: number, n: number): void;
  /** uniform integer in [0, n); n ≥ 1, n ≤ 2^48 */
  intn(n: number): number;
}

/**
 * Small requests (the per-packet S4 prefix bytes and H4 header values of AmneziaWG, junk
 * sizes) are served from a 4 KiB pool of CSPRNG output, refilled with one `randomFillSync`
 * when used up: a call into node:crypto per packet cost AmneziaWG a clear share of its
 * throughput against plain WireGuard. Every pool byte is handed out once and zeroed by a loop
 * as it goes (TypedArray#fill is a call into the runtime: with a fresh array per prefix it was
 * most of what AmneziaWG still lost against WireGuard). Requests of 32 bytes and more (keys,
 * ephemerals, cookie secrets) go to `randomBytes` directly. Measurements: bench/RESULTS.md,
 * section "Less work per packet".
 */
const POOL = 4096;
const pool = new Uint8Array(POOL);
let poolOff = POOL;

function take(n: number): number {
  if (poolOff + n > POOL) {
    randomFillSync(pool);
    poolOff = 0;
  }
  const at = poolOff;
  poolOff += n;
  return at;
}

/** uniform in [0, n) for 1 < n ≤ 2^48, by rejection from 48 random bits */
function poolIntn(n: number): number {
  const limit = Math.floor(0x1_0000_0000_0000 / n) * n;
  for (;;) {
    const at = take(6);
    const v =
      pool[at]! * 0x100_0000_0000 +
      pool[at + 1]! * 0x1_0000_0000 +
      ((pool[at + 2]! << 24) >>> 0) +
      (pool[at + 3]! << 16) +
      (pool[at + 4]! << 8) +
      pool[at + 5]!;
    pool[at] = pool[at + 1] = pool[at + 2] = pool[at + 3] = pool[at + 4] = pool[at + 5] = 0;
    if (v < limit) return v % n;
  }
}

/** moves pool[at, at + n) to out at off and zeroes it there: handed out once, no copy stays */
function handOut(out: Uint8Array, off: number, at: number, n: number): void {
  for (let k = 0; k < n; k++) {
    out[off + k] = pool[at + k]!;
    pool[at + k] = 0;
  }
}

export const cryptoRandom: RandomSource = {
  bytes: (n) => {
    if (n >= 32) return new Uint8Array(randomBytes(n));
    const out = new Uint8Array(n);
    handOut(out, 0, take(n), n);
    return out;
  },
  fill: (out, off, n) => {
    if (off < 0 || n < 0 || off + n > out.length) throw new RangeError('random fill out of range');
    if (n >= 32) randomFillSync(out, off, n);
    else handOut(out, off, take(n), n);
  },
  intn: (n) => (n <= 1 ? 0 : poolIntn(n)),
};
