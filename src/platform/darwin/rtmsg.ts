/**
 * PF_ROUTE message decoder (rt_msghdr / ifa_msghdr / if_msghdr / ifma_msghdr, RTM_VERSION 5).
 * Pure; layouts in fixtures/macos/binary/LAYOUTS.md (xnu bsd/net/route.h, little-endian).
 *
 * Sockaddrs follow the header in RTAX order, present iff their RTA bit is set; each
 * advances by sa_len rounded up to 4 (a zero sa_len still takes 4). Netmasks may be
 * "compressed" (sa_len < full size, only significant bytes present) and the last sockaddr
 * may be unpadded, so every read is bounded by rtm_msglen.
 */
import ipaddr from '../../util/ipaddr.js';

export const RTM_VERSION = 5;

export const RTM_TYPES: Record<number, string> = {
  0x1: 'RTM_ADD',
  0x2: 'RTM_DELETE',
  0x3: 'RTM_CHANGE',
  0x4: 'RTM_GET',
  0x5: 'RTM_LOSING',
  0x6: 'RTM_REDIRECT',
  0x7: 'RTM_MISS',
  0x8: 'RTM_LOCK',
  0x9: 'RTM_OLDADD',
  0xa: 'RTM_OLDDEL',
  0xb: 'RTM_RESOLVE',
  0xc: 'RTM_NEWADDR',
  0xd: 'RTM_DELADDR',
  0xe: 'RTM_IFINFO',
  0xf: 'RTM_NEWMADDR',
  0x10: 'RTM_DELMADDR',
  0x12: 'RTM_IFINFO2',
  0x13: 'RTM_NEWMADDR2',
  0x14: 'RTM_GET2',
};

/** RTF_* bits (bsd/net/route.h). */
export const RTF_FLAGS: [number, string][] = [
  [0x1, 'UP'],
  [0x2, 'GATEWAY'],
  [0x4, 'HOST'],
  [0x8, 'REJECT'],
  [0x10, 'DYNAMIC'],
  [0x20, 'MODIFIED'],
  [0x40, 'DONE'],
  [0x80, 'DELCLONE'],
  [0x100, 'CLONING'],
  [0x200, 'XRESOLVE'],
  [0x400, 'LLINFO'],
  [0x800, 'STATIC'],
  [0x1000, 'BLACKHOLE'],
  [0x2000, 'NOIFREF'],
  [0x4000, 'PROTO2'],
  [0x8000, 'PROTO1'],
  [0x10000, 'PRCLONING'],
  [0x20000, 'WASCLONED'],
  [0x40000, 'PROTO3'],
  [0x100000, 'PINNED'],
  [0x200000, 'LOCAL'],
  [0x400000, 'BROADCAST'],
  [0x800000, 'MULTICAST'],
  [0x1000000, 'IFSCOPE'],
  [0x2000000, 'CONDEMNED'],
  [0x4000000, 'IFREF'],
  [0x8000000, 'PROXY'],
  [0x10000000, 'ROUTER'],
  [0x40000000, 'GLOBAL'],
];

export const RTAX_NAMES = [
  'dst',
  'gateway',
  'netmask',
  'genmask',
  'ifp',
  'ifa',
  'author',
  'brd',
] as const;
export type RtaxName = (typeof RTAX_NAMES)[number];

export const AF_INET = 2;
export const AF_LINK = 18;
export const AF_INET6 = 30;

export type Sockaddr =
  | { family: 'inet'; address: string }
  | { family: 'inet6'; address: string; scopeId: number }
  | { family: 'link'; index: number; type: number; name: string; lladdr: string }
  | { family: 'mask'; bytes: number[] }
  | { family: 'unknown'; af: number; bytes: number[] };

export interface RouteMessage {
  msglen: number;
  version: number;
  type: number;
  typeName: string;
  index: number;
  flags: number;
  flagNames: string[];
  addrs: number;
  /** rt_msghdr only */
  pid?: number;
  seq?: number;
  errno?: number;
  sockaddrs: Partial<Record<RtaxName, Sockaddr>>;
  /** netmask as a prefix length, interpreted in the dst family */
  prefixlen?: number;
}

const HEADER_LEN: Record<number, number> = {
  0xc: 20,
  0xd: 20,
  0xe: 112,
  0xf: 16,
  0x10: 16,
  0x12: 160,
  0x13: 20,
};
const RT_MSGHDR_LEN = 92;

const roundup = (n: number) => (n > 0 ? 1 + ((n - 1) | 3) : 4);
const hex = (b: number[]) => b.map((x) => x.toString(16).padStart(2, '0')).join(':');

function ipv6(b: Uint8Array, off: number): string {
  return ipaddr.fromByteArray([...b.subarray(off, off + 16)]).toString();
}

