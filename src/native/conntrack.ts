/**
 * ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK): a dump of the connection tracking
 * table of a network namespace, per entry its tuples, mark, id and byte/packet counters
 * (docs/platform-linux.md#conntrack-accounting). The parser is pure and bounds-checked: a
 * message from the kernel is trusted no further than its own lengths say, and an entry
 * whose tuples are incomplete is skipped.
 *
 * Facts (linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h, uapi):
 * - request: nlmsghdr type (NFNL_SUBSYS_CTNETLINK 1 << 8) | IPCTNL_MSG_CT_GET 1,
 *   NLM_F_REQUEST|NLM_F_DUMP, then struct nfgenmsg { family u8, version 0, res_id be16 };
 *   family AF_UNSPEC dumps every family, AF_INET/AF_INET6 one. The replies are
 *   IPCTNL_MSG_CT_NEW (0) messages with the same nfgenmsg (its family is the entry's).
 * - attributes (nested ones carry NLA_F_NESTED; every value is network order):
 *   CTA_TUPLE_ORIG 1, CTA_TUPLE_REPLY 2 { CTA_TUPLE_IP 1 { V4_SRC 1, V4_DST 2, V6_SRC 3,
 *   V6_DST 4 }, CTA_TUPLE_PROTO 2 { PROTO_NUM 1 u8, SRC_PORT 2 be16, DST_PORT 3 be16 } },
 *   CTA_STATUS 3 be32, CTA_PROTOINFO 4 { CTA_PROTOINFO_TCP 1 { TCP_STATE 1 u8 } },
 *   CTA_MARK 8 be32, CTA_COUNTERS_ORIG 9 / CTA_COUNTERS_REPLY 10 { PACKETS 1 be64,
 *   BYTES 2 be64, the old 32-bit PACKETS 3 / BYTES 4 be32 }, CTA_ID 12 be32.
 * - counters exist only for entries created while net.netfilter.nf_conntrack_acct was 1 (the
 *   accounting extension is attached when the entry is made); they count whole IP packets
 *   (skb->len at the conntrack hook: IP header included, link header not).
 */
import { encodeNlas, nlaNest, type Nla } from './genl.js';
import { NetlinkSocket } from './netlink.js';
import { NETLINK_NETFILTER } from './nftnl.js';
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  buildMessage,
  formatAddr,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  parseAddr,
  type NlMessage,
  type ResyncEvent,
} from './rtnl.js';

export const NFNL_SUBSYS_CTNETLINK = 1;
export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;
export const IPCTNL_MSG_CT_DELETE = 2;

export const CTA_TUPLE_ORIG = 1;
export const CTA_TUPLE_REPLY = 2;
export const CTA_STATUS = 3;
export const CTA_PROTOINFO = 4;
export const CTA_MARK = 8;
export const CTA_COUNTERS_ORIG = 9;
export const CTA_COUNTERS_REPLY = 10;
export const CTA_ID = 12;
export const CTA_ZONE = 18;

export const CTA_TUPLE_IP = 1;
export const CTA_TUPLE_PROTO = 2;
export const CTA_IP_V4_SRC = 1;
export const CTA_IP_V4_DST = 2;
export const CTA_IP_V6_SRC = 3;
export const CTA_IP_V6_DST = 4;
export const CTA_PROTO_NUM = 1;
export const CTA_PROTO_SRC_PORT = 2;
export const CTA_PROTO_DST_PORT = 3;
export const CTA_PROTOINFO_TCP = 1;
export const CTA_PROTOINFO_TCP_STATE = 1;
export const CTA_COUNTERS_PACKETS = 1;
export const CTA_COUNTERS_BYTES = 2;
export const CTA_COUNTERS32_PACKETS = 3;
export const CTA_COUNTERS32_BYTES = 4;

