/**
 * Addresses stored as bytes (4 for IPv4, 16 for IPv6) to the text the list grammar reads, and
 * an inclusive range of them to the fewest prefixes that cover exactly it.
 */
import ipaddr from '../../util/ipaddr.js';

function toBig(b: Uint8Array): bigint {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

function fromBig(n: bigint, bytes: number): string {
  if (bytes === 4) return [24n, 16n, 8n, 0n].map((s) => Number((n >> s) & 0xffn)).join('.');
  const parts: number[] = [];
  for (let i = 7; i >= 0; i--) parts.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  return new ipaddr.IPv6(parts).toString();
}

/** an address of 4 or 16 bytes as text */
export function ipText(b: Uint8Array): string {
  return fromBig(toBig(b), b.length);
}

/**
 * The prefixes of the range from..to (same length, from ≤ to): the largest aligned block at
 * each step. At most 2 × bits prefixes (62 for IPv4, 254 for IPv6).
 */
export function rangePrefixes(from: Uint8Array, to: Uint8Array): string[] {
  const bits = from.length * 8;
  let s = toBig(from);
  const e = toBig(to);
  const out: string[] = [];
  while (s <= e) {
    let size = s === 0n ? 1n << BigInt(bits) : s & -s;
    while (s + size - 1n > e) size >>= 1n;
    out.push(`${fromBig(s, from.length)}/${bits - (size.toString(2).length - 1)}`);
    s += size;
  }
  return out;
}

/** compare two addresses of the same length */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}
