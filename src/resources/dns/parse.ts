/**
 * DNS manager detection, resolv.conf rendering/parsing and resolvectl output parsing. Pure.
 */
import { isIP } from 'node:net';
import ipaddr from '../../util/ipaddr.js';
import type { DnsSpec } from '../../model/resources.js';

export type DnsManager = 'resolved' | 'resolvconf' | 'static';
export const DNS_MANAGERS: readonly DnsManager[] = ['resolved', 'resolvconf', 'static'];

/** first line of a resolv.conf written by awg */
export const RESOLV_MARKER = '# managed by awg';

export interface DetectInput {
  /** AWG_DNS_MANAGER */
  override?: string | undefined;
  /** readlink of resolv.conf when it is a symlink */
  resolvConfLink?: string | undefined;
  resolvConfText?: string | undefined;
  hasResolvectl: boolean;
  hasResolvconf: boolean;
}

/**
 * systemd-resolved when resolvectl exists and resolv.conf points at its stub (symlink into
 * /run/systemd/resolve or nameserver 127.0.0.53); else resolvconf when installed; else static.
 */
export function detectDnsManager(i: DetectInput): DnsManager {
  if (i.override !== undefined && i.override !== '') {
    if (!(DNS_MANAGERS as readonly string[]).includes(i.override))
      throw new Error(
        `AWG_DNS_MANAGER must be one of ${DNS_MANAGERS.join(', ')}, not ${i.override}`,
      );
    return i.override as DnsManager;
  }
  const stub =
    (i.resolvConfLink ?? '').includes('/run/systemd/resolve/') ||
    /^\s*nameserver\s+127\.0\.0\.53\s*$/m.test(i.resolvConfText ?? '');
  if (i.hasResolvectl && stub) return 'resolved';
  if (i.hasResolvconf) return 'resolvconf';
  return 'static';
}

const isRouting = (d: string) => d.startsWith('~');

/**
 * resolv.conf for `spec`. Routing-only domains (`~x`) have no resolv.conf meaning; they are kept
 * in a comment so the file parses back to the same spec.
 */
export function renderResolvConf(spec: DnsSpec): string {
  const lines = [
    `${RESOLV_MARKER} scope=${spec.scope}`,
    '# the previous file is saved in the awg state directory and restored by `awg down`',
  ];
  const routing = spec.domains.filter(isRouting);
  if (routing.length) lines.push(`# awg routing-domains: ${routing.join(' ')}`);
  for (const s of spec.servers) lines.push(`nameserver ${s}`);
  const search = spec.domains.filter((d) => !isRouting(d));
  if (search.length) lines.push(`search ${search.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** the spec of a resolv.conf awg wrote, or undefined when the file is not ours */
export function parseManagedResolvConf(text: string): DnsSpec | undefined {
  const lines = text.split('\n');
  const head = new RegExp(`^${RESOLV_MARKER} scope=(\\S+)$`).exec(lines[0] ?? '');
  if (!head) return undefined;
  const spec: DnsSpec = { scope: head[1]!, servers: [], domains: [] };
  const routing: string[] = [];
  for (const l of lines.slice(1)) {
    const w = l.trim().split(/\s+/);
    if (w[0] === 'nameserver' && w[1]) spec.servers.push(w[1]);
    else if (w[0] === 'search' || w[0] === 'domain') spec.domains.push(...w.slice(1));
    else if (l.startsWith('# awg routing-domains:')) routing.push(...w.slice(3));
  }
  spec.domains = [...routing, ...spec.domains];
  return spec;
}

/** resolvconf input for one interface (same format as resolv.conf, no marker needed) */
export function renderResolvconfInput(spec: DnsSpec): string {
  const routing = spec.domains.filter(isRouting);
  const lines = routing.length ? [`# awg routing-domains: ${routing.join(' ')}`] : [];
  lines.push(...spec.servers.map((s) => `nameserver ${s}`));
  const search = spec.domains.filter((d) => !isRouting(d));
  if (search.length) lines.push(`search ${search.join(' ')}`);
  return lines.join('\n') + '\n';
}

export function parseResolvconfInput(scope: string, text: string): DnsSpec {
  return { ...parseManagedResolvConf(`${RESOLV_MARKER} scope=${scope}\n${text}`)!, scope };
}

/**
 * `resolvectl dns` / `resolvectl domain` without a link argument:
 * `Link 5 (awg-x): 10.0.0.1 fd00::1` per link → link name → values.
 */
export function parseResolvectlLinks(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of text.split('\n')) {
    const m = /^Link \d+ \(([^)]+)\):(.*)$/.exec(l.trim());
    if (m) out.set(m[1]!, m[2]!.trim().split(/\s+/).filter(Boolean));
  }
  return out;
}

/**
 * The `nameserver` addresses of a resolv.conf, canonical, in order, without duplicates, at
 * most `max` (glibc reads 3). Only IP literals as inet_pton reads them: no zone (`%eth0`),
 * no leading zeros (`010.0.0.1`), nothing else on the line.
 */
export function parseNameservers(text: string, max = 3): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)\s*(?:[#;].*)?$/.exec(line);
    if (!m || isIP(m[1]!) === 0 || m[1]!.includes('%')) continue;
    const a = ipaddr.parse(m[1]!).toString();
    if (!out.includes(a)) out.push(a);
    if (out.length >= max) break;
  }
  return out;
}
