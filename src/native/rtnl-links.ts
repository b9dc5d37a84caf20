/**
 * The links and addresses of `ip -j -d link show` / `ip -j -d addr show` from rtnetlink
 * messages (docs/platform-linux.md#rtnetlink, "Links and addresses in-process"): a link dump's
 * RTM_NEWLINK and an address dump's RTM_NEWADDR → the rows iproute2 6.1 prints, with the keys
 * awg reads (resources/link/parse.ts, address/parse.ts, shaper/linux.ts) spelled and valued as
 * iproute2 does. Pure: no I/O (the TUN owner's user name comes from the caller).
 */
import {
  AF_INET,
  AF_INET6,
  IFA_ADDRESS,
  IFA_FLAGS,
  IFA_F_PERMANENT,
  IFA_LABEL,
  IFA_LOCAL,
  IFF_RUNNING,
  IFF_UP,
  RTM_NEWADDR,
  RTM_NEWLINK,
  cstr,
  inetNtop,
  parseAttrs,
  readLinkBasics,
  type NlMessage,
} from './rtnl.js';

/** IFLA_LINK: the link's lower (veth peer, vlan parent) */
export const IFLA_LINK = 5;
/** IFLA_LINK_NETNSID: the lower is in another namespace */
export const IFLA_LINK_NETNSID = 37;
export const IFLA_INFO_DATA = 2;
/** IFLA_TUN_* (linux/if_link.h) */
const IFLA_TUN_OWNER = 1;
const IFLA_TUN_GROUP = 2;
const IFLA_TUN_TYPE = 3;
const IFLA_TUN_PI = 4;
const IFLA_TUN_VNET_HDR = 5;
const IFLA_TUN_PERSIST = 6;
const IFLA_TUN_MULTI_QUEUE = 7;
const IFLA_TUN_NUM_QUEUES = 8;
const IFLA_TUN_NUM_DISABLED_QUEUES = 9;
const IFF_TUN = 0x1;
const IFF_TAP = 0x2;

/** iproute2's print_link_flags order (ip/ipaddress.c) */
const FLAG_NAMES: readonly [number, string][] = [
  [0x8, 'LOOPBACK'],
  [0x2, 'BROADCAST'],
  [0x10, 'POINTOPOINT'],
  [0x1000, 'MULTICAST'],
  [0x80, 'NOARP'],
  [0x200, 'ALLMULTI'],
  [0x100, 'PROMISC'],
  [0x400, 'MASTER'],
  [0x800, 'SLAVE'],
  [0x4, 'DEBUG'],
  [0x8000, 'DYNAMIC'],
  [0x4000, 'AUTOMEDIA'],
  [0x2000, 'PORTSEL'],
  [0x20, 'NOTRAILERS'],
  [0x1, 'UP'],
  [0x10000, 'LOWER_UP'],
  [0x20000, 'DORMANT'],
  [0x40000, 'ECHO'],
];
/** IF_OPER_* as iproute2 names them */
const OPER_STATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'];

/** IFA_F_* iproute2 prints as a key of its own (JSON `true`), in its order */
const IFA_FLAG_NAMES: readonly [number, string][] = [
  [0x01, 'secondary'],
  [0x10, 'deprecated'],
  [0x40, 'tentative'],
  [0x20, 'home'],
  [0x02, 'nodad'],
  [0x100, 'mngtmpaddr'],
  [0x200, 'noprefixroute'],
  [0x400, 'autojoin'],
  [0x8, 'optimistic'],
  [0x4, 'dadfailed'],
  [0x800, 'stable-privacy'],
];
const IFA_F_SECONDARY = 0x01;

/** One link of a dump: the ifinfomsg and the attributes a row is made of. */
export interface LinkMsg {
  ifindex: number;
  flags: number;
  ifname?: string;
  mtu?: number;
  operstate?: number;
  alias?: string;
  /** IFLA_LINK (0: none) and whether it is in another namespace */
  link?: number;
  linkNetns?: boolean;
  kind?: string;
  /** IFLA_INFO_DATA of a tun link */
  tun?: {
    type?: number;
    pi?: boolean;
    vnetHdr?: boolean;
    multiQueue?: boolean;
    /** of a multi-queue device: its queues and the disabled ones */
    numQueues?: number;
    numDisabled?: number;
    persist?: boolean;
    owner?: number;
    group?: number;
  };
}

export interface AddrMsg {
  family: number;
  prefixlen: number;
  flags: number;
  scope: number;
  ifindex: number;
  local?: string;
  address?: string;
  label?: string;
}

