/**
 * H1–H4: the u32le message-type field replaced by a value from a per-kind range; a fresh
 * inclusive draw per message (amneziawg-go HEAD `PickOne`); receivers accept the whole range.
 */
import { readU32 } from '../noise/messages.js';
import type { RandomSource } from './random.js';
import { type UintRange, inRange, pickOne } from './range.js';

export function pickHeader(r: UintRange, rng: RandomSource): number {
  return pickOne(r, rng);
}

/** Whether the type at `offset`, XORed with `typeHash` (header protection), is in `r`. */
export function headerMatches(d: Uint8Array, offset: number, r: UintRange, typeHash = 0): boolean {
  return inRange((readU32(d, offset) ^ typeHash) >>> 0, r);
}
