/**
 * S1–S4: random bytes prepended to init / response / cookie / transport datagrams. The
 * prefix length must match on both sides; its content is never read (except as the header
 * protection nonce).
 */
import type { RandomSource } from './random.js';

/** datagram = prefix(s) ‖ msg ‖ room for `trailer` bytes (left zero). */
export function withPrefix(
  s: number,
  msg: Uint8Array,
  trailer: number,
  rng: RandomSource,
): Uint8Array {
  const d = new Uint8Array(s + msg.length + trailer);
  if (s) d.set(rng.bytes(s), 0);
  d.set(msg, s);
  return d;
}

/** Fills an already laid out prefix in place. */
export function fillPrefix(d: Uint8Array, s: number, rng: RandomSource): void {
  if (!s) return;
  if (rng.fill) rng.fill(d, 0, s);
  else d.set(rng.bytes(s), 0);
}
