/**
 * Socket listings used for diagnostics (the flow router's owner lookup is
 * `net.inet.{tcp,udp}.pcblist_n` + proc_pidpath; see
 * fixtures/macos/binary/LAYOUTS.md). Pure.
 *
 * `netstat -An` truncates addresses to 18 columns without -W (`2600:1700:bab0:d.5`); such
 * endpoints are kept raw with `truncated: true`. The port is the part after the last dot.
 */

export interface SockEndpoint {
  /** `*` for the wildcard address */
  address: string;
  /** undefined for `*` */
  port?: number;
  /** the text filled netstat's 18-column field and may have been cut */
  truncated: boolean;
}

export interface InetSocket {
  socket: string;
  flowhash: string;
  proto: string;
  recvQ: number;
  sendQ: number;
  local: SockEndpoint;
  foreign: SockEndpoint;
  state?: string;
}

export interface KernelControl {
  id: number;
  unit: number;
  name: string;
}

export interface NetstatAn {
  inet: InetSocket[];
  /** registered kernel control modules: name → id */
  controlModules: Map<string, number>;
  /** open kernel control sockets (one per utun the system or an app holds) */
  controlSockets: KernelControl[];
}

export const UTUN_CONTROL = 'com.apple.net.utun_control';

function endpoint(s: string): SockEndpoint {
  const i = s.lastIndexOf('.');
  const addr = i >= 0 ? s.slice(0, i) : s;
  const port = i >= 0 ? s.slice(i + 1) : '*';
  // a value that fills the 18-column field may have been cut (address and port unreliable)
  const e: SockEndpoint = { address: addr, truncated: s.length >= 18 };
  if (port !== '*') e.port = Number(port);
  return e;
}

export function parseNetstatAn(text: string): NetstatAn {
  const res: NetstatAn = { inet: [], controlModules: new Map(), controlSockets: [] };
  let section = '';
  for (const raw of text.split('\n')) {
    const l = raw.replace(/\r$/, '');
    if (/^(Active|Registered) /.test(l)) {
      section = l;
      continue;
    }
    const t = l.trim().split(/\s+/);
    if (section === 'Active Internet connections') {
      if (t[0] === 'Socket' || t.length < 7) continue;
      const s: InetSocket = {
        socket: t[0]!,
        flowhash: t[1]!,
        proto: t[2]!,
        recvQ: Number(t[3]),
        sendQ: Number(t[4]),
        local: endpoint(t[5]!),
        foreign: endpoint(t[6]!),
      };
      if (t[7]) s.state = t[7];
      res.inet.push(s);
    } else if (section === 'Registered kernel control modules') {
      if (t.length === 8 && /^[0-9a-f]+$/.test(t[1]!))
        res.controlModules.set(t[7]!, Number.parseInt(t[1]!, 16));
    } else if (section === 'Active kernel control sockets') {
      if (t.length === 7 && t[1] === 'kctl')
        res.controlSockets.push({ unit: Number(t[4]), id: Number(t[5]), name: t[6]! });
    }
  }
  return res;
}

/** utun names implied by open utun control sockets: unit N+1 ↔ utunN. */
export function utunsFromControlSockets(socks: KernelControl[]): string[] {
  return socks.filter((s) => s.name === UTUN_CONTROL).map((s) => `utun${s.unit - 1}`);
}

export interface LsofInet {
  command: string;
  pid: number;
  user: string;
  fd: string;
  type: 'IPv4' | 'IPv6';
  node: 'TCP' | 'UDP';
  name: string;
  state?: string;
}

/** `lsof -i` rows (with or without the header; COMMAND is cut to 9 chars unless `+c0`). */
export function parseLsofInet(text: string): LsofInet[] {
  const out: LsofInet[] = [];
  for (const l of text.split('\n')) {
    const m =
      /^(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(IPv4|IPv6)\s+\S+\s+\S+\s+(TCP|UDP)\s+(\S+)(?:\s+\(([A-Z_]+)\))?\s*$/.exec(
        l,
      );
    if (!m) continue;
    const r: LsofInet = {
      command: m[1]!,
      pid: Number(m[2]),
      user: m[3]!,
      fd: m[4]!,
      type: m[5] as 'IPv4' | 'IPv6',
      node: m[6] as 'TCP' | 'UDP',
      name: m[7]!,
    };
    if (m[8]) r.state = m[8];
    out.push(r);
  }
  return out;
}

/** `lsof: unknown …` usage errors (macOS ships lsof 4.91). */
export function parseLsofError(text: string): { message: string; version?: string } | undefined {
  const l = text.split('\n').find((x) => x.startsWith('lsof: '));
  if (!l) return undefined;
  const v = /^lsof (\d[\d.]*)$/m.exec(text);
  return v ? { message: l.slice(6), version: v[1]! } : { message: l.slice(6) };
}