function decodeSockaddr(b: Uint8Array, off: number, end: number, isMask: boolean): Sockaddr {
  const len = b[off]!;
  const af = b[off + 1] ?? 0;
  const stop = Math.min(off + len, end);
  const bytes = [...b.subarray(off, stop)];
  if (isMask) return { family: 'mask', bytes };
  if (af === AF_INET && len >= 8)
    return { family: 'inet', address: [...b.subarray(off + 4, off + 8)].join('.') };
  if (af === AF_INET6 && len >= 24) {
    const dv = new DataView(b.buffer, b.byteOffset);
    return {
      family: 'inet6',
      address: ipv6(b, off + 8),
      scopeId: len >= 28 ? dv.getUint32(off + 24, true) : 0,
    };
  }
  if (af === AF_LINK && len >= 8) {
    const index = b[off + 2]! | (b[off + 3]! << 8);
    const nlen = b[off + 5]!;
    const alen = b[off + 6]!;
    const d = off + 8;
    const name = Buffer.from(b.subarray(d, Math.min(d + nlen, stop))).toString('latin1');
    return {
      family: 'link',
      index,
      type: b[off + 4]!,
      name,
      lladdr: hex([...b.subarray(d + nlen, Math.min(d + nlen + alen, stop))]),
    };
  }
  return { family: 'unknown', af, bytes };
}

/** Prefix length from a (possibly compressed) netmask sockaddr: address bytes start at 4 (v4) or 8 (v6). */
export function maskPrefix(m: Sockaddr & { family: 'mask' }, family: 4 | 6): number {
  const start = family === 4 ? 4 : 8;
  const width = family === 4 ? 4 : 16;
  let n = 0;
  for (let i = 0; i < width; i++) {
    const v = m.bytes[start + i] ?? 0;
    if (v === 0xff) {
      n += 8;
      continue;
    }
    let x = v;
    while (x & 0x80) {
      n++;
      x = (x << 1) & 0xff;
    }
    break;
  }
  return n;
}

/** Decode one message; throws on truncation or a version other than 5. */
export function decodeRouteMessage(buf: Uint8Array): RouteMessage {
  if (buf.length < 4) throw new Error('route message shorter than its header');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const msglen = dv.getUint16(0, true);
  const version = buf[2]!;
  const type = buf[3]!;
  if (version !== RTM_VERSION) throw new Error(`unsupported rtm_version ${version}`);
  if (msglen > buf.length)
    throw new Error(`truncated route message: msglen ${msglen} > ${buf.length}`);
  const hlen = HEADER_LEN[type] ?? RT_MSGHDR_LEN;
  if (msglen < hlen) throw new Error(`route message ${msglen} bytes < header ${hlen}`);
  const isRt = HEADER_LEN[type] === undefined;
  // rt_msghdr: index u16@4, flags@8, addrs@12. if/ifa/ifma_msghdr: addrs@4, flags@8, index u16@12.
  const addrs = isRt ? dv.getInt32(12, true) : dv.getInt32(4, true);
  const flags = dv.getInt32(8, true);
  const index = isRt ? dv.getUint16(4, true) : dv.getUint16(12, true);
  const m: RouteMessage = {
    msglen,
    version,
    type,
    typeName: RTM_TYPES[type] ?? `RTM_${type}`,
    index,
    flags,
    flagNames: isRt ? RTF_FLAGS.filter(([bit]) => flags & bit).map(([, n]) => n) : [],
    addrs,
    sockaddrs: {},
  };
  if (isRt) {
    m.pid = dv.getInt32(16, true);
    m.seq = dv.getInt32(20, true);
    m.errno = dv.getInt32(24, true);
  }
  let off = hlen;
  for (let i = 0; i < RTAX_NAMES.length; i++) {
    if (!(addrs & (1 << i))) continue;
    if (off >= msglen) throw new Error(`sockaddr ${RTAX_NAMES[i]} beyond msglen ${msglen}`);
    const name = RTAX_NAMES[i]!;
    m.sockaddrs[name] = decodeSockaddr(buf, off, msglen, name === 'netmask' || name === 'genmask');
    off += roundup(buf[off]!);
  }
  const mask = m.sockaddrs.netmask;
  const dst = m.sockaddrs.dst;
  if (mask?.family === 'mask' && (dst?.family === 'inet' || dst?.family === 'inet6'))
    m.prefixlen = maskPrefix(mask, dst.family === 'inet' ? 4 : 6);
  return m;
}

/** Split a buffer of back-to-back messages (a read from the socket or a NET_RT_DUMP sysctl). */
export function splitRouteMessages(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    const len = buf[off]! | (buf[off + 1]! << 8);
    if (len === 0 || off + len > buf.length) break;
    out.push(buf.subarray(off, off + len));
    off += len;
  }
  return out;
}
