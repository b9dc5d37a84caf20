/**
 * Fast CIDR handling for large prefix lists (10k+ allowed IPs): IPv4 is parsed by hand,
 * IPv6 through ipaddr.js. Pure.
 */
import ipaddr from '../util/ipaddr.js';

export interface ParsedCidr {
  family: 4 | 6;
  /** address as written, normalised (`10.0.0.2`, `fd00::2`) */
  addr: string;
  len: number;
  /** network address with host bits cleared */
  network: string;
}

/** Dotted-quad IPv4 to its 32-bit value; undefined when invalid (leading zeros refused). */
export function parseV4(s: string): number | undefined {
  let n = 0;
  let parts = 0;
  let cur = -1;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (cur < 0 || cur > 255 || parts === 4) return undefined;
      n = n * 256 + cur;
      parts++;
      cur = -1;
    } else if (c >= 48 && c <= 57) {
      if (cur === 0) return undefined; // no leading zeros (ambiguous octal)
      cur = cur < 0 ? c - 48 : cur * 10 + (c - 48);
      if (cur > 255) return undefined;
    } else return undefined;
  }
  return parts === 4 ? n : undefined;
}

export function v4String(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Parse `addr[/len]`; undefined when invalid. A bare address gets /32 or /128. */
export function parseCidr(s: string): ParsedCidr | undefined {
  const slash = s.indexOf('/');
  const a = slash < 0 ? s : s.slice(0, slash);
  const lenStr = slash < 0 ? undefined : s.slice(slash + 1);
  if (lenStr !== undefined && !/^\d{1,3}$/.test(lenStr)) return undefined;
  const v4 = parseV4(a);
  if (v4 !== undefined) {
    const len = lenStr === undefined ? 32 : Number(lenStr);
    if (len > 32) return undefined;
    const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
    return { family: 4, addr: v4String(v4), len, network: v4String((v4 & mask) >>> 0) };
  }
  if (!a.includes(':') || !ipaddr.IPv6.isValid(a)) return undefined;
  const len = lenStr === undefined ? 128 : Number(lenStr);
  if (len > 128) return undefined;
  const ip = ipaddr.IPv6.parse(a);
  const net = ipaddr.IPv6.networkAddressFromCIDR(`${a}/${len}`);
  return { family: 6, addr: ip.toString(), len, network: net.toString() };
}

export function isCidr(s: string): boolean {
  return parseCidr(s) !== undefined;
}

/** network/len, e.g. `10.0.0.0/8` for `10.1.2.3/8` */
export function canonicalPrefix(s: string): { cidr: string; family: 4 | 6 } {
  const p = parseCidr(s);
  if (!p) throw new Error(`invalid CIDR ${s}`);
  return { cidr: `${p.network}/${p.len}`, family: p.family };
}

/** addr/len keeping host bits, e.g. interface addresses `10.0.0.2/24` */
export function canonicalHost(s: string): { cidr: string; family: 4 | 6 } {
  const p = parseCidr(s);
  if (!p) throw new Error(`invalid CIDR ${s}`);
  return { cidr: `${p.addr}/${p.len}`, family: p.family };
}

export function cidrsOverlap(a: string, b: string): boolean {
  const pa = parseCidr(a);
  const pb = parseCidr(b);
  if (!pa || !pb || pa.family !== pb.family) return false;
  const len = Math.min(pa.len, pb.len);
  return parseCidr(`${pa.addr}/${len}`)!.network === parseCidr(`${pb.addr}/${len}`)!.network;
}
