/**
 * The SOCKS5 UDP request header (RFC 1928 §7), written and read by us, strictly:
 *
 *   RSV (2, 0x0000) | FRAG (1) | ATYP (1) | DST.ADDR | DST.PORT (2) | DATA
 *
 * ATYP 1: 4 address bytes; 4: 16 bytes; 3: a length byte (1..255) then the name. Anything
 * else, a header cut short, or RSV ≠ 0 is `malformed`. FRAG ≠ 0 (`fragment`): RFC 1928 lets
 * an implementation that does not reassemble drop every fragment, which we do. Pure.
 */
import { isIP } from 'node:net';
import ipaddr from '../util/ipaddr.js';
import type { Destination } from './types.js';

export const ATYP_IPV4 = 1;
export const ATYP_NAME = 3;
export const ATYP_IPV6 = 4;

/** the largest UDP payload of one IPv4 datagram (65535 − 20 IP − 8 UDP); IPv6 allows 65527 */
export const MAX_UDP_PAYLOAD = 65507;

export interface UdpFrame {
  atyp: 1 | 3 | 4;
  /** IPv4 dotted quad, IPv6 in its compressed form, or the name as sent */
  host: string;
  port: number;
  /** a view into the datagram */
  data: Buffer;
}

export type UdpFrameError = 'malformed' | 'fragment';

const bytesOf = (host: string): number[] => ipaddr.parse(host).toByteArray();
const textOf = (b: Buffer): string => ipaddr.fromByteArray([...b]).toString();

/** the ATYP a destination is written with */
export function atypOf(host: string): 1 | 3 | 4 {
  const v = isIP(host);
  return v === 4 ? ATYP_IPV4 : v === 6 ? ATYP_IPV6 : ATYP_NAME;
}

/** header length for this destination */
export function udpHeaderLength(dst: Destination): number {
  const a = atypOf(dst.host);
  return 4 + (a === ATYP_IPV4 ? 4 : a === ATYP_IPV6 ? 16 : 1 + Buffer.byteLength(dst.host)) + 2;
}

/** header + data; a name longer than 255 bytes throws (our destinations are addresses) */
export function buildUdpFrame(dst: Destination, data: Buffer): Buffer {
  const atyp = atypOf(dst.host);
  const head = Buffer.alloc(udpHeaderLength(dst));
  head[3] = atyp;
  let o = 4;
  if (atyp === ATYP_NAME) {
    const n = Buffer.from(dst.host);
    if (n.length < 1 || n.length > 255) throw new RangeError(`SOCKS5 name of ${n.length} bytes`);
    head[o++] = n.length;
    n.copy(head, o);
    o += n.length;
  } else {
    head.set(bytesOf(dst.host), o);
    o += atyp === ATYP_IPV4 ? 4 : 16;
  }
  head.writeUInt16BE(dst.port, o);
  return Buffer.concat([head, data]);
}

/** a datagram from the relay → its frame, or why it is dropped */
export function parseUdpFrame(b: Buffer): UdpFrame | UdpFrameError {
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0) return 'malformed';
  const atyp = b[3];
  let o = 4;
  let host: string;
  if (atyp === ATYP_IPV4) {
    if (b.length < o + 4 + 2) return 'malformed';
    host = textOf(b.subarray(o, o + 4));
    o += 4;
  } else if (atyp === ATYP_IPV6) {
    if (b.length < o + 16 + 2) return 'malformed';
    host = textOf(b.subarray(o, o + 16));
    o += 16;
  } else if (atyp === ATYP_NAME) {
    const n = b[o] ?? 0;
    if (n === 0 || b.length < o + 1 + n + 2) return 'malformed';
    host = b.subarray(o + 1, o + 1 + n).toString('latin1');
    o += 1 + n;
  } else return 'malformed';
  // FRAG is judged after the header is known to be whole: a cut header is malformed either way
  if (b[2] !== 0) return 'fragment';
  return { atyp, host, port: b.readUInt16BE(o), data: b.subarray(o + 2) };
}

/**
 * Whether a reply frame names `target` exactly: the same address type (an IPv4 target is
 * answered with ATYP 1, not as a v4-mapped IPv6 address or a name), address and port.
 */
export function frameIsFrom(f: UdpFrame, target: Destination): boolean {
  if (f.port !== target.port || f.atyp !== atypOf(target.host)) return false;
  if (f.atyp === ATYP_NAME) return f.host.toLowerCase() === target.host.toLowerCase();
  return bytesOf(f.host).join() === bytesOf(target.host).join();
}
