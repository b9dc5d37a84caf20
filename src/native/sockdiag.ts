/**
 * NETLINK_SOCK_DIAG for inet sockets (docs/platform-linux.md#sock_diag): a dump of the TCP and
 * UDP sockets of one family with their owner, inode, cookie, cgroup id and, for TCP, the
 * payload byte counts of struct tcp_info; and the destroy multicast groups, which announce
 * every socket as it is freed with its final tcp_info. Layouts are parsed here (pure,
 * bounds-checked) and exchanged through netlink.ts's socket. A socket sees only the network
 * namespace it was opened in.
 *
 * Facts (linux/sock_diag.h, linux/inet_diag.h, linux/tcp.h, uapi; checked on 6.1 headers
 * and a 6.18 kernel):
 * - request: nlmsghdr type SOCK_DIAG_BY_FAMILY (20), NLM_F_REQUEST|NLM_F_DUMP, then
 *   struct inet_diag_req_v2 (56 bytes): sdiag_family u8, sdiag_protocol u8, idiag_ext u8
 *   (bit N-1 asks for extension N: INET_DIAG_INFO=2 → 0x02), pad u8, idiag_states u32 (bit
 *   per TCP state), struct inet_diag_sockid (48 bytes, zero for a dump).
 * - reply: struct inet_diag_msg (72 bytes): family u8 @0, state u8 @1, timer @2, retrans @3,
 *   sockid @4 { sport be16 @4, dport be16 @6, src 16 bytes @8, dst 16 bytes @24, if u32 @40,
 *   cookie 2×u32 @44 }, expires @52, rqueue @56, wqueue @60, uid u32 @64, inode u32 @68;
 *   then attributes. INET_DIAG_CGROUP_ID (21, u64, kernels ≥ 5.7) and INET_DIAG_MARK (15,
 *   u32, only to CAP_NET_ADMIN) come unasked; INET_DIAG_INFO (2) only when asked;
 *   INET_DIAG_PROTOCOL (10, u8) in destroy notifications (their message has no protocol).
 * - struct tcp_info (linux/tcp.h; offsetof checked with the compiler against the 6.1 uapi
 *   header, 232 bytes there): 8 bytes of u8 fields, 24 u32 fields from offset 8 to 104, then
 *   tcpi_pacing_rate u64 @104, tcpi_max_pacing_rate u64 @112, tcpi_bytes_acked u64 @120,
 *   tcpi_bytes_received u64 @128 (both since Linux 4.1; older kernels send a shorter
 *   struct, and the counts stay absent). bytes_acked counts the sequence space the peer
 *   acknowledged, so it exceeds the payload by the SYN and FIN (≤ 2); bytes_received by
 *   the FIN (≤ 1).
 * - destroy groups: SKNLGRP_INET_TCP_DESTROY 1, INET_UDP 2, INET6_TCP 3, INET6_UDP 4 (bind
 *   mask bits 0–3); joining needs CAP_NET_ADMIN. The kernel sends the notification from a
 *   work queue, shortly after the socket is freed (a TCP socket is freed when it enters
 *   TIME_WAIT or is closed; state TCP_CLOSE then, inode 0).
 */
import { AwgError } from '../errors.js';
import { NetlinkSocket } from './netlink.js';
import {
  AF_INET,
  AF_INET6,
  buildMessage,
  formatAddr,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  type NlMessage,
  type ResyncEvent,
} from './rtnl.js';

export const NETLINK_SOCK_DIAG = 4;
export const SOCK_DIAG_BY_FAMILY = 20;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const INET_DIAG_INFO = 2;
export const INET_DIAG_PROTOCOL = 10;
export const INET_DIAG_MARK = 15;
export const INET_DIAG_CGROUP_ID = 21;

export const SKNLGRP_INET_TCP_DESTROY = 1;
export const SKNLGRP_INET_UDP_DESTROY = 2;
export const SKNLGRP_INET6_TCP_DESTROY = 3;
export const SKNLGRP_INET6_UDP_DESTROY = 4;
/** the bind() mask of all four destroy groups */
export const DESTROY_GROUPS =
  (1 << (SKNLGRP_INET_TCP_DESTROY - 1)) |
  (1 << (SKNLGRP_INET_UDP_DESTROY - 1)) |
  (1 << (SKNLGRP_INET6_TCP_DESTROY - 1)) |
  (1 << (SKNLGRP_INET6_UDP_DESTROY - 1));

/** TCP states (include/net/tcp_states.h); UDP uses ESTABLISHED (connected) and CLOSE */
export const TCP_STATE = {
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT1: 4,
  FIN_WAIT2: 5,
  TIME_WAIT: 6,
  CLOSE: 7,
  CLOSE_WAIT: 8,
  LAST_ACK: 9,
  LISTEN: 10,
  CLOSING: 11,
  NEW_SYN_RECV: 12,
} as const;
export const ALL_STATES = 0xffffffff;

