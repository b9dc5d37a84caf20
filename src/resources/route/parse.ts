/**
 * `ip -j -N [-6] route show table all` → RouteSpec. Pure.
 *
 * Ownership: a route is ours when it sits in a table of the claimed band and carries our
 * protocol number; a route in the band without it is a conflict (never touched); routes in
 * other tables are ignored. `-N` makes protocol, type and table numeric even when
 * /etc/iproute2 maps them to names; names are still accepted.
 */
import ipaddr from '../../util/ipaddr.js';
import type { RouteSpec, RouteType } from '../../model/resources.js';

export interface RouteBand {
  protocol: number;
  /** first table of the band */
  tableBase: number;
  /** number of tables in the band */
  bandSize: number;
}

export interface ParsedRoutes {
  owned: RouteSpec[];
  /** routes in our band without our protocol */
  conflicts: RouteSpec[];
}

/** a route of `ip -j -N route show` */
export interface IpRouteJson {
  type?: string;
  dst?: string;
  gateway?: string;
  via?: { family?: string; host?: string };
  dev?: string;
  table?: string;
  protocol?: string;
  metric?: number;
}

const TABLE_NAMES: Record<string, number> = { main: 254, local: 255, default: 253, unspec: 0 };
const PROTO_NAMES: Record<string, number> = {
  unspec: 0,
  redirect: 1,
  kernel: 2,
  boot: 3,
  static: 4,
  ra: 9,
  dhcp: 16,
};
const TYPE_BY_NUMBER: Record<string, string> = {
  '1': 'unicast',
  '2': 'local',
  '3': 'broadcast',
  '4': 'anycast',
  '5': 'multicast',
  '6': 'blackhole',
  '7': 'unreachable',
  '8': 'prohibit',
  '9': 'throw',
  '10': 'nat',
};
const OUR_TYPES: ReadonlySet<string> = new Set<RouteType>([
  'unicast',
  'unreachable',
  'blackhole',
  'throw',
]);

export function numberOrName(
  v: string | undefined,
  names: Record<string, number>,
  dflt: number,
): number {
  if (v === undefined) return dflt;
  if (/^\d+$/.test(v)) return Number(v);
  if (/^0x[0-9a-f]+$/i.test(v)) return parseInt(v, 16);
  return names[v] ?? NaN;
}

/** Canonical CIDR: `default` → 0.0.0.0/0 or ::/0, host address → /32 or /128, v6 compressed. */
export function canonicalDst(dst: string | undefined, family: 4 | 6): string {
  if (dst === undefined || dst === 'default') return family === 4 ? '0.0.0.0/0' : '::/0';
  return canonicalCidr(dst);
}

export function canonicalCidr(s: string): string {
  const [addr, len] = s.split('/') as [string, string | undefined];
  const a = ipaddr.parse(addr);
  const bits = a.kind() === 'ipv4' ? 32 : 128;
  const prefix = len === undefined ? bits : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits)
    throw new Error(`bad prefix in ${s}`);
  const cidr = `${a.toString()}/${prefix}`;
  const base =
    a.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(cidr)
      : ipaddr.IPv6.networkAddressFromCIDR(cidr);
  return `${base.toString()}/${prefix}`;
}

export function inBand(table: number, band: RouteBand): boolean {
  return table >= band.tableBase && table < band.tableBase + band.bandSize;
}

export function parseRouteJson(text: string, family: 4 | 6, band: RouteBand): ParsedRoutes {
  const t = text.trim();
  return parseRouteRows((t ? JSON.parse(t) : []) as IpRouteJson[], family, band);
}

/** `parseRouteJson` of the listing's rows (the netlink reader's, route/probe-netlink.ts, or the JSON's) */
export function parseRouteRows(
  rows: readonly IpRouteJson[],
  family: 4 | 6,
  band: RouteBand,
): ParsedRoutes {
  const out: ParsedRoutes = { owned: [], conflicts: [] };
  for (const r of rows) {
    const table = numberOrName(r.table, TABLE_NAMES, 254);
    if (!inBand(table, band)) continue;
    const typeName = r.type === undefined ? 'unicast' : (TYPE_BY_NUMBER[r.type] ?? r.type);
    const protocol = numberOrName(r.protocol, PROTO_NAMES, 0);
    const spec: RouteSpec = {
      family,
      table,
      dst: canonicalDst(r.dst, family),
      type: typeName as RouteType,
      metric: r.metric ?? 0,
      protocol,
    };
    // the kernel reports `dev lo` on v6 unreachable/blackhole routes: not part of the spec
    if (typeName === 'unicast') {
      if (r.dev !== undefined) spec.dev = r.dev;
      const via = r.gateway ?? r.via?.host;
      if (via !== undefined) spec.via = ipaddr.parse(via).toString();
    }
    if (protocol === band.protocol && OUR_TYPES.has(typeName)) out.owned.push(spec);
    else out.conflicts.push(spec);
  }
  return out;
}

/**
 * `ip -j -N [-6] route show table main default` → the default route with the lowest metric
 * (its interface is an uplink that limits shape; model/shaping.ts), or undefined. Routes on
 * our own links (`prefix`) are not uplinks.
 */
export function defaultRouteOf(
  text: string,
  prefix: string,
): { gateway: string; interface: string } | undefined {
  const t = text.trim();
  if (!t) return undefined;
  const v = JSON.parse(t) as unknown;
  if (!Array.isArray(v)) throw new Error('ip -j route: expected a JSON array');
  return defaultRouteOfRows(v as IpRouteJson[], prefix);
}

/** `defaultRouteOf` of the listing's rows (the netlink probe's, route/probe-netlink.ts, or the JSON's) */
export function defaultRouteOfRows(
  rows: readonly IpRouteJson[],
  prefix: string,
): { gateway: string; interface: string } | undefined {
  const best = rows
    .filter((r) => r.dst === 'default' && r.dev && !r.dev.startsWith(prefix))
    .filter((r) => (r.type ?? 'unicast') === 'unicast' || r.type === '1')
    .sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0];
  return best ? { gateway: best.gateway ?? best.via?.host ?? '', interface: best.dev! } : undefined;
}
