/**
 * AWG `UintRange` (amneziawg-go noise-types.go): `"a"` or `"a-b"`, inclusive, a ≤ b.
 * [0,0] means unset.
 */
import type { RandomSource } from './random.js';

export interface UintRange {
  readonly lo: number;
  readonly hi: number;
}

export const ZERO_RANGE: UintRange = Object.freeze({ lo: 0, hi: 0 });

export function range(lo: number, hi = lo): UintRange {
  return { lo, hi };
}

/** Throws Error with a user-facing message when malformed. */
export function parseRange(s: string, max = 0xffff_ffff): UintRange {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`invalid range "${s}" (want N or N-M)`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > max || hi > max) throw new Error(`range "${s}" exceeds ${max}`);
  if (hi < lo) throw new Error(`range "${s}" has its end below its start`);
  return { lo, hi };
}

export function formatRange(r: UintRange): string {
  return r.lo === r.hi ? String(r.lo) : `${r.lo}-${r.hi}`;
}

export function isZeroRange(r: UintRange): boolean {
  return r.lo === 0 && r.hi === 0;
}

export function inRange(v: number, r: UintRange): boolean {
  return v >= r.lo && v <= r.hi;
}

export function overlaps(a: UintRange, b: UintRange): boolean {
  return a.lo <= b.hi && b.lo <= a.hi;
}

/** Uniform in [lo, hi]. */
export function pickOne(r: UintRange, rng: RandomSource): number {
  return r.hi === r.lo ? r.lo : r.lo + rng.intn(r.hi - r.lo + 1);
}

/** pickOne, or `fallback` when the range is unset. */
export function pickOr(r: UintRange, fallback: number, rng: RandomSource): number {
  return isZeroRange(r) ? fallback : pickOne(r, rng);
}