const NFGENMSG_LEN = 4;
const CT_NEW_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
const CT_DELETE_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
/** multicast groups NFNLGRP_CONNTRACK_NEW 1 and NFNLGRP_CONNTRACK_DESTROY 3, as a bind mask */
export const CT_EVENT_GROUPS = (1 << 0) | (1 << 2);

export interface CtTuple {
  src: string;
  dst: string;
  /** 0 for a protocol without ports (ICMP) */
  sport: number;
  dport: number;
}

export interface CtCounters {
  packets: number;
  bytes: number;
}

export interface CtEntry {
  family: 4 | 6;
  /** IP protocol number (6 TCP, 17 UDP, 1 ICMP, …), from the original tuple */
  proto: number;
  /** as the first packet had it (before NAT) */
  orig: CtTuple;
  /** as the answer carries it (after NAT, reversed) */
  reply: CtTuple;
  /** CTA_STATUS bits (IPS_*) */
  status?: number;
  /** CTA_PROTOINFO_TCP_STATE (TCP_CONNTRACK_*) */
  tcpState?: number;
  mark?: number;
  /** the kernel's id of the entry: stable for its life */
  id?: number;
  /** conntrack zone, when not the default 0 */
  zone?: number;
  /** absent when the entry was made while accounting was off */
  origCounters?: CtCounters;
  replyCounters?: CtCounters;
}

