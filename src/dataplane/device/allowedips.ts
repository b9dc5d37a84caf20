/**
 * Allowed-IPs table: a binary trie per family with longest-prefix match (cryptokey routing).
 * Inbound: the inner source must map to the sending peer. Outbound: the destination picks
 * the peer. Prefixes are canonicalised (host bits cleared).
 */
import { isIP } from 'node:net';
import ipaddr from '../../util/ipaddr.js';

export interface Prefix {
  /** 4 or 16 bytes, host bits cleared */
  bytes: Uint8Array;
  bits: number;
}

interface Node<T> {
  zero: Node<T> | null;
  one: Node<T> | null;
  value: T | null;
}

const node = <T>(): Node<T> => ({ zero: null, one: null, value: null });
const bitAt = (b: Uint8Array, i: number) => (b[i >> 3]! >> (7 - (i & 7))) & 1;

export function addressBytes(address: string): Uint8Array | null {
  if (!isIP(address)) return null;
  return new Uint8Array(ipaddr.parse(address).toByteArray());
}

export function formatAddress(bytes: Uint8Array): string {
  return ipaddr.fromByteArray(Array.from(bytes)).toString();
}

/** `10.0.0.0/8`, `fd00::/64`, or a bare address (/32, /128). Throws Error when malformed. */
export function parsePrefix(s: string): Prefix {
  const [addr, len, extra] = s.trim().split('/');
  const bytes = addr === undefined ? null : addressBytes(addr);
  if (!bytes || extra !== undefined) throw new Error(`invalid prefix "${s}"`);
  const max = bytes.length * 8;
  if (len !== undefined && !/^\d{1,3}$/.test(len))
    throw new Error(`invalid prefix length in "${s}"`);
  const bits = len === undefined ? max : Number(len);
  if (bits > max) throw new Error(`prefix length ${bits} too long in "${s}"`);
  for (let i = bits; i < max; i++) bytes[i >> 3]! &= ~(1 << (7 - (i & 7)));
  return { bytes, bits };
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.bytes)}/${p.bits}`;
}

export class AllowedIPs<T> {
  private v4: Node<T> = node();
  private v6: Node<T> = node();
  /**
   * Bumped by every change. The last IPv4 and IPv6 lookups are kept with the generation they
   * were made in: a packet is checked against its peer's prefixes every time (inbound source,
   * outbound destination), and one flow's packets repeat the same address, where the trie
   * walks up to 32 or 128 nodes (a visible share of the engine's thread, engine-syscalls --user).
   */
  private gen = 0;
  private v4Key = -1;
  private v4Gen = -1;
  private v4Val: T | null = null;
  private readonly v6Key = new Uint8Array(16);
  private v6Gen = -1;
  private v6Val: T | null = null;

  private root(len: number): Node<T> {
    return len === 4 ? this.v4 : this.v6;
  }

  /** Inserts or re-points a prefix to `value` (a prefix belongs to at most one peer). */
  insert(p: Prefix, value: T): void {
    this.gen++;
    let n = this.root(p.bytes.length);
    for (let i = 0; i < p.bits; i++) {
      const k = bitAt(p.bytes, i) ? 'one' : 'zero';
      n = n[k] ??= node();
    }
    n.value = value;
  }

  /** Removes an exact prefix if it currently belongs to `value` (any owner when omitted). */
  remove(p: Prefix, value?: T): boolean {
    this.gen++;
    const path: Node<T>[] = [];
    let n: Node<T> | null = this.root(p.bytes.length);
    for (let i = 0; i < p.bits && n; i++) {
      path.push(n);
      n = bitAt(p.bytes, i) ? n.one : n.zero;
    }
    if (!n || n.value === null || (value !== undefined && n.value !== value)) return false;
    n.value = null;
    for (let i = path.length - 1; i >= 0 && n.value === null && !n.zero && !n.one; i--) {
      const parent: Node<T> = path[i]!;
      if (parent.zero === n) parent.zero = null;
      else parent.one = null;
      n = parent;
    }
    return true;
  }

  removeValue(value: T): void {
    this.gen++;
    const walk = (n: Node<T> | null): boolean => {
      if (!n) return true;
      if (n.value === value) n.value = null;
      if (walk(n.zero)) n.zero = null;
      if (walk(n.one)) n.one = null;
      return n.value === null && !n.zero && !n.one;
    };
    for (const root of [this.v4, this.v6]) {
      if (walk(root.zero)) root.zero = null;
      if (walk(root.one)) root.one = null;
      if (root.value === value) root.value = null;
    }
  }

  /** Longest-prefix match on a 4- or 16-byte address. */
  lookup(addr: Uint8Array): T | null {
    return addr.length === 4 || addr.length === 16
      ? this.lookupAt(addr, 0, addr.length)
      : this.walk(addr);
  }

  /**
   * Longest-prefix match on the `len`-byte (4 or 16) address at `b[off]` (a packet's source
   * or destination field): no view is made unless the trie is walked.
   */
  lookupAt(b: Uint8Array, off: number, len: 4 | 16): T | null {
    if (len === 4) {
      const k = ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
      if (k === this.v4Key && this.v4Gen === this.gen) return this.v4Val;
      this.v4Val = this.walk(b.subarray(off, off + 4));
      this.v4Key = k;
      this.v4Gen = this.gen;
      return this.v4Val;
    }
    const key = this.v6Key;
    if (this.v6Gen === this.gen) {
      let i = 0;
      while (i < 16 && b[off + i] === key[i]) i++;
      if (i === 16) return this.v6Val;
    }
    const addr = b.subarray(off, off + 16);
    this.v6Val = this.walk(addr);
    key.set(addr);
    this.v6Gen = this.gen;
    return this.v6Val;
  }

  private walk(addr: Uint8Array): T | null {
    let n: Node<T> | null = this.root(addr.length);
    let best: T | null = null;
    const max = addr.length * 8;
    for (let i = 0; n; i++) {
      if (n.value !== null) best = n.value;
      if (i === max) break;
      n = bitAt(addr, i) ? n.one : n.zero;
    }
    return best;
  }

  /** Prefixes owned by `value`, v4 then v6, in trie order. */
  entriesFor(value: T): Prefix[] {
    const out: Prefix[] = [];
    const walk = (n: Node<T> | null, bits: number, acc: Uint8Array) => {
      if (!n) return;
      if (n.value === value) out.push({ bytes: Uint8Array.from(acc), bits });
      if (n.zero) walk(n.zero, bits + 1, acc);
      if (n.one) {
        acc[bits >> 3]! |= 1 << (7 - (bits & 7));
        walk(n.one, bits + 1, acc);
        acc[bits >> 3]! &= ~(1 << (7 - (bits & 7)));
      }
    };
    walk(this.v4, 0, new Uint8Array(4));
    walk(this.v6, 0, new Uint8Array(16));
    return out;
  }
}
