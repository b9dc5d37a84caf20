/**
 * SO_ORIGINAL_DST: the destination a connection had before nft `redirect`/`dnat` rewrote it
 * (docs/platform-linux.md#so_original_dst). Leaf module over libc.ts.
 *
 * The level follows the family of the accepted connection: SOL_IP for IPv4 (including
 * v4-mapped `::ffff:a.b.c.d` on a dual-stack listener), SOL_IPV6 for IPv6. Kernel quirks:
 * without a conntrack entry the call fails with ENOENT; the wrong level gives ENOENT (on a
 * `::` listener) or EOPNOTSUPP (on a `0.0.0.0` listener); a connection that was NOT
 * redirected returns its own local address, which the caller must treat as "not redirected".
 */
import { AwgError } from '../errors.js';
import { check, getsockopt } from './libc.js';

export const SOL_IP = 0;
export const SOL_IPV6 = 41;
export const SO_ORIGINAL_DST = 80;
export const IP6T_SO_ORIGINAL_DST = 80;

export interface SockAddr {
  family: 4 | 6;
  address: string;
  port: number;
}

/** Decodes a sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes); family is host order. */
export function decodeSockaddr(buf: Uint8Array, len = buf.length): SockAddr | undefined {
  const b = Buffer.from(buf.buffer, buf.byteOffset, Math.min(len, buf.length));
  if (b.length < 2) return undefined;
  const fam = b.readUInt16LE(0);
  if (fam === 2 && b.length >= 8) {
    return { family: 4, port: b.readUInt16BE(2), address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}` };
  }
  if (fam === 10 && b.length >= 24) {
    const parts: string[] = [];
    for (let i = 0; i < 8; i++) parts.push(b.readUInt16BE(8 + 2 * i).toString(16));
    return { family: 6, port: b.readUInt16BE(2), address: compressV6(parts) };
  }
  return undefined;
}

/** RFC 5952 text form of eight hex groups (longest run of ≥ 2 zero groups becomes `::`). */
function compressV6(g: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

/**
 * The pre-NAT destination of the accepted TCP socket `fd`. `family` is the family of the
 * connection as seen locally (4 for IPv4 and v4-mapped peers). Throws SyscallError
 * (ENOENT: no NAT happened / no conntrack entry).
 */
export function originalDst(fd: number, family: 4 | 6): SockAddr {
  const buf = Buffer.alloc(family === 4 ? 16 : 28);
  const len = check(
    'getsockopt(SO_ORIGINAL_DST)',
    getsockopt(fd, family === 4 ? SOL_IP : SOL_IPV6, SO_ORIGINAL_DST, buf),
  );
  const a = decodeSockaddr(buf, len);
  if (!a) throw new AwgError('bug', 'SO_ORIGINAL_DST returned an unknown address family');
  return a;
}
