/**
 * A peer's persistent keepalive: one interval in seconds (WireGuard), or on an `amneziawg`
 * tunnel an AmneziaWG 3.x range that the engine draws a fresh interval from each time it arms
 * the timer. Pure.
 */
import { rangeOf, type U16Range } from './schema-values.js';

export const KEEPALIVE_RANGE_NOT_WIREGUARD =
  'must be a number of seconds (0-65535): a keepalive range "MIN-MAX" is AmneziaWG 3.x, and a wireguard tunnel has one interval; use type: amneziawg for a range';

/**
 * The canonical form plans, engines and status carry: a number (0 = off) when the range is
 * one value, else `"MIN-MAX"` (the UAPI text of `persistent_keepalive_interval`).
 */
export type KeepaliveSpec = number | string;

export function keepaliveSpec(v: U16Range | undefined): KeepaliveSpec {
  if (v === undefined) return 0;
  const r = rangeOf(v);
  return r.min === r.max ? r.min : `${r.min}-${r.max}`;
}

/** true when the value is a range of more than one interval (AmneziaWG 3.x only) */
export const isKeepaliveRange = (v: U16Range | undefined): boolean =>
  typeof keepaliveSpec(v) === 'string';
