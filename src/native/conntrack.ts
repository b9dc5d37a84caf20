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
import { NetlinkSocket } from './netlink.js';
import { NETLINK_NETFILTER } from './nftnl.js';
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  buildMessage,
  formatAddr,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  type NlMessage,
} from './rtnl.js';

export const NFNL_SUBSYS_CTNETLINK = 1;
export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;

export const CTA_TUPLE_ORIG = 1;
export const CTA_TUPLE_REPLY = 2;
export const CTA_STATUS = 3;
export const CTA_PROTOINFO = 4;
export const CTA_MARK = 8;
export const CTA_COUNTERS_ORIG = 9;
export const CTA_COUNTERS_REPLY = 10;
export const CTA_ID = 12;

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

/** One ctnetlink message → an entry; undefined for another message or an incomplete entry. */
export function parseCtEntry(m: NlMessage): CtEntry | undefined {
  if (m.type !== CT_NEW_TYPE) return undefined;
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
    ...(origCounters ? { origCounters } : {}),
    ...(replyCounters ? { replyCounters } : {}),
  };
}

/** A request socket for ctnetlink dumps in `netns` (default: ours). */
export function openConntrack(netns?: string): NetlinkSocket {
  return NetlinkSocket.open({ protocol: NETLINK_NETFILTER, netns });
}

/**
 * Every conntrack entry of the socket's namespace (family 0: both). Loading the table's
 * netlink module is the kernel's business (nfnetlink asks for it on the first request); a
 * kernel without it answers EOPNOTSUPP, thrown as a SyscallError.
 */
export function dumpConntrack(sock: NetlinkSocket, family: 0 | 4 | 6 = 0): CtEntry[] {
  return sock.dump(buildCtDump(family, sock.nextSeq(), sock.portid), parseCtEntry, 5000);
}
