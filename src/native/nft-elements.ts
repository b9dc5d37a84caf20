/**
 * The elements of nf_tables address sets as the kernel takes them: the key bytes of an
 * address (network order, 4 or 16 bytes), and an interval set's elements for CIDRs and
 * address ranges. An interval set (`flags interval`) takes a range [start, end) as two
 * elements: the start, and the first address after the range flagged
 * NFT_SET_ELEM_INTERVAL_END (omitted when the range runs to the end of the address space).
 * Pure encoding, no socket: nftset.ts sends them.
 */
import ipaddr, { type IPv4, type IPv6 } from '../util/ipaddr.js';
import { AwgError } from '../errors.js';
import { parseAddr } from './rtnl.js';

/** NFTA_SET_ELEM_FLAGS: the element ends an interval */
export const NFT_SET_ELEM_INTERVAL_END = 1;

/** One element on the wire: its key, and optionally flags and a timeout. */
export interface RawElement {
  key: Buffer;
  flags?: number | undefined;
  timeoutMs?: number | undefined;
}

/** The key bytes of an address (4 or 16, network order); throws AwgError for a bad one. */
export function addrKey(addr: string): Buffer {
  if (!ipaddr.isValid(addr)) throw new AwgError('invalid-config', `not an IP address: ${addr}`);
  return parseAddr(addr);
}

/**
 * An interval set's elements for CIDRs: per prefix its first address, and the first address
 * after it flagged INTERVAL_END (none when the prefix reaches the end of the address space).
 * The prefixes must not overlap (the kernel answers EEXIST for an overlap).
 */
export function cidrElements(cidrs: readonly string[], timeoutMs?: number): RawElement[] {
  const out: RawElement[] = [];
  for (const c of cidrs) {
    let range: [IPv4 | IPv6, number];
    try {
      range = ipaddr.parseCIDR(c);
    } catch {
      throw new AwgError('invalid-config', `not a CIDR: ${c}`);
    }
    const bytes = range[0].toByteArray();
    const bits = bytes.length * 8;
    const prefix = range[1];
    // network address, then + 2^(bits - prefix) with carry
    const start = Buffer.from(bytes);
    for (let i = 0; i < bytes.length; i++) {
      const keep = Math.min(8, Math.max(0, prefix - i * 8));
      start[i] = start[i]! & ((0xff00 >> keep) & 0xff);
    }
    const end = Buffer.from(start);
    let carry = prefix === bits ? 1 : 0;
    if (prefix < bits) {
      const host = bits - prefix;
      // set all host bits, then add one
      for (let i = bytes.length - 1, left = host; i >= 0 && left > 0; i--, left -= 8)
        end[i] = end[i]! | ((1 << Math.min(8, left)) - 1);
      carry = 1;
    }
    for (let i = bytes.length - 1; i >= 0 && carry; i--) {
      const v = end[i]! + carry;
      end[i] = v & 0xff;
      carry = v >> 8;
    }
    const t = timeoutMs !== undefined ? { timeoutMs } : {};
    out.push({ key: start, ...t });
    // carry left over: the range runs to the last address, there is no end element
    if (!carry) out.push({ key: end, flags: NFT_SET_ELEM_INTERVAL_END, ...t });
  }
  return out;
}

/** `bytes` + 1 in place (big-endian); true when it carried out of the top (it was all ones) */
function increment(bytes: Buffer): boolean {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] !== 0xff) {
      bytes[i] = bytes[i]! + 1;
      return false;
    }
    bytes[i] = 0;
  }
  return true;
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** hex groups `a:b:…` into `out` from `at`; false when one is not 1–4 hex digits */
function v6Groups(s: string, out: Buffer, at: number): number {
  if (s === '') return at;
  for (const g of s.split(':')) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g) || at > 14) return -1;
    out.writeUInt16BE(parseInt(g, 16), at);
    at += 2;
  }
  return at;
}

/** the 16 bytes of an IPv6 address in hex groups (`::` allowed); undefined for other forms */
function v6Key(addr: string): Buffer | undefined {
  const key = Buffer.alloc(16);
  const dbl = addr.indexOf('::');
  if (dbl < 0) return v6Groups(addr, key, 0) === 16 ? key : undefined;
  if (addr.indexOf('::', dbl + 1) >= 0) return undefined;
  const tail = Buffer.alloc(16);
  const h = v6Groups(addr.slice(0, dbl), key, 0);
  const t = v6Groups(addr.slice(dbl + 2), tail, 0);
  if (h < 0 || t < 0 || h + t > 14) return undefined;
  tail.copy(key, 16 - t, 0, t);
  return key;
}

