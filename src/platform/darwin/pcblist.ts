/**
 * `sysctl net.inet.{tcp,udp}.pcblist_n` buffer walker (private xnu ABI; what netstat -an
 * reads). Pure. Layout from fixtures/macos/binary/LAYOUTS.md §2 (xnu in_pcblist.c,
 * netstat.tproj/inet.c); no real buffer has been captured, so this is checked against the
 * documented layout only.
 *
 * Buffer = xinpgen, records, trailing xinpgen. Every sub-struct starts with {u32 len; u32
 * kind} and is padded to 8 (ROUNDUP64); walk by the len fields, never by fixed sizes, and
 * stop at a length <= sizeof(xinpgen) (the trailer), as netstat does. A record is complete
 * once every kind of its protocol has been seen.
 */
import ipaddr from '../../util/ipaddr.js';

export const XSO_SOCKET = 0x001;
export const XSO_RCVBUF = 0x002;
export const XSO_SNDBUF = 0x004;
export const XSO_STATS = 0x008;
export const XSO_INPCB = 0x010;
export const XSO_TCPCB = 0x020;
const XINPGEN_LEN = 24;
const INP_IPV4 = 0x1;
const INP_IPV6 = 0x2;

export const TCP_STATES = [
  'CLOSED',
  'LISTEN',
  'SYN_SENT',
  'SYN_RECEIVED',
  'ESTABLISHED',
  'CLOSE_WAIT',
  'FIN_WAIT_1',
  'CLOSING',
  'LAST_ACK',
  'FIN_WAIT_2',
  'TIME_WAIT',
];

export interface PcbEntry {
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  foreignAddress: string;
  foreignPort: number;
  uid?: number;
  /** so_last_pid: last process to use the socket (10.10+) */
  lastPid?: number;
  /** so_e_pid: effective (delegated) pid (10.10+) */
  effectivePid?: number;
  /** inp_gencnt: the socket's generation, unique per socket ever created (never reused) */
  generation: string;
  state?: string;
}

const roundup64 = (n: number) => (n + 7) & ~7;

export function decodePcblist(buf: Uint8Array, proto: 'tcp' | 'udp'): PcbEntry[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < XINPGEN_LEN) throw new Error('pcblist buffer shorter than xinpgen');
  const want =
    XSO_INPCB |
    XSO_SOCKET |
    XSO_RCVBUF |
    XSO_SNDBUF |
    XSO_STATS |
    (proto === 'tcp' ? XSO_TCPCB : 0);
  const out: PcbEntry[] = [];
  let seen = 0;
  let cur: Partial<PcbEntry> = {};
  for (let off = roundup64(dv.getUint32(0, true)); off + 8 <= buf.length;) {
    const len = dv.getUint32(off, true);
    const kind = dv.getUint32(off + 4, true);
    if (len <= XINPGEN_LEN) break;
    if (off + len > buf.length) throw new Error(`pcblist record at ${off} overruns the buffer`);
    if (kind === XSO_INPCB) {
      const vflag = buf[off + 44]!;
      const v6 = (vflag & INP_IPV6) !== 0 && (vflag & INP_IPV4) === 0;
      const addr = (at: number) =>
        v6
          ? ipaddr.fromByteArray([...buf.subarray(off + at, off + at + 16)]).toString()
          : [...buf.subarray(off + at + 12, off + at + 16)].join('.');
      cur.family = v6 ? 6 : 4;
      cur.generation = dv.getBigUint64(off + 28, true).toString();
      cur.foreignPort = dv.getUint16(off + 16, false);
      cur.localPort = dv.getUint16(off + 18, false);
      cur.foreignAddress = addr(48);
      cur.localAddress = addr(64);
    } else if (kind === XSO_SOCKET) {
      cur.uid = dv.getUint32(off + 64, true);
      if (len >= 76) {
        cur.lastPid = dv.getInt32(off + 68, true);
        cur.effectivePid = dv.getInt32(off + 72, true);
      }
    } else if (kind === XSO_TCPCB) {
      cur.state = TCP_STATES[dv.getInt32(off + 36, true)] ?? 'UNKNOWN';
    }
    seen |= kind & want;
    if (seen === want) {
      out.push(cur as PcbEntry);
      cur = {};
      seen = 0;
    }
    off += roundup64(len);
  }
  return out;
}
