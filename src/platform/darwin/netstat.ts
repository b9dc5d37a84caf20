/**
 * `netstat -rn` (optionally `-f inet|inet6`, `-l`) text → routes. Pure.
 *
 * The column set changed across releases (Refs/Use dropped in 10.15, Flags widened later,
 * `-l` adds Mtu), so rows are split on whitespace and mapped by the header's column names,
 * never by offsets. Destinations are abbreviated by netstat: `default`, `0/1`, `128.0/1`,
 * `127` (classful /8), `169.254` (/16), `192.168.1` (/24), `10/16`; hosts (flag H) are /32
 * or /128. Gateways are an IP, `link#N`, a MAC, or an interface name (routes added with
 * `-interface utunN` show `utunN` and no G flag).
 */
import ipaddr from '../../util/ipaddr.js';

/** Flag letters from network_cmds netstat.tproj/route.c. */
export const ROUTE_FLAG_LETTERS: Record<string, string> = {
  U: 'UP',
  G: 'GATEWAY',
  H: 'HOST',
  R: 'REJECT',
  D: 'DYNAMIC',
  M: 'MODIFIED',
  m: 'MULTICAST',
  d: 'DONE',
  C: 'CLONING',
  X: 'XRESOLVE',
  L: 'LLINFO',
  S: 'STATIC',
  '1': 'PROTO1',
  '2': 'PROTO2',
  '3': 'PROTO3',
  W: 'WASCLONED',
  c: 'PRCLONING',
  B: 'BLACKHOLE',
  b: 'BROADCAST',
  I: 'IFSCOPE',
  i: 'IFREF',
  Y: 'PROXY',
  r: 'ROUTER',
  g: 'GLOBAL',
};

export type NetstatGateway =
  | { kind: 'ip'; address: string; zone?: string }
  | { kind: 'link'; index: number }
  | { kind: 'mac'; address: string }
  | { kind: 'interface'; name: string }
  | { kind: 'name'; name: string };

export interface NetstatRoute {
  family: 4 | 6;
  /** as printed */
  destination: string;
  /** canonical CIDR; undefined when netstat printed a host name (no -n) */
  dst?: string;
  /** zone of a scoped IPv6 destination (`fe80::%en0/64`) */
  dstZone?: string;
  gateway: NetstatGateway;
  flags: string;
  flagNames: string[];
  netif: string;
  expire?: string;
  refs?: number;
  use?: number;
  mtu?: number;
  /** derived from flags */
  isDefault: boolean;
  viaGateway: boolean;
  host: boolean;
  static: boolean;
  ifscope: boolean;
  blackhole: boolean;
  reject: boolean;
}

const MAC = /^[0-9a-f]{1,2}(:[0-9a-f]{1,2}){5}$/i;
const IFNAME = /^[a-z][a-z0-9]*\d+$/i;

export function parseGateway(s: string): NetstatGateway {
  const link = /^link#(\d+)$/.exec(s);
  if (link) return { kind: 'link', index: Number(link[1]) };
  if (MAC.test(s) && !ipaddr.isValid(s)) return { kind: 'mac', address: s };
  const [a, zone] = s.split('%');
  if (a && ipaddr.isValid(a))
    return zone ? { kind: 'ip', address: a, zone } : { kind: 'ip', address: a };
  if (IFNAME.test(s)) return { kind: 'interface', name: s };
  return { kind: 'name', name: s };
}

function classfulPrefix(firstOctet: number): number {
  if (firstOctet < 128) return 8;
  if (firstOctet < 192) return 16;
  if (firstOctet < 224) return 24;
  return 4;
}

/** Expand a netstat destination to a canonical CIDR; undefined for host names. */
export function expandDestination(
  dest: string,
  family: 4 | 6,
  host: boolean,
): { cidr: string; zone?: string } | undefined {
  if (dest === 'default') return { cidr: family === 4 ? '0.0.0.0/0' : '::/0' };
  const [raw, len] = dest.split('/') as [string, string | undefined];
  let addr = raw;
  let zone: string | undefined;
  if (family === 6) {
    const z = raw.split('%');
    addr = z[0]!;
    zone = z[1];
    if (!ipaddr.IPv6.isValid(addr)) return undefined;
    const prefix = len !== undefined ? Number(len) : 128;
    const net = ipaddr.IPv6.networkAddressFromCIDR(`${addr}/${prefix}`).toString();
    return zone ? { cidr: `${net}/${prefix}`, zone } : { cidr: `${net}/${prefix}` };
  }
  const parts = addr.split('.');
  if (parts.length > 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    return undefined;
  let prefix: number;
  if (len !== undefined) prefix = Number(len);
  else if (host || parts.length === 4)
    prefix = host ? 32 : parts.length === 4 ? 32 : classfulPrefix(Number(parts[0]));
  else prefix = classfulPrefix(Number(parts[0]));
  while (parts.length < 4) parts.push('0');
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
  const net = ipaddr.IPv4.networkAddressFromCIDR(`${parts.join('.')}/${prefix}`).toString();
  return { cidr: `${net}/${prefix}` };
}

export function parseNetstatRoutes(text: string): NetstatRoute[] {
  const out: NetstatRoute[] = [];
  let family: 4 | 6 | undefined;
  let cols: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === 'Internet:') {
      family = 4;
      cols = undefined;
      continue;
    }
    if (trimmed === 'Internet6:') {
      family = 6;
      cols = undefined;
      continue;
    }
    if (trimmed.startsWith('Destination')) {
      cols = trimmed.split(/\s+/);
      continue;
    }
    if (!family || !cols || !trimmed) continue;
    const t = trimmed.split(/\s+/);
    const netifAt = cols.indexOf('Netif');
    // Expire is the only column that may be blank.
    if (t.length < netifAt + 1 || t.length > cols.length) continue;
    const get = (name: string): string | undefined => {
      const i = cols!.indexOf(name);
      return i >= 0 ? t[i] : undefined;
    };
    const flags = get('Flags') ?? '';
    if (!/^[A-Za-z0-9]+$/.test(flags)) continue;
    const flagNames = [...flags].map((c) => ROUTE_FLAG_LETTERS[c] ?? `?${c}`);
    const destination = t[0]!;
    const host = flags.includes('H');
    const exp = expandDestination(destination, family, host);
    const num = (name: string): number | undefined => {
      const v = get(name);
      return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
    };
    const r: NetstatRoute = {
      family,
      destination,
      gateway: parseGateway(t[1]!),
      flags,
      flagNames,
      netif: t[netifAt]!,
      isDefault: destination === 'default',
      viaGateway: flags.includes('G'),
      host,
      static: flags.includes('S'),
      ifscope: flags.includes('I'),
      blackhole: flags.includes('B'),
      reject: flags.includes('R'),
    };
    if (exp) {
      r.dst = exp.cidr;
      if (exp.zone) r.dstZone = exp.zone;
    }
    const expire = t[netifAt + 1];
    if (expire !== undefined) r.expire = expire;
    const refs = num('Refs');
    if (refs !== undefined) r.refs = refs;
    const use = num('Use');
    if (use !== undefined) r.use = use;
    const mtu = num('Mtu');
    if (mtu !== undefined) r.mtu = mtu;
    out.push(r);
  }
  return out;
}

/** The unscoped default route of a family: the physical uplink (what `route get 0` resolves). */
export function primaryDefault(routes: NetstatRoute[], family: 4 | 6): NetstatRoute | undefined {
  return routes.find(
    (r) =>
      r.family === family && r.isDefault && !r.ifscope && r.viaGateway && r.gateway.kind === 'ip',
  );
}