/** IPCTNL_MSG_CT_GET dump; family 0 (AF_UNSPEC) for every family. */
export function buildCtDump(family: 0 | 4 | 6, seq: number, portid = 0): Buffer {
  const af = family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC;
  return buildMessage(
    (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
    NLM_F_REQUEST | NLM_F_DUMP,
    seq,
    portid,
    Buffer.from([af, 0, 0, 0]),
  );
}

/**
 * Calls `fn(type, valueStart, valueEnd)` for each attribute of b[start, end); stops at one
 * that is shorter than its header or runs past `end`. Type flags are masked off.
 */
function eachAttr(
  b: Buffer,
  start: number,
  end: number,
  fn: (type: number, v: number, vEnd: number) => void,
): void {
  let off = start;
  while (off + 4 <= end) {
    const len = b.readUInt16LE(off);
    if (len < 4 || off + len > end) return;
    fn(b.readUInt16LE(off + 2) & 0x3fff, off + 4, off + len);
    off += (len + 3) & ~3;
  }
}

function v4(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

interface RawTuple {
  src?: string;
  dst?: string;
  proto?: number;
  sport: number;
  dport: number;
}

function parseTuple(b: Buffer, start: number, end: number): RawTuple {
  const t: RawTuple = { sport: 0, dport: 0 };
  eachAttr(b, start, end, (type, v, ve) => {
    if (type === CTA_TUPLE_IP) {
      eachAttr(b, v, ve, (at, av, ave) => {
        const n = ave - av;
        if ((at === CTA_IP_V4_SRC || at === CTA_IP_V4_DST) && n === 4) {
          if (at === CTA_IP_V4_SRC) t.src = v4(b, av);
          else t.dst = v4(b, av);
        } else if ((at === CTA_IP_V6_SRC || at === CTA_IP_V6_DST) && n === 16) {
          const s = formatAddr(b.subarray(av, ave));
          if (at === CTA_IP_V6_SRC) t.src = s;
          else t.dst = s;
        }
      });
    } else if (type === CTA_TUPLE_PROTO) {
      eachAttr(b, v, ve, (pt, pv, pve) => {
        const n = pve - pv;
        if (pt === CTA_PROTO_NUM && n >= 1) t.proto = b[pv]!;
        else if (pt === CTA_PROTO_SRC_PORT && n >= 2) t.sport = b.readUInt16BE(pv);
        else if (pt === CTA_PROTO_DST_PORT && n >= 2) t.dport = b.readUInt16BE(pv);
      });
    }
  });
  return t;
}

function parseCounters(b: Buffer, start: number, end: number): CtCounters | undefined {
  let packets: number | undefined;
  let bytes: number | undefined;
  eachAttr(b, start, end, (type, v, ve) => {
    const n = ve - v;
    if (type === CTA_COUNTERS_PACKETS && n >= 8) packets = Number(b.readBigUInt64BE(v));
    else if (type === CTA_COUNTERS_BYTES && n >= 8) bytes = Number(b.readBigUInt64BE(v));
    else if (type === CTA_COUNTERS32_PACKETS && n >= 4) packets ??= b.readUInt32BE(v);
    else if (type === CTA_COUNTERS32_BYTES && n >= 4) bytes ??= b.readUInt32BE(v);
  });
  return packets !== undefined && bytes !== undefined ? { packets, bytes } : undefined;
}

function complete(t: RawTuple): t is RawTuple & { src: string; dst: string } {
  return t.src !== undefined && t.dst !== undefined;
}

/**
 * One ctnetlink message → an entry (a dump's, a get's or a NEW event's); undefined for another
 * message or an incomplete entry.
 */
export function parseCtEntry(m: NlMessage): CtEntry | undefined {
  if (m.type !== CT_NEW_TYPE) return undefined;
  return parseCtBody(m);
}

export interface CtEvent {
  type: 'new' | 'destroy';
  entry: CtEntry;
}

/**
 * A NEW (first confirmed) or DESTROY event: a destroyed entry carries its final counters. The
 * kernel leaves CTA_MARK out of an event when the mark is 0; the entry says 0 then.
 */
export function parseCtEvent(m: NlMessage): CtEvent | undefined {
  const type = m.type === CT_NEW_TYPE ? 'new' : m.type === CT_DELETE_TYPE ? 'destroy' : undefined;
  if (!type) return undefined;
  const entry = parseCtBody(m);
  if (!entry) return undefined;
  // an event leaves out a mark of 0 (a dump or a get always carries it)
  if (entry.mark === undefined) entry.mark = 0;
  return { type, entry };
}

function parseCtBody(m: NlMessage): CtEntry | undefined {
  const b = m.payload;
  if (b.length < NFGENMSG_LEN) return undefined;
  const af = b[0];
  if (af !== AF_INET && af !== AF_INET6) return undefined;
  let orig: RawTuple | undefined;
  let reply: RawTuple | undefined;
  let status: number | undefined;
  let tcpState: number | undefined;
  let mark: number | undefined;
  let id: number | undefined;
  let zone: number | undefined;
  let origCounters: CtCounters | undefined;
  let replyCounters: CtCounters | undefined;
  eachAttr(b, NFGENMSG_LEN, b.length, (type, v, ve) => {
    const n = ve - v;
    switch (type) {
      case CTA_TUPLE_ORIG:
        orig = parseTuple(b, v, ve);
        break;
      case CTA_TUPLE_REPLY:
        reply = parseTuple(b, v, ve);
        break;
      case CTA_STATUS:
        if (n >= 4) status = b.readUInt32BE(v);
        break;
      case CTA_PROTOINFO:
        eachAttr(b, v, ve, (pt, pv, pve) => {
          if (pt !== CTA_PROTOINFO_TCP) return;
          eachAttr(b, pv, pve, (tt, tv, tve) => {
            if (tt === CTA_PROTOINFO_TCP_STATE && tve > tv) tcpState = b[tv];
          });
        });
        break;
      case CTA_MARK:
        if (n >= 4) mark = b.readUInt32BE(v);
        break;
      case CTA_ID:
        if (n >= 4) id = b.readUInt32BE(v);
        break;
      case CTA_ZONE:
        if (n >= 2) zone = b.readUInt16BE(v);
        break;
      case CTA_COUNTERS_ORIG:
        origCounters = parseCounters(b, v, ve);
        break;
      case CTA_COUNTERS_REPLY:
        replyCounters = parseCounters(b, v, ve);
        break;
    }
  });
  if (!orig || !reply || !complete(orig) || !complete(reply) || orig.proto === undefined)
    return undefined;
  return {
    family: af === AF_INET ? 4 : 6,
    proto: orig.proto,
    orig: { src: orig.src, dst: orig.dst, sport: orig.sport, dport: orig.dport },
    reply: { src: reply.src, dst: reply.dst, sport: reply.sport, dport: reply.dport },
    ...(status !== undefined ? { status } : {}),
    ...(tcpState !== undefined ? { tcpState } : {}),
    ...(mark !== undefined ? { mark } : {}),
    ...(id !== undefined ? { id } : {}),
    ...(zone ? { zone } : {}),
    ...(origCounters ? { origCounters } : {}),
    ...(replyCounters ? { replyCounters } : {}),
  };
}

/** A request socket for ctnetlink dumps in `netns` (default: ours). */
export function openConntrack(netns?: string): NetlinkSocket {
  return NetlinkSocket.open({
    protocol: NETLINK_NETFILTER,
    netns,
    rcvbuf: 2 << 20,
    rcvbufForce: true,
  });
}

/**
 * Every conntrack entry of the socket's namespace (family 0: both). Loading the table's
 * netlink module is the kernel's business (nfnetlink asks for it on the first request); a
 * kernel without it answers EOPNOTSUPP, thrown as a SyscallError.
 */
export function dumpConntrack(sock: NetlinkSocket, family: 0 | 4 | 6 = 0): CtEntry[] {
  return sock.dump(buildCtDump(family, sock.nextSeq(), sock.portid), parseCtEntry, 5000);
}

function be(n: number, bytes: 1 | 2 | 4): Buffer {
  const b = Buffer.alloc(bytes);
  b.writeUIntBE(n, 0, bytes);
  return b;
}

/**
 * IPCTNL_MSG_CT_GET of one entry by its original tuple (and zone), with NLM_F_ACK: the
 * answer is the entry (an IPCTNL_MSG_CT_NEW message) then the ACK, or ENOENT when it is gone.
 */
export function buildCtGet(
  e: Pick<CtEntry, 'family' | 'proto' | 'orig' | 'zone'>,
  seq: number,
  portid = 0,
  /** which tuple `e.orig` is: the reply tuple finds a NATed entry by its translated side */
  by: 'orig' | 'reply' = 'orig',
): Buffer {
  const v6 = e.family === 6;
  const tuple: Nla[] = [
    nlaNest(CTA_TUPLE_IP, [
      { type: v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, value: parseAddr(e.orig.src) },
      { type: v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST, value: parseAddr(e.orig.dst) },
    ]),
    nlaNest(CTA_TUPLE_PROTO, [
      { type: CTA_PROTO_NUM, value: be(e.proto, 1) },
      { type: CTA_PROTO_SRC_PORT, value: be(e.orig.sport, 2) },
      { type: CTA_PROTO_DST_PORT, value: be(e.orig.dport, 2) },
    ]),
  ];
  const attrs: Nla[] = [nlaNest(by === 'orig' ? CTA_TUPLE_ORIG : CTA_TUPLE_REPLY, tuple)];
  if (e.zone) attrs.push({ type: CTA_ZONE, value: be(e.zone, 2) });
  return buildMessage(
    (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
    NLM_F_REQUEST | NLM_F_ACK,
    seq,
    portid,
    Buffer.concat([Buffer.from([v6 ? AF_INET6 : AF_INET, 0, 0, 0]), encodeNlas(attrs)]),
  );
}

/**
 * requests per send of `getConntrack`: their answers must fit the receive queue (the kernel
 * builds each in a buffer of a page, ~4.5 KiB of queue each; openConntrack asks for 2 MiB)
 */
const GET_BATCH = 64;

/**
 * The current state of the entries that `requests` (buildCtGet's, any seq: each is given a
 * new one here) ask for, in order; null for one that is gone. Asked in batches, one send each.
 */
export function getConntrack(sock: NetlinkSocket, requests: readonly Buffer[]): (CtEntry | null)[] {
  const out: (CtEntry | null)[] = new Array<CtEntry | null>(requests.length).fill(null);
  for (let start = 0; start < requests.length; start += GET_BATCH) {
    const bySeq = new Map<number, number>();
    const msgs: Buffer[] = [];
    for (let i = start; i < Math.min(requests.length, start + GET_BATCH); i++) {
      const seq = sock.nextSeq();
      bySeq.set(seq, i);
      const m = requests[i]!;
      m.writeUInt32LE(seq, 8);
      m.writeUInt32LE(sock.portid, 12);
      msgs.push(m);
    }
    sock.requestBatch(msgs, (m) => {
      const i = bySeq.get(m.seq);
      const e = i === undefined ? undefined : parseCtEntry(m);
      if (i !== undefined && e) out[i] = e;
    });
  }
  return out;
}

/** a datagram as a local socket received it: its sender as the socket saw it, the socket's own address */
export interface ReceivedDatagram {
  family: 4 | 6;
  /** the sender's address and port (after any NAT of the source) */
  addr: string;
  port: number;
  /** the receiving socket's address and port (the redirect's target) */
  localAddr: string;
  localPort: number;
}

/**
 * The conntrack entry of a datagram that nft `redirect` (or DNAT) sent to a local socket: the
 * entry's reply tuple is (the socket's address and port → the sender as the socket saw it),
 * found with one IPCTNL_MSG_CT_GET; its original tuple names where the sender was going.
 * Undefined when there is none (the entry expired, conntrack does not track it).
 */
export function redirectedUdpEntry(sock: NetlinkSocket, p: ReceivedDatagram): CtEntry | undefined {
  const [e] = getConntrack(sock, [
    buildCtGet(
      {
        family: p.family,
        proto: 17,
        orig: { src: p.localAddr, sport: p.localPort, dst: p.addr, dport: p.port },
      },
      0,
      sock.portid,
      'reply',
    ),
  ]);
  return e ?? undefined;
}

export interface CtEventBatch {
  /** in the order the kernel sent them; a destroyed entry carries its final counters */
  events: CtEvent[];
  /** events were lost (the kernel's queue overflowed): the caller dumps the table again */
  lost: boolean;
}

/**
 * conntrack's NEW and DESTROY events (NFNLGRP_CONNTRACK_NEW, _DESTROY; joining needs
 * CAP_NET_ADMIN, and net.netfilter.nf_conntrack_events not 0) collected between `take()`s,
 * without blocking: the event loop drains the socket, and `take()` drains it first.
 */
export class ConntrackEvents {
  private events: CtEvent[] = [];
  private lost = false;
  private failed: Error | undefined;

  private constructor(
    private readonly sock: NetlinkSocket,
    private readonly maxQueued: number,
  ) {}

  static open(
    opts: { netns?: string | undefined; rcvbuf?: number; maxQueued?: number } = {},
  ): ConntrackEvents {
    const sock = NetlinkSocket.open({
      protocol: NETLINK_NETFILTER,
      groups: CT_EVENT_GROUPS,
      netns: opts.netns,
      rcvbuf: opts.rcvbuf ?? 4 << 20,
      rcvbufForce: true,
    });
    const w = new ConntrackEvents(sock, opts.maxQueued ?? 65536);
    sock.listenWith(
      parseCtEvent,
      (events) => w.push(events),
      (e) => (w.failed = e),
    );
    return w;
  }

  private push(events: (CtEvent | ResyncEvent)[]): void {
    for (const e of events) {
      if (e.type === 'resync' || this.events.length >= this.maxQueued) this.lost = true;
      else this.events.push(e);
    }
  }

  /** The events since the last take. Throws if receiving failed. */
  take(): CtEventBatch {
    if (this.failed) throw this.failed;
    this.sock.pump();
    const out = { events: this.events, lost: this.lost };
    this.events = [];
    this.lost = false;
    return out;
  }

  close(): void {
    this.sock.close();
  }
}
