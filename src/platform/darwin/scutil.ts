/**
 * `scutil --dns`, `scutil --nwi` and dynamic-store `show` dumps. Pure.
 * Formats from configd dnsinfo/dnsinfo_logging.h and nwi/network_state_information_logging.h;
 * releases before ~2019 print a bare `Reachable`/`Not Reachable` line instead of `reach : 0x…`.
 */

export type DnsSection = 'default' | 'scoped' | 'service';

export interface ScutilResolver {
  section: DnsSection;
  /** `resolver #N` */
  number: number;
  domain?: string;
  searchDomains: string[];
  nameservers: string[];
  ifIndex?: number;
  ifName?: string;
  flags: string[];
  reach?: number;
  reachable?: boolean;
  order?: number;
  options?: string;
  timeout?: number;
  port?: number;
  /** `Supplemental` flag: only consulted for its domain (split DNS) */
  supplemental: boolean;
  /** `Scoped` flag: only for queries scoped to if_index */
  scoped: boolean;
}

export function parseScutilDns(text: string): ScutilResolver[] {
  const out: ScutilResolver[] = [];
  let section: DnsSection = 'default';
  let cur: ScutilResolver | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const t = line.trim();
    if (t === 'DNS configuration') section = 'default';
    else if (t === 'DNS configuration (for scoped queries)') section = 'scoped';
    else if (t === 'DNS configuration (for service-specific queries)') section = 'service';
    const r = /^resolver #(\d+)$/.exec(t);
    if (r) {
      cur = {
        section,
        number: Number(r[1]),
        searchDomains: [],
        nameservers: [],
        flags: [],
        supplemental: false,
        scoped: false,
      };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    if (t === '') {
      cur = undefined;
      continue;
    }
    if (t === 'Reachable' || t === 'Not Reachable') {
      cur.reachable = t === 'Reachable';
      continue;
    }
    const kv = /^([a-z_ ]+?)(?:\[(\d+)\])?\s*:\s*(.*)$/.exec(t);
    if (!kv) continue;
    const key = kv[1]!.trim();
    const val = kv[3]!.trim();
    switch (key) {
      case 'domain':
        cur.domain = val;
        break;
      case 'search domain':
        cur.searchDomains.push(val);
        break;
      case 'nameserver':
        cur.nameservers.push(val);
        break;
      case 'if_index': {
        const m = /^(\d+)(?: \((.+)\))?$/.exec(val);
        if (m) {
          cur.ifIndex = Number(m[1]);
          if (m[2]) cur.ifName = m[2];
        }
        break;
      }
      case 'flags':
        cur.flags = val
          .split(',')
          .map((f) => f.trim())
          .filter(Boolean);
        cur.supplemental = cur.flags.includes('Supplemental');
        cur.scoped = cur.flags.includes('Scoped');
        break;
      case 'reach': {
        const m = /^0x([0-9a-f]+)(?: \((.*)\))?/i.exec(val);
        if (m) {
          cur.reach = Number.parseInt(m[1]!, 16);
          cur.reachable = (m[2] ?? '').split(',').includes('Reachable');
        }
        break;
      }
      case 'order':
        cur.order = Number(val);
        break;
      case 'options':
        cur.options = val;
        break;
      case 'timeout':
        cur.timeout = Number(val);
        break;
      case 'port':
        cur.port = Number(val);
        break;
    }
  }
  return out;
}

export interface NwiInterface {
  name: string;
  flags: number;
  flagNames: string[];
  address?: string;
  vpnServer?: string;
  reach?: number;
}

export interface ScutilNwi {
  ipv4: NwiInterface[];
  ipv6: NwiInterface[];
  /** ordered, from the final `Network interfaces:` line; undefined when absent (fragment) */
  interfaces?: string[];
}

export function parseScutilNwi(text: string): ScutilNwi {
  const res: ScutilNwi = { ipv4: [], ipv6: [] };
  let fam: NwiInterface[] | undefined;
  let cur: NwiInterface | undefined;
  for (const raw of text.split('\n')) {
    const t = raw.trim();
    if (t === 'IPv4 network interface information') {
      fam = res.ipv4;
      cur = undefined;
      continue;
    }
    if (t === 'IPv6 network interface information') {
      fam = res.ipv6;
      cur = undefined;
      continue;
    }
    const nif = /^Network interfaces:\s*(.*)$/.exec(t);
    if (nif) {
      res.interfaces = nif[1]!.split(/\s+/).filter(Boolean);
      continue;
    }
    if (!fam) continue;
    const head = /^(\S+) : flags\s*: 0x([0-9a-f]+)(?: \((.*)\))?$/i.exec(t);
    if (head) {
      cur = {
        name: head[1]!,
        flags: Number.parseInt(head[2]!, 16),
        flagNames: (head[3] ?? '').split(',').filter(Boolean),
      };
      fam.push(cur);
      continue;
    }
    if (t.startsWith('REACH :')) {
      cur = undefined;
      continue;
    }
    if (!cur) continue;
    const kv = /^(address|VPN server|reach)\s*: (\S+)/.exec(t);
    if (!kv) continue;
    if (kv[1] === 'address') cur.address = kv[2]!;
    else if (kv[1] === 'VPN server') cur.vpnServer = kv[2]!;
    else cur.reach = Number.parseInt(kv[2]!.replace(/^0x/, ''), 16);
  }
  return res;
}

export type ScutilValue = string | ScutilValue[] | { [k: string]: ScutilValue };

/**
 * `show <key>` in scutil's interactive mode: `<dictionary> {`, `Key : value`, nested
 * `<array> {` with `0 : v` items. Returns undefined for `No such key`.
 */
export function parseScutilShow(text: string): { [k: string]: ScutilValue } | undefined {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  if (lines.some((l) => /^No such key/.test(l))) return undefined;
  let i = 0;
  const block = (isArray: boolean): ScutilValue => {
    const obj: { [k: string]: ScutilValue } = {};
    const arr: ScutilValue[] = [];
    while (i < lines.length) {
      const l = lines[i++]!;
      if (l === '}') break;
      const m = /^(.+?) : (.*)$/.exec(l);
      if (!m) continue;
      const key = m[1]!;
      const v = m[2]!;
      const val: ScutilValue =
        v === '<dictionary> {' ? block(false) : v === '<array> {' ? block(true) : v;
      if (isArray) arr.push(val);
      else obj[key] = val;
    }
    return isArray ? arr : obj;
  };
  const start = lines.findIndex((l) => l === '<dictionary> {');
  if (start < 0) return undefined;
  i = start + 1;
  return block(false) as { [k: string]: ScutilValue };
}

/** Input for `scutil` (stdin) that publishes a supplemental resolver for `domains` under our own key. */
export function scutilSetDnsScript(key: string, servers: string[], domains: string[]): string {
  const l = ['d.init', `d.add ServerAddresses * ${servers.join(' ')}`];
  if (domains.length)
    l.push(
      `d.add SupplementalMatchDomains * ${domains.join(' ')}`,
      `d.add SearchDomains * ${domains.join(' ')}`,
    );
  l.push(`set ${key}`, 'quit', '');
  return l.join('\n');
}

export function scutilRemoveScript(key: string): string {
  return `remove ${key}\nquit\n`;
}

export function scutilShowScript(key: string): string {
  return `show ${key}\nquit\n`;
}