const u8 = (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b[0] : undefined);
const u32 = (b: Buffer | undefined): number | undefined =>
  b && b.length >= 4 ? b.readUInt32LE(0) : undefined;

/** RTM_NEWLINK → its link; undefined for another message */
export function parseLinkMsg(m: NlMessage): LinkMsg | undefined {
  const p = m.payload;
  if (m.type !== RTM_NEWLINK || p.length < 16) return undefined;
  const a = parseAttrs(p, 16);
  const l: LinkMsg = { ifindex: p.readInt32LE(4), flags: p.readUInt32LE(8) };
  const info = readLinkBasics(a, l);
  const link = u32(a.get(IFLA_LINK));
  if (link !== undefined) l.link = link;
  if (a.has(IFLA_LINK_NETNSID)) l.linkNetns = true;
  if (info) {
    const data = info.get(IFLA_INFO_DATA);
    if (l.kind === 'tun' && data) {
      const d = parseAttrs(data, 0);
      const flag = (t: number) => {
        const v = u8(d.get(t));
        return v === undefined ? undefined : v !== 0;
      };
      const tun: NonNullable<LinkMsg['tun']> = {};
      const type = u8(d.get(IFLA_TUN_TYPE));
      if (type !== undefined) tun.type = type;
      const pi = flag(IFLA_TUN_PI);
      if (pi !== undefined) tun.pi = pi;
      const vnet = flag(IFLA_TUN_VNET_HDR);
      if (vnet !== undefined) tun.vnetHdr = vnet;
      const mq = flag(IFLA_TUN_MULTI_QUEUE);
      if (mq !== undefined) tun.multiQueue = mq;
      const nq = u32(d.get(IFLA_TUN_NUM_QUEUES));
      if (nq !== undefined) tun.numQueues = nq;
      const nd = u32(d.get(IFLA_TUN_NUM_DISABLED_QUEUES));
      if (nd !== undefined) tun.numDisabled = nd;
      const persist = flag(IFLA_TUN_PERSIST);
      if (persist !== undefined) tun.persist = persist;
      const owner = u32(d.get(IFLA_TUN_OWNER));
      if (owner !== undefined) tun.owner = owner;
      const group = u32(d.get(IFLA_TUN_GROUP));
      if (group !== undefined) tun.group = group;
      l.tun = tun;
    }
  }
  return l;
}

/** RTM_NEWADDR → its address; undefined for another message */
export function parseAddrMsg(m: NlMessage): AddrMsg | undefined {
  const p = m.payload;
  if (m.type !== RTM_NEWADDR || p.length < 8) return undefined;
  const a = parseAttrs(p, 8);
  const out: AddrMsg = {
    family: p.readUInt8(0),
    prefixlen: p.readUInt8(1),
    flags: u32(a.get(IFA_FLAGS)) ?? p.readUInt8(2),
    scope: p.readUInt8(3),
    ifindex: p.readUInt32LE(4),
  };
  const local = a.get(IFA_LOCAL);
  if (local) out.local = inetNtop(local);
  const addr = a.get(IFA_ADDRESS);
  if (addr) out.address = inetNtop(addr);
  const label = cstr(a.get(IFA_LABEL));
  if (label !== undefined) out.label = label;
  return out;
}

/** `flags` as iproute2 prints them: NO-CARRIER for up without running, names in its order, M-DOWN for a lower that is down */
export function linkFlags(flags: number, lowerDown = false): string[] {
  const out: string[] = [];
  if (flags & IFF_UP && !(flags & IFF_RUNNING)) out.push('NO-CARRIER');
  let rest = flags & ~IFF_RUNNING;
  for (const [bit, name] of FLAG_NAMES)
    if (rest & bit) {
      out.push(name);
      rest &= ~bit;
    }
  if (rest) out.push(rest.toString(16));
  if (lowerDown) out.push('M-DOWN');
  return out;
}

/** rtm scope as iproute2 names it (rt_scopes) */
export function scopeName(scope: number): string {
  switch (scope) {
    case 0:
      return 'global';
    case 200:
      return 'site';
    case 253:
      return 'link';
    case 254:
      return 'host';
    case 255:
      return 'nowhere';
    default:
      return String(scope);
  }
}

/** the keys of a row of `ip -j -d link show` awg reads, and those it prints beside them that are cheap to give */
export interface LinkRowJson {
  ifindex: number;
  link?: string;
  ifname?: string;
  flags: string[];
  mtu?: number;
  operstate?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, string | number | boolean> };
  addr_info?: AddrInfoJson[];
}

