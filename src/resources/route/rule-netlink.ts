/**
 * A policy rule of an RTM_GETRULE dump (native/rtnl-routing.ts) as `ip -j -N rule show`
 * (iproute2 6.1, `print_rule` in JSON) prints it: the same keys in the same order with the
 * same values, so rule/parse.ts reads it, and describes it, as it does the JSON. Attributes
 * iproute2 6.1 does not print are not printed. Pure.
 */
import { parseAttrs, type NlMessage } from '../../native/rtnl.js';
import { FIB_RULE_HDR_LEN, RTM_NEWRULE } from '../../native/rtnl-routing.js';
import { inetNtop } from '../../native/rtnl.js';

const FRA_DST = 1;
const FRA_SRC = 2;
const FRA_IIFNAME = 3;
const FRA_GOTO = 4;
const FRA_PRIORITY = 6;
const FRA_FWMARK = 10;
const FRA_FLOW = 11;
const FRA_TUN_ID = 12;
const FRA_SUPPRESS_IFGROUP = 13;
const FRA_SUPPRESS_PREFIXLEN = 14;
const FRA_TABLE = 15;
const FRA_FWMASK = 16;
const FRA_OIFNAME = 17;
const FRA_L3MDEV = 19;
const FRA_UID_RANGE = 20;
const FRA_PROTOCOL = 21;
const FRA_IP_PROTO = 22;
const FRA_SPORT_RANGE = 23;
const FRA_DPORT_RANGE = 24;
/** RTA_GATEWAY's number, which iproute2 reads as a nat rule's gateway */
const NAT_GATEWAY = 5;

const FIB_RULE_INVERT = 0x2;
const FIB_RULE_UNRESOLVED = 0x4;
const FIB_RULE_IIF_DETACHED = 0x8;
const FIB_RULE_OIF_DETACHED = 0x10;
const FR_ACT_TO_TBL = 1;
const FR_ACT_GOTO = 2;
const FR_ACT_NOP = 3;
const RTN_NAT = 10;
const RTPROT_KERNEL = 2;

const str = (b: Buffer): string => {
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
};
const u32 = (b: Buffer | undefined): number | undefined =>
  b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
/** `%#llx`: 0 is `0`, anything else `0x…` */
const hex = (n: number): string => (n === 0 ? '0' : `0x${n.toString(16)}`);

/** One RTM_NEWRULE message → the row `ip -j -N rule show` prints; undefined for another message. */
export function ruleRowOf(m: NlMessage): Record<string, unknown> | undefined {
  const p = m.payload;
  if (m.type !== RTM_NEWRULE || p.length < FIB_RULE_HDR_LEN) return undefined;
  const family = p.readUInt8(0);
  const dstLen = p.readUInt8(1);
  const srcLen = p.readUInt8(2);
  const tos = p.readUInt8(3);
  const action = p.readUInt8(7);
  const flags = p.readUInt32LE(8);
  const hostLen = family === 2 ? 32 : family === 10 ? 128 : -1;
  const a = parseAttrs(p, FIB_RULE_HDR_LEN);
  const row: Record<string, unknown> = {};
  row.priority = u32(a.get(FRA_PRIORITY)) ?? 0;
  if (flags & FIB_RULE_INVERT) row.not = null;
  const src = a.get(FRA_SRC);
  if (src) {
    row.src = inetNtop(src);
    if (srcLen !== hostLen) row.srclen = srcLen;
  } else if (srcLen) {
    row.src = '0';
    row.srclen = srcLen;
  } else row.src = 'all';
  const dst = a.get(FRA_DST);
  if (dst) {
    row.dst = inetNtop(dst);
    if (dstLen !== hostLen) row.dstlen = dstLen;
  } else if (dstLen) {
    row.dst = '0';
    row.dstlen = dstLen;
  }
  if (tos) row.tos = `0x${tos.toString(16).padStart(2, '0')}`;
  const mark = u32(a.get(FRA_FWMARK));
  const mask = u32(a.get(FRA_FWMASK));
  if (mark !== undefined || mask !== undefined) {
    row.fwmark = hex(mark ?? 0);
    if (mask !== undefined && mask !== 0xffffffff) row.fwmask = hex(mask);
  }
  const iif = a.get(FRA_IIFNAME);
  if (iif) {
    row.iif = str(iif);
    if (flags & FIB_RULE_IIF_DETACHED) row.iif_detached = null;
  }
  const oif = a.get(FRA_OIFNAME);
  if (oif) {
    row.oif = str(oif);
    if (flags & FIB_RULE_OIF_DETACHED) row.oif_detached = null;
  }
  const l3 = a.get(FRA_L3MDEV);
  if (l3 && l3.length >= 1 && l3[0]) row.l3mdev = null;
  const uid = a.get(FRA_UID_RANGE);
  if (uid && uid.length >= 8) {
    row.uid_start = uid.readUInt32LE(0);
    row.uid_end = uid.readUInt32LE(4);
  }
  const ipProto = a.get(FRA_IP_PROTO);
  if (ipProto && ipProto.length >= 1) row.ipproto = `ipproto-${ipProto[0]}`;
  for (const [type, key] of [
    [FRA_SPORT_RANGE, 'sport'],
    [FRA_DPORT_RANGE, 'dport'],
  ] as const) {
    const r = a.get(type);
    if (!r || r.length < 4) continue;
    const start = r.readUInt16LE(0);
    const end = r.readUInt16LE(2);
    if (start === end) row[key] = start;
    else {
      row[`${key}_start`] = start;
      row[`${key}_end`] = end;
    }
  }
  const tun = a.get(FRA_TUN_ID);
  if (tun && tun.length >= 8) row.tun_id = Number(tun.readBigUInt64BE(0));
  const table = u32(a.get(FRA_TABLE)) ?? p.readUInt8(4);
  if (table) {
    row.table = String(table);
    const pl = a.get(FRA_SUPPRESS_PREFIXLEN);
    if (pl && pl.length >= 4 && pl.readInt32LE(0) !== -1)
      row.suppress_prefixlen = pl.readInt32LE(0);
    const group = a.get(FRA_SUPPRESS_IFGROUP);
    if (group && group.length >= 4 && group.readInt32LE(0) !== -1)
      row.suppress_ifgroup = String(group.readInt32LE(0));
  }
  const flow = u32(a.get(FRA_FLOW));
  if (flow !== undefined) {
    if (flow >>> 16) row.flow_from = String(flow >>> 16);
    row.flow_to = String(flow & 0xffff);
  }
  if (action === RTN_NAT) {
    const gw = a.get(NAT_GATEWAY);
    if (gw) row.nat_gateway = inetNtop(gw);
    else row.masquerade = null;
  } else if (action === FR_ACT_GOTO) {
    row.goto = u32(a.get(FRA_GOTO)) ?? 'none';
    if (flags & FIB_RULE_UNRESOLVED) row.unresolved = null;
  } else if (action === FR_ACT_NOP) row.nop = null;
  else if (action !== FR_ACT_TO_TBL) row.action = String(action);
  const proto = a.get(FRA_PROTOCOL);
  if (proto && proto.length >= 1 && proto[0] && proto[0] !== RTPROT_KERNEL)
    row.protocol = String(proto[0]);
  return row;
}