const REQ_LEN = 56;
const MSG_LEN = 72;
const TCPI_BYTES_ACKED = 120;
const TCPI_BYTES_RECEIVED = 128;

export type InetProto = 'tcp' | 'udp';

export interface InetSocket {
  family: 4 | 6;
  proto: InetProto;
  /** TCP_STATE */
  state: number;
  /** canonical text (inetAddr); an AF_INET6 socket's IPv4-mapped address is `::ffff:a.b.c.d` */
  src: string;
  sport: number;
  dst: string;
  dport: number;
  /** bound device, 0 for none */
  ifindex: number;
  uid: number;
  /** the socket's inode (`socket:[N]` in /proc/PID/fd); 0 once it has no file (closing) */
  inode: number;
  /** the kernel's socket cookie as 16 hex digits: unique for the life of the netns */
  cookie: string;
  /** cgroup v2 id of the creating process's cgroup (= the cgroup directory's inode; a u64, exact below 2^53) */
  cgroupId?: number;
  /** SO_MARK (reported to CAP_NET_ADMIN only) */
  mark?: number;
  /** tcp_info: sequence space acknowledged by the peer / received in order (payload + SYN/FIN) */
  bytesAcked?: number;
  bytesReceived?: number;
}

/** inet_diag_req_v2 dump request for one family and protocol. */
export function buildInetDiagDump(
  family: 4 | 6,
  proto: InetProto,
  seq: number,
  portid = 0,
  opts: { states?: number; info?: boolean } = {},
): Buffer {
  const req = Buffer.alloc(REQ_LEN);
  req.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  req.writeUInt8(proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, 1);
  req.writeUInt8(opts.info === false ? 0 : 1 << (INET_DIAG_INFO - 1), 2);
  req.writeUInt32LE((opts.states ?? ALL_STATES) >>> 0, 4);
  return buildMessage(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, portid, req);
}

/**
 * Address bytes → text: IPv4 dotted, IPv6 RFC 5952, and an IPv4-mapped IPv6 address as
 * `::ffff:a.b.c.d` (so a caller can tell it and strip the prefix).
 */
export function inetAddr(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (
    b.length === 16 &&
    b[10] === 0xff &&
    b[11] === 0xff &&
    b.subarray(0, 10).every((x) => x === 0)
  )
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return formatAddr(b);
}

/** a u64 as a number (exact below 2^53: byte counts) */
function u64(b: Buffer, off: number): number {
  return b.readUInt32LE(off + 4) * 0x100000000 + b.readUInt32LE(off);
}

/** the text of a socket's addresses and cookie, which do not change while it lives */
interface Names {
  src: string;
  dst: string;
  cookie: string;
  sport: number;
  dport: number;
}

/**
 * Formatting addresses and cookies is most of a parse's work; a cache keeps them per socket
 * cookie from one dump round to the next (`round()` drops what the last round did not see).
 */
export class InetNameCache {
  private prev = new Map<number, Names>();
  private cur = new Map<number, Names>();

  round(): void {
    this.prev = this.cur;
    this.cur = new Map();
  }

  /** @internal */
  lookup(key: number, sport: number, dport: number): Names | undefined {
    const n = this.cur.get(key) ?? this.prev.get(key);
    if (!n || n.sport !== sport || n.dport !== dport) return undefined;
    this.cur.set(key, n);
    return n;
  }

