/**
 * systemd-resolved's D-Bus API as `busctl` arguments and its answers as specs. Pure.
 *
 * Facts of resolved (systemd 252) this relies on:
 * - Manager methods take the link's ifindex: SetLinkDNS `ia(iay)` (family AF_INET 2 /
 *   AF_INET6 10, address bytes), SetLinkDomains `ia(sb)` (name, routing-only: `~x` is `x`
 *   routing-only, `~.` is `.` routing-only), SetLinkDefaultRoute `ib`, RevertLink `i`.
 * - The Link object `/org/freedesktop/resolve1/link/<escaped ifindex>` has the properties DNS
 *   `a(iay)`, Domains `a(sb)` and DefaultRoute `b`; `busctl --json=short get-property` prints
 *   one `{"type":…,"data":…}` line per property, in the order asked.
 * - Object paths escape a leading digit (and anything but [A-Za-z0-9_]) as `_` + two hex
 *   digits (sd_bus_path_encode): ifindex 12 → `_312`.
 */
import ipaddr from '../../util/ipaddr.js';
import type { DnsSpec } from '../../model/resources.js';

export const RESOLVE1 = 'org.freedesktop.resolve1';
export const RESOLVE1_PATH = '/org/freedesktop/resolve1';
export const RESOLVE1_MANAGER = 'org.freedesktop.resolve1.Manager';
export const RESOLVE1_LINK = 'org.freedesktop.resolve1.Link';
/** the properties observe reads, in this order */
export const LINK_PROPERTIES = ['DNS', 'Domains', 'DefaultRoute'] as const;

const AF_INET = 2;
const AF_INET6 = 10;

/** sd_bus_path_encode's escaping of one label */
export function busLabel(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    const plain = /[A-Za-z_]/.test(c) || (i > 0 && /[0-9]/.test(c));
    out += plain ? c : `_${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function linkPath(ifindex: number): string {
  return `${RESOLVE1_PATH}/link/${busLabel(String(ifindex))}`;
}

/** `busctl call … Manager <method> <signature> <args…>` after the method name */
export function setLinkDnsArgs(ifindex: number, servers: readonly string[]): string[] {
  const out = ['ia(iay)', String(ifindex), String(servers.length)];
  for (const s of servers) {
    const bytes = ipaddr.parse(s).toByteArray();
    out.push(String(bytes.length === 4 ? AF_INET : AF_INET6), String(bytes.length));
    out.push(...bytes.map(String));
  }
  return out;
}

export function setLinkDomainsArgs(ifindex: number, domains: readonly string[]): string[] {
  const out = ['ia(sb)', String(ifindex), String(domains.length)];
  for (const d of domains) {
    const routeOnly = d.startsWith('~');
    const name = routeOnly ? d.slice(1) : d;
    out.push(name === '' ? '.' : name, routeOnly ? 'true' : 'false');
  }
  return out;
}

export function setLinkDefaultRouteArgs(ifindex: number, yes: boolean): string[] {
  return ['ib', String(ifindex), yes ? 'true' : 'false'];
}

/** one `--json=short` property value */
interface BusValue {
  type: string;
  data: unknown;
}

function parseLines(text: string): BusValue[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as BusValue);
}

function addressOf(family: unknown, bytes: unknown): string | undefined {
  if (!Array.isArray(bytes) || !bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256))
    return undefined;
  if ((family === AF_INET && bytes.length === 4) || (family === AF_INET6 && bytes.length === 16))
    return ipaddr.fromByteArray(bytes as number[]).toString();
  return undefined;
}

/**
 * The link's settings from `busctl --json=short get-property … Link DNS Domains DefaultRoute`.
 * Throws on output of another shape (a resolved we do not understand must not read as empty).
 */
export function parseLinkProperties(
  scope: string,
  text: string,
): Required<Pick<DnsSpec, 'scope' | 'servers' | 'domains' | 'defaultRoute'>> {
  const v = parseLines(text);
  const [dns, domains, route] = v;
  if (
    v.length !== LINK_PROPERTIES.length ||
    dns?.type !== 'a(iay)' ||
    domains?.type !== 'a(sb)' ||
    route?.type !== 'b' ||
    !Array.isArray(dns.data) ||
    !Array.isArray(domains.data) ||
    typeof route.data !== 'boolean'
  )
    throw new Error(`unexpected resolved link properties: ${text.slice(0, 200)}`);
  const servers: string[] = [];
  for (const e of dns.data as unknown[]) {
    const a = Array.isArray(e) ? addressOf(e[0], e[1]) : undefined;
    if (a === undefined) throw new Error(`unexpected DNS entry ${JSON.stringify(e)}`);
    servers.push(a);
  }
  const names: string[] = [];
  for (const e of domains.data as unknown[]) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'boolean')
      throw new Error(`unexpected Domains entry ${JSON.stringify(e)}`);
    names.push(e[1] ? `~${e[0]}` : e[0]);
  }
  return { scope, servers, domains: names, defaultRoute: route.data };
}

/** `busctl call org.freedesktop.DBus … NameHasOwner s NAME` → `b true` / `b false` */
export function parseNameHasOwner(text: string): boolean | undefined {
  const m = /^b (true|false)$/.exec(text.trim());
  return m ? m[1] === 'true' : undefined;
}