/** an address's key bytes, without ipaddr for the plain forms (an element list has 100,000) */
function elementKey(addr: string): Buffer {
  const m = V4.exec(addr);
  if (m) {
    const b = Buffer.from([Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])]);
    if (b.every((x, i) => x === Number(m[i + 1]))) return b;
  }
  const k = addr.includes('.') ? undefined : v6Key(addr);
  if (k) return k;
  if (!ipaddr.isValid(addr)) throw new AwgError('invalid-config', `not an IP address: ${addr}`);
  return parseAddr(addr);
}

/** a dotted quad as a number; NaN when it is not one */
function v4Number(s: string): number {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 255) return NaN;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + (c - 48);
      digits++;
    } else return NaN;
  }
  if (dots !== 3 || digits === 0 || part > 255) return NaN;
  return n * 256 + part;
}

function v4Key(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** an IPv4 element (`a`, `a/len`, `a-b`) as its first and last address */
function v4Interval(e: string): [number, number] {
  const slash = e.indexOf('/');
  const dash = e.indexOf('-');
  let start: number;
  let last: number;
  if (slash >= 0) {
    const len = /^\d{1,2}$/.test(e.slice(slash + 1)) ? Number(e.slice(slash + 1)) : NaN;
    const a = v4Number(e.slice(0, slash));
    if (!(len <= 32) || Number.isNaN(a)) throw new AwgError('invalid-config', `not a CIDR: ${e}`);
    const size = 2 ** (32 - len);
    start = a - (a % size);
    last = start + size - 1;
  } else {
    start = v4Number(dash < 0 ? e : e.slice(0, dash));
    last = dash < 0 ? start : v4Number(e.slice(dash + 1));
  }
  if (Number.isNaN(start) || Number.isNaN(last) || start > last)
    throw new AwgError('invalid-config', `not an address range: ${e}`);
  return [start, last];
}

/**
 * The elements of one interval element in nft syntax, the general path: an address, a prefix
 * `net/len`, or a range `first-last` becomes its first address and the address after its last
 * flagged INTERVAL_END (none when the last is the end of the address space); ipaddr reads the
 * unusual IPv6 forms (`::ffff:192.0.2.1`). nft-interval-run.ts reads the plain forms itself
 * and comes here for the rest, and for the errors.
 */
export function oneInterval(e: string): RawElement[] {
  if (!e.includes(':')) {
    const [start, last] = v4Interval(e);
    if (last === 0xffffffff) return [{ key: v4Key(start) }];
    return [{ key: v4Key(start) }, { key: v4Key(last + 1), flags: NFT_SET_ELEM_INTERVAL_END }];
  }
  const dash = e.indexOf('-');
  const slash = e.indexOf('/');
  let start: Buffer;
  let end: Buffer;
  if (slash >= 0) {
    start = elementKey(e.slice(0, slash));
    const len = Number(e.slice(slash + 1));
    if (!/^\d{1,3}$/.test(e.slice(slash + 1)) || len > start.length * 8)
      throw new AwgError('invalid-config', `not a CIDR: ${e}`);
    end = Buffer.from(start);
    // network address, then every host bit set
    for (let i = 0; i < start.length; i++) {
      const keep = Math.min(8, Math.max(0, len - i * 8));
      const mask = (0xff00 >> keep) & 0xff;
      start[i] = start[i]! & mask;
      end[i] = start[i]! | (~mask & 0xff);
    }
  } else {
    start = elementKey(dash < 0 ? e : e.slice(0, dash));
    end = dash < 0 ? Buffer.from(start) : elementKey(e.slice(dash + 1));
  }
  if (end.length !== start.length || Buffer.compare(start, end) > 0)
    throw new AwgError('invalid-config', `not an address range: ${e}`);
  if (increment(end)) return [{ key: start }];
  return [{ key: start }, { key: end, flags: NFT_SET_ELEM_INTERVAL_END }];
}