export interface AddrInfoJson {
  family: string;
  local?: string;
  address?: string;
  prefixlen: number;
  scope: string;
  label?: string;
  [flag: string]: string | number | boolean | undefined;
}

/**
 * A link → its row. `byIndex`: every link of the dump (the name and flags of a lower link);
 * `userName`/`groupName`: a TUN owner's name as getpwuid/getgrgid give it, undefined: the number.
 */
export function linkRow(
  l: LinkMsg,
  byIndex: ReadonlyMap<number, LinkMsg>,
  userName: (uid: number) => string | undefined = () => undefined,
  groupName: (gid: number) => string | undefined = () => undefined,
): LinkRowJson {
  let lowerDown = false;
  const row: LinkRowJson = { ifindex: l.ifindex, flags: [] };
  if (l.link !== undefined) {
    if (l.link === 0) row.link = 'NONE';
    else if (!l.linkNetns) {
      const lower = byIndex.get(l.link);
      row.link = lower?.ifname ?? `if${l.link}`;
      lowerDown = !((lower?.flags ?? 0) & IFF_UP);
    }
  }
  if (l.ifname !== undefined) row.ifname = l.ifname;
  row.flags = linkFlags(l.flags, lowerDown);
  if (l.mtu !== undefined) row.mtu = l.mtu;
  if (l.operstate !== undefined) row.operstate = OPER_STATES[l.operstate] ?? String(l.operstate);
  if (l.alias !== undefined) row.ifalias = l.alias;
  if (l.kind !== undefined) {
    row.linkinfo = { info_kind: l.kind };
    if (l.tun) {
      const t = l.tun;
      const d: Record<string, string | number | boolean> = {};
      if (t.type !== undefined)
        d.type = t.type & IFF_TUN ? 'tun' : t.type & IFF_TAP ? 'tap' : 'UNKNOWN';
      if (t.pi !== undefined) d.pi = t.pi;
      if (t.vnetHdr !== undefined) d.vnet_hdr = t.vnetHdr;
      if (t.multiQueue !== undefined) d.multi_queue = t.multiQueue;
      // iproute2 prints the queue counts of a multi-queue device only
      if (t.multiQueue && t.numQueues !== undefined) d.numqueues = t.numQueues;
      if (t.multiQueue && t.numDisabled !== undefined) d.numdisabled = t.numDisabled;
      if (t.persist !== undefined) d.persist = t.persist;
      if (t.owner !== undefined) d.user = userName(t.owner) ?? t.owner;
      if (t.group !== undefined) d.group = groupName(t.group) ?? t.group;
      row.linkinfo.info_data = d;
    }
  }
  return row;
}

/** An address → its entry of `addr_info` as `ip -j addr show` prints it (the keys awg reads, scope, label, flags). */
export function addrInfo(a: AddrMsg): AddrInfoJson | undefined {
  if (a.family !== AF_INET && a.family !== AF_INET6) return undefined;
  const local = a.local ?? a.address;
  const out: AddrInfoJson = {
    family: a.family === AF_INET ? 'inet' : 'inet6',
    prefixlen: a.prefixlen,
    scope: scopeName(a.scope),
  };
  if (local !== undefined) out.local = local;
  if (a.local !== undefined && a.address !== undefined && a.address !== a.local)
    out.address = a.address;
  if (!(a.flags & IFA_F_PERMANENT)) out.dynamic = true;
  for (const [bit, name] of IFA_FLAG_NAMES)
    if (a.flags & bit)
      out[bit === IFA_F_SECONDARY && a.family === AF_INET6 ? 'temporary' : name] = true;
  if (a.label !== undefined && a.family === AF_INET) out.label = a.label;
  return out;
}

/**
 * `ip -j -d link show` (without `addrs`) or `ip -j -d addr show` (with them) from a link dump
 * and an address dump: the links in the dump's order, each with its addresses in theirs.
 */
export function linkRows(
  links: readonly LinkMsg[],
  addrs: readonly AddrMsg[] | undefined,
  userName?: (uid: number) => string | undefined,
  groupName?: (gid: number) => string | undefined,
): LinkRowJson[] {
  const byIndex = new Map(links.map((l) => [l.ifindex, l] as const));
  return links.map((l) => {
    const row = linkRow(l, byIndex, userName, groupName);
    if (addrs)
      row.addr_info = addrs.flatMap((a) => {
        if (a.ifindex !== l.ifindex) return [];
        const i = addrInfo(a);
        return i ? [i] : [];
      });
    return row;
  });
}
