/**
 * rtnetlink message layouts (docs/platform-linux.md#rtnetlink): parse
 * nlmsghdr/ifinfomsg/ifaddrmsg/rtmsg/rtattr
 * into typed events and build requests. Pure: no I/O. All headers are host order (LE);
 * addresses inside attributes are network order.
 */
import ipaddr from '../util/ipaddr.js';

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

export const RTMGRP_LINK = 0x1;
export const RTMGRP_IPV4_IFADDR = 0x10;
export const RTMGRP_IPV4_ROUTE = 0x40;
export const RTMGRP_IPV6_IFADDR = 0x100;
export const RTMGRP_IPV6_ROUTE = 0x400;
/** link, v4/v6 address, v4/v6 route */
export const RTMGRP_DEFAULT = 0x551;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_OPERSTATE = 16;
export const IFLA_LINKINFO = 18;
export const IFLA_IFALIAS = 20;
/** struct rtnl_link_stats64: rx_packets, tx_packets, rx_bytes, tx_bytes first (u64 each) */
export const IFLA_STATS64 = 23;
export const IFLA_INFO_KIND = 1;
/** the flag a nest's attribute type carries (readers mask it off: parseAttrs) */
export const NLA_F_NESTED = 0x8000;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_FLAGS = 8;
export const IFA_PROTO = 11;
export const IFA_F_NODAD = 0x02;
export const IFA_F_PERMANENT = 0x80;

export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_TABLE = 15;

export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_UNSPEC = 0;

export const NLMSG_HDRLEN = 16;

export const align4 = (n: number): number => (n + 3) & ~3;

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  portid: number;
  /** payload after the 16-byte header (a view into the received buffer) */
  payload: Buffer;
}

/** Split one received datagram into messages; stops at a truncated tail. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      portid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** type → value views; a repeated type keeps the first. Type is masked with 0x3fff. */
export function parseAttrs(buf: Buffer, start: number): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  let off = start;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (!m.has(type)) m.set(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return m;
}

