/**
 * Injectable randomness for AWG framing, indices and ephemerals. Production uses the CSPRNG;
 * golden tests script the exact bytes and integers.
 */
import { randomBytes, randomInt } from 'node:crypto';

export interface RandomSource {
  bytes(n: number): Uint8Array;
  /** uniform integer in [0, n); n ≥ 1, n ≤ 2^48 */
  intn(n: number): number;
}

export const cryptoRandom: RandomSource = {
  bytes: (n) => new Uint8Array(randomBytes(n)),
  intn: (n) => (n <= 1 ? 0 : randomInt(0, n)),
};
