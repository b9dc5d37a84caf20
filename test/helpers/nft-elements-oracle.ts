/**
 * The interval element encoding as it was before the fast path (nft-interval-run.ts): a test
 * oracle only — the property test checks that the fast path's batches are the same bytes and
 * its errors the same errors. Never imported by src/.
 */
import ipaddr from '../../src/util/ipaddr.js';
import { AwgError } from '../../src/errors.js';
import { parseAddr } from '../../src/native/rtnl.js';
import { NFT_SET_ELEM_INTERVAL_END, type RawElement } from '../../src/native/nft-elements.js';
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
 * An interval set's elements for nft element syntax as `nft list` prints it and the renderer
 * writes it: an address, a prefix `net/len`, or a range `first-last`. Each becomes its first
 * address and the address after its last flagged INTERVAL_END (none when the last is the end
 * of the address space). They must not overlap.
 */
export function oracleIntervalElements(elements: readonly string[]): RawElement[] {
  const out: RawElement[] = [];
  for (const e of elements) {
    if (!e.includes(':')) {
      const [start, last] = v4Interval(e);
      out.push({ key: v4Key(start) });
      if (last !== 0xffffffff) out.push({ key: v4Key(last + 1), flags: NFT_SET_ELEM_INTERVAL_END });
      continue;
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
    out.push({ key: start });
    if (!increment(end)) out.push({ key: end, flags: NFT_SET_ELEM_INTERVAL_END });
  }
  return out;
}
