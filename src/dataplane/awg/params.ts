/**
 * AmneziaWG device parameters and their validation (docs/dataplane.md#amneziawg-parameters;
 * HEAD rules plus
 * the checks HEAD forgot: jmin ≤ jmax, datagram size limits). All defaults = WireGuard.
 */
import {
  MAX_MESSAGE_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_TRANSPORT_SIZE,
} from '../constants.js';
import { HEADER_CIPHER_NONCE_SIZE } from './header-protection.js';
import { type UintRange, ZERO_RANGE, formatRange, isZeroRange, overlaps, range } from './range.js';
import { parseTags } from './tags.js';

export interface AwgParams {
  jc: number;
  jmin: number;
  jmax: number;
  s1: number;
  s2: number;
  s3: number;
  s4: number;
  h1: UintRange;
  h2: UintRange;
  h3: UintRange;
  h4: UintRange;
  /** I1..I5 spec strings as configured; null = unset */
  i: [string | null, string | null, string | null, string | null, string | null];
  /** 32 bytes; null or all-zero = off */
  headerProtectionKey: Uint8Array | null;
  contentPaddingAddition: UintRange;
  rekeyAfterTime: UintRange;
  rekeyTimeout: UintRange;
  rejectAfterTime: UintRange;
  keepaliveTimeout: UintRange;
  maxHandshakeAttempts: UintRange;
  randomTrailers: boolean;
  disableCookies: boolean;
}

export function defaultAwgParams(): AwgParams {
  return {
    jc: 0,
    jmin: 0,
    jmax: 0,
    s1: 0,
    s2: 0,
    s3: 0,
    s4: 0,
    h1: range(1),
    h2: range(2),
    h3: range(3),
    h4: range(4),
    i: [null, null, null, null, null],
    headerProtectionKey: null,
    contentPaddingAddition: ZERO_RANGE,
    rekeyAfterTime: ZERO_RANGE,
    rekeyTimeout: ZERO_RANGE,
    rejectAfterTime: ZERO_RANGE,
    keepaliveTimeout: ZERO_RANGE,
    maxHandshakeAttempts: ZERO_RANGE,
    randomTrailers: false,
    disableCookies: false,
  };
}

export function hasHeaderProtection(p: AwgParams): boolean {
  return !!p.headerProtectionKey && p.headerProtectionKey.some((b) => b !== 0);
}

/** The H range for message kind 1..4; an unset range means the WireGuard type. */
export function headerRange(p: AwgParams, kind: 1 | 2 | 3 | 4): UintRange {
  const r = [p.h1, p.h2, p.h3, p.h4][kind - 1]!;
  return isZeroRange(r) ? range(kind) : r;
}

const DATAGRAM_MAX = 65_507;

/** Every problem at once; empty = valid. */
export function validateAwgParams(p: AwgParams): string[] {
  const errs: string[] = [];
  const u32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
  for (const k of ['jc', 'jmin', 'jmax'] as const)
    if (!u32(p[k])) errs.push(`${k} must be a uint32`);
  if (p.jc > 0) {
    if (p.jmin > p.jmax) errs.push(`jmin (${p.jmin}) must not exceed jmax (${p.jmax})`);
    if (p.jmax > DATAGRAM_MAX)
      errs.push(`jmax (${p.jmax}) exceeds the largest UDP datagram (${DATAGRAM_MAX})`);
  }
  const sizes = [
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE_SIZE,
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_TRANSPORT_SIZE,
  ];
  (['s1', 's2', 's3', 's4'] as const).forEach((k, idx) => {
    const v = p[k];
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) errs.push(`${k} must be a uint16`);
    else if (v + sizes[idx]! > MAX_MESSAGE_SIZE)
      errs.push(`${k} + message size exceeds ${MAX_MESSAGE_SIZE}`);
  });
  const hs = (['h1', 'h2', 'h3', 'h4'] as const).map((k, idx) => ({
    k,
    r: headerRange(p, (idx + 1) as 1 | 2 | 3 | 4),
  }));
  for (const { k, r } of hs)
    if (!u32(r.lo) || !u32(r.hi) || r.hi < r.lo) errs.push(`${k} is not a valid uint32 range`);
  for (let a = 0; a < 4; a++)
    for (let b = a + 1; b < 4; b++)
      if (overlaps(hs[a]!.r, hs[b]!.r))
        errs.push(
          `headers must not overlap: ${hs[a]!.k}=${formatRange(hs[a]!.r)} and ${hs[b]!.k}=${formatRange(hs[b]!.r)}`,
        );
  if (p.headerProtectionKey && p.headerProtectionKey.length !== 32)
    errs.push('header_protection_key must be 32 bytes');
  if (hasHeaderProtection(p))
    for (const k of ['s1', 's2', 's3', 's4'] as const)
      if (p[k] < HEADER_CIPHER_NONCE_SIZE)
        errs.push(`${k} must be at least ${HEADER_CIPHER_NONCE_SIZE} when header protection is on`);
  p.i.forEach((spec, idx) => {
    if (spec === null) return;
    try {
      parseTags(spec);
    } catch (e) {
      errs.push(`i${idx + 1}: ${(e as Error).message}`);
    }
  });
  return errs;
}

export function isDefaultAwg(p: AwgParams): boolean {
  const d = defaultAwgParams();
  return (
    p.jc === 0 &&
    p.s1 === 0 &&
    p.s2 === 0 &&
    p.s3 === 0 &&
    p.s4 === 0 &&
    [1, 2, 3, 4].every((k) => {
      const r = headerRange(p, k as 1 | 2 | 3 | 4);
      return r.lo === k && r.hi === k;
    }) &&
    p.i.every((x) => x === null) &&
    !hasHeaderProtection(p) &&
    isZeroRange(p.contentPaddingAddition) &&
    p.randomTrailers === d.randomTrailers
  );
}