export function cstr(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

/** Network-order address bytes → canonical text (RFC 5952 for IPv6). */
export function formatAddr(b: Buffer): string {
  if (b.length === 4 || b.length === 16) return ipaddr.fromByteArray([...b]).toString();
  return b.toString('hex');
}

/**
 * Address bytes → text as glibc's inet_ntop writes it (iproute2 prints addresses so): IPv6
 * with the longest run of two or more zero groups (the first of equal ones) as `::`, and
 * `::ffff:a.b.c.d` / `::a.b.c.d` with the IPv4 address dotted.
 */
export function inetNtop(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return b.toString('hex');
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push(b.readUInt16BE(i));
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (bestLen < 2) best = -1;
  const v4 = best === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff));
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    if (v4 && i === 6) return `${out}${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
    out += w[i]!.toString(16) + (i < 7 ? ':' : '');
  }
  return out;
}

/** Text address → network-order bytes; throws on invalid input. */
export function parseAddr(s: string): Buffer {
  return Buffer.from(ipaddr.parse(s).toByteArray());
}

export type RtnlEventType = 'newlink' | 'dellink' | 'newaddr' | 'deladdr' | 'newroute' | 'delroute';

interface EventBase {
  /** nlmsg_pid: the portid of the socket that caused it, 0 for the kernel */
  portid: number;
  seq: number;
  family: number;
  ifindex: number;
}

export interface LinkEvent extends EventBase {
  type: 'newlink' | 'dellink';
  ifname?: string;
  /** ifi_flags (IFF_UP, IFF_LOWER_UP, …) */
  flags: number;
  change: number;
  mtu?: number;
  operstate?: number;
  alias?: string;
  kind?: string;
  /** IFLA_STATS64: the kernel's packet and byte counts of the link (dumps carry them) */
  stats?: { rxPackets: number; txPackets: number; rxBytes: number; txBytes: number };
}

export interface AddrEvent extends EventBase {
  type: 'newaddr' | 'deladdr';
  prefixlen: number;
  /** IFA_LOCAL (or IFA_ADDRESS) as text */
  address?: string;
  /** IFA_PROTO tag, if any */
  proto?: number;
  flags: number;
  scope: number;
  label?: string;
}

export interface RouteEvent extends EventBase {
  type: 'newroute' | 'delroute';
  table: number;
  protocol: number;
  /** destination CIDR, e.g. `10.0.0.0/24`, `0.0.0.0/0` */
  dst: string;
  routeType: number;
  scope: number;
  gateway?: string;
  priority?: number;
  /** nlmsg_flags (REPLACE 0x100, CREATE|EXCL 0x600) */
  nlFlags: number;
}

/** Emitted when the kernel dropped events (ENOBUFS): re-observe everything. */
export interface ResyncEvent {
  type: 'resync';
}

export type RtnlEvent = LinkEvent | AddrEvent | RouteEvent | ResyncEvent;

/**
 * The attributes every reader of a link message takes (an event here, a dump's row in
 * rtnl-links.ts): name, MTU, operational state, alias and kind, set on `into` where present.
 * Returns IFLA_LINKINFO's nested attributes (the kind's data), if any.
 */
export function readLinkBasics(
  a: Map<number, Buffer>,
  into: { ifname?: string; mtu?: number; operstate?: number; alias?: string; kind?: string },
): Map<number, Buffer> | undefined {
  const name = cstr(a.get(IFLA_IFNAME));
  if (name !== undefined) into.ifname = name;
  const mtu = a.get(IFLA_MTU);
  if (mtu && mtu.length >= 4) into.mtu = mtu.readUInt32LE(0);
  const op = a.get(IFLA_OPERSTATE);
  if (op && op.length >= 1) into.operstate = op.readUInt8(0);
  const alias = cstr(a.get(IFLA_IFALIAS));
  if (alias !== undefined) into.alias = alias;
  const li = a.get(IFLA_LINKINFO);
  if (!li) return undefined;
  const info = parseAttrs(li, 0);
  const kind = cstr(info.get(IFLA_INFO_KIND));
  if (kind !== undefined) into.kind = kind;
  return info;
}

/** Parse one rtnetlink message into an event; other message types return undefined. */
export function parseEvent(m: NlMessage): LinkEvent | AddrEvent | RouteEvent | undefined {
  const p = m.payload;
  switch (m.type) {
    case RTM_NEWLINK:
    case RTM_DELLINK: {
      if (p.length < 16) return undefined;
      const a = parseAttrs(p, 16);
      const ev: LinkEvent = {
        type: m.type === RTM_NEWLINK ? 'newlink' : 'dellink',
        portid: m.portid,
        seq: m.seq,
        family: p.readUInt8(0),
        ifindex: p.readInt32LE(4),
        flags: p.readUInt32LE(8),
        change: p.readUInt32LE(12),
      };
      readLinkBasics(a, ev);
      const st = a.get(IFLA_STATS64);
      if (st && st.length >= 32)
        ev.stats = {
          rxPackets: Number(st.readBigUInt64LE(0)),
          txPackets: Number(st.readBigUInt64LE(8)),
          rxBytes: Number(st.readBigUInt64LE(16)),
          txBytes: Number(st.readBigUInt64LE(24)),
        };
      return ev;
    }
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      if (p.length < 8) return undefined;
      const a = parseAttrs(p, 8);
      const ev: AddrEvent = {
        type: m.type === RTM_NEWADDR ? 'newaddr' : 'deladdr',
        portid: m.portid,
        seq: m.seq,
        family: p.readUInt8(0),
        prefixlen: p.readUInt8(1),
        flags: p.readUInt8(2),
        scope: p.readUInt8(3),
        ifindex: p.readUInt32LE(4),
      };
      const addr = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
      if (addr) ev.address = formatAddr(addr);
      const proto = a.get(IFA_PROTO);
      if (proto && proto.length >= 1) ev.proto = proto.readUInt8(0);
      const fl = a.get(IFA_FLAGS);
      if (fl && fl.length >= 4) ev.flags = fl.readUInt32LE(0);
      const label = cstr(a.get(IFA_LABEL));
      if (label !== undefined) ev.label = label;
      return ev;
    }
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      if (p.length < 12) return undefined;
      const a = parseAttrs(p, 12);
      const family = p.readUInt8(0);
      const dstLen = p.readUInt8(1);
      const dstAttr = a.get(RTA_DST);
      const dst = dstAttr ? formatAddr(dstAttr) : family === AF_INET6 ? '::' : '0.0.0.0';
      const tableAttr = a.get(RTA_TABLE);
      const oif = a.get(RTA_OIF);
      const ev: RouteEvent = {
        type: m.type === RTM_NEWROUTE ? 'newroute' : 'delroute',
        portid: m.portid,
        seq: m.seq,
        nlFlags: m.flags,
        family,
        ifindex: oif && oif.length >= 4 ? oif.readUInt32LE(0) : 0,
        // rtm_table is u8; tables ≥ 256 only appear in RTA_TABLE
        table: tableAttr && tableAttr.length >= 4 ? tableAttr.readUInt32LE(0) : p.readUInt8(4),
        protocol: p.readUInt8(5),
        scope: p.readUInt8(6),
        routeType: p.readUInt8(7),
        dst: `${dst}/${dstLen}`,
      };
      const gw = a.get(RTA_GATEWAY);
      if (gw) ev.gateway = formatAddr(gw);
      const prio = a.get(RTA_PRIORITY);
      if (prio && prio.length >= 4) ev.priority = prio.readUInt32LE(0);
      return ev;
    }
    default:
      return undefined;
  }
}

/** `error` of an NLMSG_ERROR message: 0 for an ACK, otherwise -errno. */
export function parseError(m: NlMessage): { error: number; seq: number } {
  return {
    error: m.payload.readInt32LE(0),
    seq: m.payload.length >= 16 ? m.payload.readUInt32LE(12) : 0,
  };
}

export interface Attr {
  type: number;
  value: Buffer;
}

export function attr(type: number, value: Buffer): Attr {
  return { type, value };
}
export function u8Attr(type: number, v: number): Attr {
  return attr(type, Buffer.from([v]));
}
export function u32Attr(type: number, v: number): Attr {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return attr(type, b);
}
export function strAttr(type: number, s: string): Attr {
  return attr(type, Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]));
}

/** nlmsghdr + fixed header + attributes, each aligned to 4. */
export function buildMessage(
  type: number,
  flags: number,
  seq: number,
  portid: number,
  header: Buffer,
  attrs: Attr[] = [],
): Buffer {
  let len = NLMSG_HDRLEN + align4(header.length);
  for (const a of attrs) len += align4(4 + a.value.length);
  const b = Buffer.alloc(len);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq >>> 0, 8);
  b.writeUInt32LE(portid >>> 0, 12);
  header.copy(b, NLMSG_HDRLEN);
  let off = NLMSG_HDRLEN + align4(header.length);
  for (const a of attrs) {
    b.writeUInt16LE(4 + a.value.length, off);
    b.writeUInt16LE(a.type, off + 2);
    a.value.copy(b, off + 4);
    off += align4(4 + a.value.length);
  }
  return b;
}

export function ifinfomsg(family = AF_UNSPEC, ifindex = 0, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return b;
}

export function ifaddrmsg(
  family: number,
  prefixlen: number,
  flags: number,
  scope: number,
  ifindex: number,
): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixlen, 1);
  b.writeUInt8(flags & 0xff, 2);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(ifindex, 4);
  return b;
}

export interface AddrRequest {
  ifindex: number;
  /** `10.0.0.2/32`, `fd00::2/128` */
  cidr: string;
  /** IFA_PROTO ownership tag (u8) */
  proto?: number;
  /** IPv6: skip duplicate address detection */
  nodad?: boolean;
}

export function splitCidr(cidr: string): { addr: Buffer; prefixlen: number; family: number } {
  const [a, l] = cidr.split('/') as [string, string | undefined];
  const addr = parseAddr(a);
  const family = addr.length === 4 ? AF_INET : AF_INET6;
  const prefixlen = l === undefined ? addr.length * 8 : Number(l);
  if (!Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > addr.length * 8)
    throw new Error(`invalid prefix length in ${cidr}`);
  return { addr, prefixlen, family };
}

/** RTM_NEWADDR (create, exclusive) or RTM_DELADDR with IFA_LOCAL/IFA_ADDRESS and IFA_PROTO. */
export function buildAddrRequest(
  op: 'add' | 'del',
  req: AddrRequest,
  seq: number,
  portid = 0,
): Buffer {
  const { addr, prefixlen, family } = splitCidr(req.cidr);
  const ifaFlags = (family === AF_INET6 && req.nodad ? IFA_F_NODAD : 0) | IFA_F_PERMANENT;
  const attrs: Attr[] = [attr(IFA_LOCAL, addr), attr(IFA_ADDRESS, addr)];
  if (op === 'add') {
    attrs.push(u32Attr(IFA_FLAGS, ifaFlags));
    if (req.proto !== undefined) attrs.push(u8Attr(IFA_PROTO, req.proto));
  }
  const type = op === 'add' ? RTM_NEWADDR : RTM_DELADDR;
  const flags = NLM_F_REQUEST | NLM_F_ACK | (op === 'add' ? NLM_F_CREATE | NLM_F_EXCL : 0);
  return buildMessage(
    type,
    flags,
    seq,
    portid,
    ifaddrmsg(family, prefixlen, ifaFlags, 0, req.ifindex),
    attrs,
  );
}

export function buildGetLinkDump(seq: number, portid = 0): Buffer {
  return buildMessage(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, portid, ifinfomsg());
}

export function buildGetAddrDump(seq: number, family = AF_UNSPEC, portid = 0): Buffer {
  return buildMessage(
    RTM_GETADDR,
    NLM_F_REQUEST | NLM_F_DUMP,
    seq,
    portid,
    ifaddrmsg(family, 0, 0, 0, 0),
  );
}

export interface SetLinkRequest {
  /** target by index, or by name when ifindex is absent */
  ifindex?: number;
  name?: string;
  alias?: string;
  mtu?: number;
  up?: boolean;
}

/** RTM_NEWLINK without NLM_F_CREATE: modifies an existing link (alias, mtu, admin state). */
export function buildSetLink(req: SetLinkRequest, seq: number, portid = 0): Buffer {
  const attrs: Attr[] = [];
  if (!req.ifindex && req.name !== undefined) attrs.push(strAttr(IFLA_IFNAME, req.name));
  if (req.mtu !== undefined) attrs.push(u32Attr(IFLA_MTU, req.mtu));
  if (req.alias !== undefined) attrs.push(strAttr(IFLA_IFALIAS, req.alias));
  const flags = req.up ? IFF_UP : 0;
  const change = req.up === undefined ? 0 : IFF_UP;
  return buildMessage(
    RTM_NEWLINK,
    NLM_F_REQUEST | NLM_F_ACK,
    seq,
    portid,
    ifinfomsg(AF_UNSPEC, req.ifindex ?? 0, flags, change),
    attrs,
  );
}

/**
 * RTM_NEWLINK with NLM_F_CREATE | NLM_F_EXCL: a new link of `kind` (IFLA_LINKINFO →
 * IFLA_INFO_KIND, e.g. `wireguard`), EEXIST if the name is taken. A kind whose module is
 * missing answers EOPNOTSUPP (after the kernel tried `request_module("rtnl-link-<kind>")`).
 */
export function buildNewLink(
  req: { name: string; kind: string; mtu?: number },
  seq: number,
  portid = 0,
): Buffer {
  const kind = strAttr(IFLA_INFO_KIND, req.kind);
  const info = Buffer.alloc(align4(4 + kind.value.length));
  info.writeUInt16LE(4 + kind.value.length, 0);
  info.writeUInt16LE(IFLA_INFO_KIND, 2);
  kind.value.copy(info, 4);
  const attrs: Attr[] = [strAttr(IFLA_IFNAME, req.name)];
  if (req.mtu !== undefined) attrs.push(u32Attr(IFLA_MTU, req.mtu));
  attrs.push(attr(IFLA_LINKINFO | NLA_F_NESTED, info));
  return buildMessage(
    RTM_NEWLINK,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    seq,
    portid,
    ifinfomsg(),
    attrs,
  );
}

/** RTM_DELLINK of the link named `name` (any kind). */
export function buildDelLink(name: string, seq: number, portid = 0): Buffer {
  return buildMessage(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, portid, ifinfomsg(), [
    strAttr(IFLA_IFNAME, name),
  ]);
}

export interface OwnTags {
  /** portids of our request sockets (IPv4/IPv6 route and IPv4 address notifications carry them) */
  portids: Iterable<number>;
  /** IFA_PROTO we tag addresses with (IPv6 address notifications carry pid 0) */
  addrProto?: number;
  /** rtm_protocol we tag routes with */
  routeProtocol?: number;
}

/**
 * Whether an event was caused by our own change, for suppressing wake-ups
 * (docs/platform-linux.md#rtnetlink).
 * Link events always carry pid 0 and are never classified as ours: re-observe on them.
 */
export function isOwnEvent(ev: RtnlEvent, tags: OwnTags): boolean {
  if (ev.type === 'resync' || ev.type === 'newlink' || ev.type === 'dellink') return false;
  if (ev.portid !== 0) {
    for (const p of tags.portids) if (p === ev.portid) return true;
    return false;
  }
  if ((ev.type === 'newaddr' || ev.type === 'deladdr') && tags.addrProto !== undefined)
    return ev.proto === tags.addrProto;
  if ((ev.type === 'newroute' || ev.type === 'delroute') && tags.routeProtocol !== undefined)
    return ev.protocol === tags.routeProtocol;
  return false;
}
