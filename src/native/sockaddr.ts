/**
 * Address bytes for the kernel: numeric IPv4 / IPv6 text parsed into network-order bytes, and
 * a sockaddr_in / sockaddr_in6 written from an address and a port (udpbatch.ts's destination,
 * udpsock.ts's bind address). Pure: no I/O, no koffi.
 *
 *   sockaddr_in  { u16 family; be16 port; u8 addr[4]; u8 zero[8] }              16 bytes
 *   sockaddr_in6 { u16 family; be16 port; u32 flowinfo; u8 addr[16]; u32 scope } 28 bytes
 */

// (libc.ts has these too; this module stays free of koffi)
const AF_INET = 2;
const AF_INET6 = 10;
/** Bytes of a sockaddr_in6, the larger of the two. */
export const SOCKADDR_IN6 = 28;
/** Bytes of a sockaddr_in. */
export const SOCKADDR_IN = 16;

/** Parses a numeric IPv4 (dotted quad) into 4 bytes of `out` at `off`; false when malformed. */
export function parseIPv4(s: string, out: Uint8Array, off: number): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return false;
    const n = Number(p);
    if (n > 255) return false;
    out[off + i] = n;
  }
  return true;
}

/** Parses a numeric IPv6 (RFC 4291 text, optional dotted tail, no zone) into 16 bytes. */
export function parseIPv6(s: string, out: Uint8Array, off: number): boolean {
  if (s.includes('%')) s = s.slice(0, s.indexOf('%'));
  const words: number[] = [];
  let tail: number[] = [];
  const dbl = s.indexOf('::');
  if (dbl !== s.lastIndexOf('::')) return false;
  const parseGroups = (t: string, dst: number[], allowV4: boolean): boolean => {
    if (t === '') return true;
    const gs = t.split(':');
    for (let i = 0; i < gs.length; i++) {
      const g = gs[i]!;
      if (allowV4 && i === gs.length - 1 && g.includes('.')) {
        const v4 = new Uint8Array(4);
        if (!parseIPv4(g, v4, 0)) return false;
        dst.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      dst.push(parseInt(g, 16));
    }
    return true;
  };
  if (dbl >= 0) {
    if (!parseGroups(s.slice(0, dbl), words, false)) return false;
    if (!parseGroups(s.slice(dbl + 2), tail, true)) return false;
    if (words.length + tail.length > 7) return false;
    while (words.length + tail.length < 8) words.push(0);
  } else {
    if (!parseGroups(s, words, true)) return false;
    if (words.length !== 8) return false;
    tail = [];
  }
  const all = words.concat(tail);
  for (let i = 0; i < 8; i++) {
    out[off + 2 * i] = all[i]! >> 8;
    out[off + 2 * i + 1] = all[i]! & 0xff;
  }
  return true;
}

/**
 * Writes the sockaddr of `address`:`port` for a socket of `family` at `v[o…]` (16 bytes for 4,
 * 28 for 6, zeroed first). An IPv4 address on an IPv6 socket becomes v4-mapped (::ffff:a.b.c.d);
 * an IPv6 address on an IPv4 socket, or text that does not parse, returns false (the bytes are
 * then garbage).
 */
export function writeSockaddr(
  v: Buffer,
  o: number,
  family: 4 | 6,
  address: string,
  port: number,
): boolean {
  const v6 = address.includes(':');
  if (family === 4) {
    v.fill(0, o, o + SOCKADDR_IN);
    if (v6 || !parseIPv4(address, v, o + 4)) return false;
    v.writeUInt16LE(AF_INET, o);
  } else {
    v.fill(0, o, o + SOCKADDR_IN6);
    if (v6) {
      if (!parseIPv6(address, v, o + 8)) return false;
    } else {
      if (!parseIPv4(address, v, o + 20)) return false;
      v[o + 18] = 0xff;
      v[o + 19] = 0xff;
    }
    v.writeUInt16LE(AF_INET6, o);
  }
  v.writeUInt16BE(port, o + 2);
  return true;
}

/**
 * Reads back a sockaddr_in / sockaddr_in6 (the kernel's, or one `writeSockaddr` wrote): its
 * family (4 or 6; 0 for any other), the port, and where the address bytes start.
 */
export function readSockaddr(
  v: Uint8Array,
  o: number,
): { family: 0 | 4 | 6; port: number; addressAt: number } {
  const af = v[o]! | (v[o + 1]! << 8);
  const family = af === AF_INET ? 4 : af === AF_INET6 ? 6 : 0;
  const port = (v[o + 2]! << 8) | v[o + 3]!;
  return { family, port, addressAt: o + (family === 6 ? 8 : 4) };
}
