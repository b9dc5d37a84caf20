/**
 * networksetup(8) listings, DNS getters, error text, and the argv of its setters. Pure.
 * Errors go to STDOUT with exit code 4 (`X is not a recognized network service.` +
 * `** Error: The parameters were not valid.`).
 */

export interface NetworkService {
  name: string;
  /** listed with a leading `*` */
  disabled: boolean;
}

const LEGEND = 'An asterisk (*) denotes that a network service is disabled.';

/** `-listallnetworkservices` */
export function parseServiceList(text: string): NetworkService[] {
  return text
    .split('\n')
    .map((l) => l.replace(/\r$/, '').trimEnd())
    .filter((l) => l && l !== LEGEND)
    .map((l) =>
      l.startsWith('*') ? { name: l.slice(1), disabled: true } : { name: l, disabled: false },
    );
}

export interface ServiceOrderEntry extends NetworkService {
  order: number;
  hardwarePort?: string;
  device?: string;
}

/** `-listnetworkserviceorder`: maps service names (which may differ from port names) to devices. */
export function parseServiceOrder(text: string): ServiceOrderEntry[] {
  const out: ServiceOrderEntry[] = [];
  let cur: ServiceOrderEntry | undefined;
  for (const l of text.split('\n').map((x) => x.trim())) {
    const h = /^\((\d+|\*)\) (.+)$/.exec(l);
    if (h && !l.startsWith('(Hardware Port:')) {
      const disabled = h[1] === '*' || h[2]!.startsWith('*');
      cur = { order: h[1] === '*' ? 0 : Number(h[1]), name: h[2]!.replace(/^\*/, ''), disabled };
      out.push(cur);
      continue;
    }
    const d = /^\(Hardware Port: (.*), Device: (.*)\)$/.exec(l);
    if (d && cur) {
      cur.hardwarePort = d[1]!;
      if (d[2]) cur.device = d[2];
    }
  }
  return out;
}

export interface HardwarePort {
  port: string;
  device: string;
  ether?: string;
}

/** `-listallhardwareports` */
export function parseHardwarePorts(text: string): HardwarePort[] {
  const out: HardwarePort[] = [];
  let cur: Partial<HardwarePort> = {};
  const flush = () => {
    if (cur.port && cur.device)
      out.push(
        cur.ether
          ? { port: cur.port, device: cur.device, ether: cur.ether }
          : { port: cur.port, device: cur.device },
      );
    cur = {};
  };
  for (const l of text.split('\n').map((x) => x.trim())) {
    let m: RegExpExecArray | null;
    if ((m = /^Hardware Port: (.+)$/.exec(l))) {
      flush();
      cur.port = m[1]!;
    } else if ((m = /^Device: (.+)$/.exec(l))) cur.device = m[1]!;
    else if ((m = /^Ethernet Address: (.+)$/.exec(l))) cur.ether = m[1]!;
  }
  flush();
  return out;
}

/**
 * `-getdnsservers <svc>` / `-getsearchdomains <svc>`: one value per line, or
 * `There aren't any DNS Servers set on Wi-Fi.` (trailing space optional) or
 * `There are no additional IPv4 routes on Wi-Fi.` → [].
 */
export function parseValueList(text: string): string[] {
  const ls = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  if (ls.some((l) => /^There (?:aren't any|are no) .+ on .+\.$/.test(l))) return [];
  return ls;
}

export interface NetworksetupError {
  /** `X is not a recognized network service.` */
  unknownService?: string;
  message: string;
}

export function parseNetworksetupError(text: string): NetworksetupError | undefined {
  const ls = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const err = ls.find((l) => l.startsWith('** Error:'));
  const unk = ls.map((l) => /^(.+) is not a recognized network service\.$/.exec(l)).find(Boolean);
  if (!err && !unk) return undefined;
  const e: NetworksetupError = { message: (err ?? unk![0]).replace(/^\*\* Error:\s*/, '') };
  if (unk) e.unknownService = unk[1]!;
  return e;
}

/** `networksetup -setdnsservers <svc> …`; `Empty` clears the manual list (back to DHCP-provided). */
export function setDnsServersArgs(service: string, servers: string[]): string[] {
  return ['-setdnsservers', service, ...(servers.length ? servers : ['Empty'])];
}

export function setSearchDomainsArgs(service: string, domains: string[]): string[] {
  return ['-setsearchdomains', service, ...(domains.length ? domains : ['Empty'])];
}

/** Commands that make mDNSResponder drop cached answers after a resolver change. */
export const DNS_FLUSH_COMMANDS: readonly [string, string[]][] = [
  ['dscacheutil', ['-flushcache']],
  ['killall', ['-HUP', 'mDNSResponder']],
];
