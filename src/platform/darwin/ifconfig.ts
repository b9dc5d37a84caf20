/**
 * `ifconfig` (BSD/macOS) text → interfaces. Pure.
 *
 * Quirks handled: continuation lines are TAB-indented (some pastes use spaces); utun is
 * point-to-point and prints `inet A --> B netmask 0x…` (peer `0.0.0.0` when unset); an
 * IPv4 address configured without a mask gets the classful mask (`ifconfig utun5 inet A A`
 * → 0xff000000), so callers must always pass the netmask explicitly; inet6 carries
 * `%zone` and trailing attribute words (autoconf, secured, temporary, deprecated, dynamic).
 */

export interface Inet4Addr {
  address: string;
  prefixlen: number;
  /** point-to-point destination (`-->`) */
  peer?: string;
  broadcast?: string;
}

export interface Inet6Addr {
  address: string;
  prefixlen: number;
  /** `%zone` suffix of link-local addresses */
  zone?: string;
  scopeId?: number;
  /** e.g. autoconf, secured, temporary, deprecated, dynamic */
  attrs: string[];
}

export interface IfconfigInterface {
  name: string;
  flagsValue: number;
  flags: string[];
  mtu: number;
  up: boolean;
  running: boolean;
  pointToPoint: boolean;
  loopback: boolean;
  options: string[];
  ether?: string;
  inet: Inet4Addr[];
  inet6: Inet6Addr[];
  status?: string;
}

const HEADER = /^([A-Za-z0-9_.-]+): flags=([0-9a-fA-F]+)<([^>]*)> mtu (\d+)/;

/** Prefix length of a hex netmask such as `0xffffff00`; throws on non-contiguous masks. */
export function hexMaskToPrefix(hex: string): number {
  const v = Number.parseInt(hex.replace(/^0x/i, ''), 16);
  if (!Number.isFinite(v) || v < 0 || v > 0xffffffff) throw new Error(`bad netmask ${hex}`);
  let n = 0;
  while (n < 32 && (v >>> (31 - n)) & 1) n++;
  if (n < 32 && (v << n) >>> 0 !== 0) throw new Error(`non-contiguous netmask ${hex}`);
  return n;
}

export function prefixToHexMask(len: number): string {
  const v = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return `0x${v.toString(16).padStart(8, '0')}`;
}

export function parseIfconfig(text: string): IfconfigInterface[] {
  const out: IfconfigInterface[] = [];
  let cur: IfconfigInterface | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim()) continue;
    const h = HEADER.exec(line);
    if (h) {
      const flags = h[3] ? h[3].split(',').filter(Boolean) : [];
      cur = {
        name: h[1]!,
        flagsValue: Number.parseInt(h[2]!, 16),
        flags,
        mtu: Number(h[4]),
        up: flags.includes('UP'),
        running: flags.includes('RUNNING'),
        pointToPoint: flags.includes('POINTOPOINT'),
        loopback: flags.includes('LOOPBACK'),
        options: [],
        inet: [],
        inet6: [],
      };
      out.push(cur);
      continue;
    }
    if (!cur || !/^\s/.test(line)) continue;
    const t = line.trim().split(/\s+/);
    const key = t[0];
    if (key === 'inet') {
      const a: Inet4Addr = { address: t[1]!, prefixlen: 32 };
      for (let i = 2; i < t.length; i++) {
        if (t[i] === '-->') a.peer = t[++i]!;
        else if (t[i] === 'netmask') a.prefixlen = hexMaskToPrefix(t[++i]!);
        else if (t[i] === 'broadcast') a.broadcast = t[++i]!;
      }
      cur.inet.push(a);
    } else if (key === 'inet6') {
      const [addr, zone] = t[1]!.split('%');
      const a: Inet6Addr = { address: addr!, prefixlen: 128, attrs: [] };
      if (zone) a.zone = zone;
      for (let i = 2; i < t.length; i++) {
        if (t[i] === 'prefixlen') a.prefixlen = Number(t[++i]);
        else if (t[i] === 'scopeid') a.scopeId = Number.parseInt(t[++i]!, 16);
        else if (t[i] === '-->') i++;
        else a.attrs.push(t[i]!);
      }
      cur.inet6.push(a);
    } else if (key?.startsWith('options=')) {
      const m = /<([^>]*)>/.exec(key);
      cur.options = m?.[1] ? m[1].split(',') : [];
    } else if (key === 'ether') {
      cur.ether = t[1]!;
    } else if (key === 'status:') {
      cur.status = t.slice(1).join(' ');
    }
  }
  return out;
}

export function isUtun(name: string): boolean {
  return /^utun\d+$/.test(name);
}

/** `ifconfig: SIOCIFDESTROY: Invalid argument` and similar one-line failures. */
export interface IfconfigError {
  op?: string;
  message: string;
  /** `interface X does not exist` */
  noSuchInterface: boolean;
}

export function parseIfconfigError(text: string): IfconfigError | undefined {
  const line = text.split('\n').find((l) => l.startsWith('ifconfig: '));
  if (!line) return undefined;
  const rest = line.slice('ifconfig: '.length).trim();
  const m = /^(SIOC[A-Z0-9]+): (.+)$/.exec(rest);
  const e: IfconfigError = {
    message: m ? m[2]! : rest,
    noSuchInterface: /does not exist/.test(rest),
  };
  if (m) e.op = m[1]!;
  return e;
}
