/**
 * The routing facts' rtnetlink messages (docs/platform-linux.md#rtnetlink, "The routing
 * probe"): a family's route and rule dumps, and one route lookup (`ip route get`'s request).
 * Pure: no I/O. The rows keep the fields of `ip -j -N route show` / `ip -j -N rule show` that
 * awg reads (resources/route/probe-netlink.ts prints them as those do).
 */
import {
  AF_INET,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PRIORITY,
  RTA_TABLE,
  RTM_GETROUTE,
  RTM_NEWROUTE,
  attr,
  buildMessage,
  parseAttrs,
  u32Attr,
  type Attr,
  type NlMessage,
  inetNtop,
} from './rtnl.js';

export const RTM_NEWRULE = 32;
export const RTM_GETRULE = 34;

/** rtattr types of a route (linux/rtnetlink.h) */
export const RTA_MARK = 16;
export const RTA_VIA = 18;
/** rtm_flags: a cached (cloned) route; `ip route show` leaves them out */
export const RTM_F_CLONED = 0x200;
/** rtm_flags of an IPv4 lookup: the answer names the table that held the route (iproute2 sets it) */
export const RTM_F_LOOKUP_TABLE = 0x1000;

/** fib_rule_hdr (linux/fib_rules.h), 12 bytes: family, dst_len, src_len, tos, table, res1, res2, action, u32 flags */
export const FIB_RULE_HDR_LEN = 12;
export const FRA_PRIORITY = 6;
export const FRA_TABLE = 15;
/** rule actions (FR_ACT_*) */
export const FR_ACT_TO_TBL = 1;
export const FR_ACT_GOTO = 2;
export const FR_ACT_NOP = 3;
/** RTN_NAT as a rule's action: iproute2 prints it as `map-to`/`masquerade`, not as `action` */
export const RTN_NAT = 10;

/** One route of a dump, as far as the routing facts read it. */
export interface RouteRow {
  family: number;
  /** RTA_TABLE, else rtm_table */
  table: number;
  dstLen: number;
  /** RTA_DST as text (absent for a default route) */
  dst?: string;
  /** rtm_type (RTN_UNICAST 1, …) */
  type: number;
  /** rtm_protocol */
  protocol: number;
  flags: number;
  /** RTA_OIF (absent: a multipath route, or none) */
  oif?: number;
  /** RTA_PRIORITY: the metric */
  priority?: number;
  /** RTA_GATEWAY as text */
  gateway?: string;
  /** RTA_VIA (family u16, then the address) as text */
  via?: string;
}

/** One policy rule of a dump. */
export interface RuleRow {
  family: number;
  /** FRA_PRIORITY, 0 when absent (as `ip rule` prints it) */
  priority: number;
  /** FRA_TABLE, else the header's table (0: none) */
  table: number;
  /** FR_ACT_* */
  action: number;
}

function rtmsg(family: number, dstLen = 0, flags = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(family, 0);
  b.writeUInt8(dstLen, 1);
  b.writeUInt32LE(flags >>> 0, 8);
  return b;
}

/** RTM_GETROUTE dump of one family, every table (the kernel leaves cached routes out: no RTM_F_CLONED) */
export function buildGetRouteDump(family: number, seq: number, portid = 0): Buffer {
  return buildMessage(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, portid, rtmsg(family));
}

/** RTM_GETRULE dump of one family */
export function buildGetRuleDump(family: number, seq: number, portid = 0): Buffer {
  const h = Buffer.alloc(FIB_RULE_HDR_LEN);
  h.writeUInt8(family, 0);
  return buildMessage(RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq, portid, h);
}

/**
 * `ip -4|-6 route get ADDR mark M` as iproute2 6.1 asks it: RTA_DST with its full length,
 * RTA_MARK unless 0, RTM_F_LOOKUP_TABLE for IPv4; NLM_F_ACK so that a found route is
 * followed by an ACK (the answer is the route, or an error with the kernel's errno).
 */
export function buildRouteGet(address: Buffer, mark: number, seq: number, portid = 0): Buffer {
  const family = address.length === 4 ? AF_INET : 10;
  const attrs: Attr[] = [attr(RTA_DST, address)];
  if (mark >>> 0 !== 0) attrs.push(u32Attr(RTA_MARK, mark));
  return buildMessage(
    RTM_GETROUTE,
    NLM_F_REQUEST | NLM_F_ACK,
    seq,
    portid,
    rtmsg(family, address.length * 8, family === AF_INET ? RTM_F_LOOKUP_TABLE : 0),
    attrs,
  );
}

/**
 * A route of a dump → its row; undefined for another message or a route `keep` (given the
 * family, rtm_table and dst length, before any attribute is read) does not want.
 */
export function parseRouteRow(
  m: NlMessage,
  keep: (family: number, rtmTable: number, dstLen: number) => boolean = () => true,
): RouteRow | undefined {
  const p = m.payload;
  if (m.type !== RTM_NEWROUTE || p.length < 12) return undefined;
  const family = p.readUInt8(0);
  const dstLen = p.readUInt8(1);
  const rtmTable = p.readUInt8(4);
  if (!keep(family, rtmTable, dstLen)) return undefined;
  const a = parseAttrs(p, 12);
  const tableAttr = a.get(RTA_TABLE);
  const row: RouteRow = {
    family,
    table: tableAttr && tableAttr.length >= 4 ? tableAttr.readUInt32LE(0) : rtmTable,
    dstLen,
    protocol: p.readUInt8(5),
    type: p.readUInt8(7),
    flags: p.readUInt32LE(8),
  };
  const dst = a.get(RTA_DST);
  if (dst) row.dst = inetNtop(dst);
  const oif = a.get(RTA_OIF);
  if (oif && oif.length >= 4) row.oif = oif.readUInt32LE(0);
  const prio = a.get(RTA_PRIORITY);
  if (prio && prio.length >= 4) row.priority = prio.readUInt32LE(0);
  const gw = a.get(RTA_GATEWAY);
  if (gw) row.gateway = inetNtop(gw);
  const via = a.get(RTA_VIA);
  if (via && via.length > 2) row.via = inetNtop(via.subarray(2));
  return row;
}

/** A rule of a dump → its row; undefined for another message. */
export function parseRuleRow(m: NlMessage): RuleRow | undefined {
  const p = m.payload;
  if (m.type !== RTM_NEWRULE || p.length < FIB_RULE_HDR_LEN) return undefined;
  const a = parseAttrs(p, FIB_RULE_HDR_LEN);
  const prio = a.get(FRA_PRIORITY);
  const table = a.get(FRA_TABLE);
  return {
    family: p.readUInt8(0),
    priority: prio && prio.length >= 4 ? prio.readUInt32LE(0) : 0,
    table: table && table.length >= 4 ? table.readUInt32LE(0) : p.readUInt8(4),
    action: p.readUInt8(7),
  };
}
