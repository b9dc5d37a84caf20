/**
 * INI values as wg(8) and awg(8) read them, checked for `awg import`: addresses with an
 * optional prefix, unsigned decimals, and the first message of a zod check. Pure.
 */
import ipaddr from '../../util/ipaddr.js';
import type * as z from 'zod';

/** The first message of a failed zod check; undefined when it passed. */
export function zodMessage(r: z.ZodSafeParseResult<unknown>): string | undefined {
  return r.success ? undefined : (r.error.issues[0]?.message ?? 'invalid');
}

/**
 * Check one Address / DNS / AllowedIPs item as wg(8) reads it: an IPv4 dotted quad or an
 * IPv6 address, optional /prefix. Keeps the text as written (host bits too); with
 * `fillPrefix` a bare address gets /32 or /128. A string is the reason it was refused.
 */
export function parseIniAddress(
  s: string,
  fillPrefix: boolean,
): { value: string; v6: boolean; prefix: number } | string {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const v6 = addr.includes(':');
  const ok = v6 ? ipaddr.IPv6.isValid(addr) : ipaddr.IPv4.isValidFourPartDecimal(addr);
  if (!ok) return `"${s}" is not an IPv4 or IPv6 address`;
  const max = v6 ? 128 : 32;
  if (slash < 0) return { value: fillPrefix ? `${addr}/${max}` : addr, v6, prefix: max };
  const p = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return `"${s}" has a bad prefix length (0-${max})`;
  return { value: s, v6, prefix: Number(p) };
}

/** A decimal of at most 10 digits, up to `max`; undefined otherwise. */
export function parseUint(s: string, max: number): number | undefined {
  if (!/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= max ? n : undefined;
}