  /** @internal */
  keep(key: number, n: Names): void {
    this.cur.set(key, n);
  }
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

/**
 * One SOCK_DIAG_BY_FAMILY message → a socket, or undefined when it is not an inet TCP/UDP
 * socket message or too short. `proto` is the dump's protocol; a destroy notification names
 * its own (INET_DIAG_PROTOCOL), which wins.
 */
export function parseInetDiag(
  m: NlMessage,
  proto?: InetProto,
  names?: InetNameCache,
): InetSocket | undefined {
  if (m.type !== SOCK_DIAG_BY_FAMILY) return undefined;
  const p = m.payload;
  if (p.length < MSG_LEN) return undefined;
  const af = p[0]!;
  if (af !== AF_INET && af !== AF_INET6) return undefined;
  const alen = af === AF_INET ? 4 : 16;
  let info = -1;
  let infoLen = 0;
  let cgroupId: number | undefined;
  let mark: number | undefined;
  let protoNum: number | undefined;
  // attributes: bounds-checked walk (a short or overlong one ends it)
  let off = MSG_LEN;
  while (off + 4 <= p.length) {
    const len = p.readUInt16LE(off);
    if (len < 4 || off + len > p.length) break;
    const type = p.readUInt16LE(off + 2) & 0x3fff;
    const vlen = len - 4;
    const v = off + 4;
    if (type === INET_DIAG_INFO) {
      info = v;
      infoLen = vlen;
    } else if (type === INET_DIAG_CGROUP_ID && vlen >= 8) cgroupId = u64(p, v);
    else if (type === INET_DIAG_MARK && vlen >= 4) mark = p.readUInt32LE(v);
    else if (type === INET_DIAG_PROTOCOL && vlen >= 1) protoNum = p[v];
    off += (len + 3) & ~3;
  }
  let pr: InetProto | undefined = proto;
  if (protoNum !== undefined)
    pr = protoNum === IPPROTO_TCP ? 'tcp' : protoNum === IPPROTO_UDP ? 'udp' : undefined;
  if (pr === undefined) return undefined;
  const sport = p.readUInt16BE(4);
  const dport = p.readUInt16BE(6);
  const lo = p.readUInt32LE(44);
  const hi = p.readUInt32LE(48);
  const key = hi * 0x100000000 + lo;
  let n = names?.lookup(key, sport, dport);
  if (!n) {
    n = {
      src: inetAddr(p.subarray(8, 8 + alen)),
      dst: inetAddr(p.subarray(24, 24 + alen)),
      cookie: hex8(hi) + hex8(lo),
      sport,
      dport,
    };
    names?.keep(key, n);
  }
  const s: InetSocket = {
    family: af === AF_INET ? 4 : 6,
    proto: pr,
    state: p[1]!,
    src: n.src,
    sport,
    dst: n.dst,
    dport,
    ifindex: p.readUInt32LE(40),
    uid: p.readUInt32LE(64),
    inode: p.readUInt32LE(68),
    cookie: n.cookie,
  };
  if (cgroupId !== undefined) s.cgroupId = cgroupId;
  if (mark !== undefined) s.mark = mark;
  if (pr === 'tcp' && info >= 0 && infoLen >= TCPI_BYTES_RECEIVED + 8) {
    s.bytesAcked = u64(p, info + TCPI_BYTES_ACKED);
    s.bytesReceived = u64(p, info + TCPI_BYTES_RECEIVED);
  }
  return s;
}

/** A request socket for dumps (NETLINK_SOCK_DIAG, no groups) in `netns` (default: ours). */
export function openSockDiag(netns?: string): NetlinkSocket {
  return NetlinkSocket.open({ protocol: NETLINK_SOCK_DIAG, netns });
}

/**
 * Every socket of one family and protocol (all states unless `states` narrows them; TCP
 * with tcp_info). Synchronous: the kernel answers a dump inside recv.
 */
export function dumpInetSockets(
  sock: NetlinkSocket,
  family: 4 | 6,
  proto: InetProto,
  opts: { states?: number; names?: InetNameCache } = {},
): InetSocket[] {
  const msg = buildInetDiagDump(family, proto, sock.nextSeq(), sock.portid, {
    ...(opts.states !== undefined ? { states: opts.states } : {}),
    info: proto === 'tcp',
  });
  return sock.dump(msg, (m) => parseInetDiag(m, proto, opts.names));
}

export interface DestroyedBatch {
  sockets: InetSocket[];
  /** notifications the kernel or our queue dropped since the last take (0: none lost) */
  lost: number;
}

export interface DestroyWatchOptions {
  netns?: string | undefined;
  /** receive buffer bytes (SO_RCVBUFFORCE when root; default 4 MiB) */
  rcvbuf?: number;
  /** sockets kept between takes before the oldest are dropped (default 65536) */
  maxQueued?: number;
}

/**
 * The four destroy groups: every inet TCP/UDP socket the namespace frees, with its final
 * counts, collected between `take()`s. Reads never block: the event loop drains the socket
 * as it becomes readable, and `take()` drains what is queued right now first.
 */
export class DestroyWatch {
  private queue: InetSocket[] = [];
  private lost = 0;
  private failed: AwgError | undefined;

  private constructor(
    private readonly sock: NetlinkSocket,
    private readonly maxQueued: number,
  ) {}

  static open(opts: DestroyWatchOptions = {}): DestroyWatch {
    const sock = NetlinkSocket.open({
      protocol: NETLINK_SOCK_DIAG,
      groups: DESTROY_GROUPS,
      netns: opts.netns,
      rcvbuf: opts.rcvbuf ?? 4 << 20,
      rcvbufForce: true,
    });
    const w = new DestroyWatch(sock, opts.maxQueued ?? 65536);
    sock.listenWith(
      (m) => parseInetDiag(m),
      (events) => w.push(events),
      (e) => (w.failed = e),
    );
    return w;
  }

  private push(events: (InetSocket | ResyncEvent)[]): void {
    for (const e of events) {
      if ('type' in e) {
        // the kernel dropped notifications (receive queue full); how many is unknown
        this.lost++;
        continue;
      }
      if (this.queue.length >= this.maxQueued) {
        this.queue.shift();
        this.lost++;
      }
      this.queue.push(e);
    }
  }

  /** The sockets destroyed since the last take, oldest first. Throws if receiving failed. */
  take(): DestroyedBatch {
    if (this.failed) throw this.failed;
    this.sock.pump();
    const out = { sockets: this.queue, lost: this.lost };
    this.queue = [];
    this.lost = 0;
    return out;
  }

  close(): void {
    this.sock.close();
  }
}
