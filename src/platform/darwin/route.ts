/**
 * route(8) command lines and result parsing (network_cmds route.tproj). Pure.
 *
 * `route` exits 0 even when the kernel rejects the request; the outcome is in its one
 * line of stdout (`add net 0.0.0.0/1: gateway utun3` on success, the same line followed
 * by `: File exists` on failure) and in stderr (`route: writing to routing socket: …`).
 * Error texts: ESRCH → `not in table`, EBUSY → `entry in use`, ENOBUFS → `routing table
 * overflow`, else strerror (`File exists`, `Network is unreachable`).
 */

export interface DarwinRoute {
  family: 4 | 6;
  /** canonical CIDR */
  dst: string;
  /** next hop IP; mutually exclusive with `interface` */
  gateway?: string;
  /** `-interface utunN`: a link route with no next hop */
  interface?: string;
  blackhole?: boolean;
  reject?: boolean;
  /**
   * `-ifscope utunN`: an interface-scoped route (flag I), seen only by lookups scoped to that
   * interface (sockets bound with IP_BOUND_IF); it never competes with the unscoped table
   */
  ifscope?: string;
}

function isHost(r: DarwinRoute): boolean {
  const len = Number(r.dst.split('/')[1]);
  return (r.family === 4 && len === 32) || (r.family === 6 && len === 128);
}

function target(r: DarwinRoute): string[] {
  const fam = r.family === 6 ? ['-inet6'] : ['-inet'];
  return isHost(r) ? [...fam, '-host', r.dst.split('/')[0]!] : [...fam, '-net', r.dst];
}

function via(r: DarwinRoute): string[] {
  if (r.blackhole || r.reject) {
    // A blackhole/reject route still needs a gateway: loopback.
    return [r.family === 6 ? '::1' : '127.0.0.1', r.blackhole ? '-blackhole' : '-reject'];
  }
  const scope = r.ifscope ? ['-ifscope', r.ifscope] : [];
  if (r.interface) return ['-interface', r.interface, ...scope];
  if (r.gateway) return [r.gateway, ...scope];
  throw new Error(`route ${r.dst} has neither gateway nor interface`);
}

/** `route -n add -inet -net 0.0.0.0/1 -interface utun3` (`… -interface utun4 -ifscope utun4`: scoped) */
export function routeAddArgs(r: DarwinRoute): string[] {
  return ['-n', 'add', ...target(r), ...via(r)];
}

export function routeChangeArgs(r: DarwinRoute): string[] {
  return ['-n', 'change', ...target(r), ...via(r)];
}

/** Deletes name the gateway (and the scope) too, so a same-prefix route of another owner is not hit. */
export function routeDeleteArgs(r: DarwinRoute): string[] {
  return ['-n', 'delete', ...target(r), ...via(r)];
}

/** The 0/1 + 128/1 pair (and ::/1 + 8000::/1) that overrides the default without replacing it. */
export function splitDefaultRoutes(utun: string, families: (4 | 6)[] = [4]): DarwinRoute[] {
  const out: DarwinRoute[] = [];
  if (families.includes(4))
    out.push(
      { family: 4, dst: '0.0.0.0/1', interface: utun },
      { family: 4, dst: '128.0.0.0/1', interface: utun },
    );
  if (families.includes(6))
    out.push(
      { family: 6, dst: '::/1', interface: utun },
      { family: 6, dst: '8000::/1', interface: utun },
    );
  return out;
}

/** Host routes to the tunnel endpoints via the physical gateway, so encrypted packets do not loop into the tunnel. */
export function endpointBypassRoutes(
  endpoints: string[],
  gw: { v4?: string; v6?: string },
): DarwinRoute[] {
  const out: DarwinRoute[] = [];
  for (const e of endpoints) {
    const v6 = e.includes(':');
    const g = v6 ? gw.v6 : gw.v4;
    if (!g) throw new Error(`no IPv${v6 ? 6 : 4} default gateway to reach endpoint ${e}`);
    out.push({ family: v6 ? 6 : 4, dst: v6 ? `${e}/128` : `${e}/32`, gateway: g });
  }
  return out;
}

export type RouteOutcome =
  | { ok: true; line: string }
  | {
      ok: false;
      error: string;
      errno?: 'EEXIST' | 'ESRCH' | 'EBUSY' | 'ENOBUFS' | 'ENETUNREACH';
      line?: string;
    };

const ERRNO: Record<string, 'EEXIST' | 'ESRCH' | 'EBUSY' | 'ENOBUFS' | 'ENETUNREACH'> = {
  'File exists': 'EEXIST',
  'not in table': 'ESRCH',
  'entry in use': 'EBUSY',
  'routing table overflow': 'ENOBUFS',
  'Network is unreachable': 'ENETUNREACH',
};

function outcomeError(error: string, line?: string): RouteOutcome {
  const e = ERRNO[error];
  const o: {
    ok: false;
    error: string;
    errno?: 'EEXIST' | 'ESRCH' | 'EBUSY' | 'ENOBUFS' | 'ENETUNREACH';
    line?: string;
  } = { ok: false, error };
  if (e) o.errno = e;
  if (line) o.line = line;
  return o;
}

/** Decide success from route's output (its exit status says nothing). */
export function parseRouteResult(stdout: string, stderr: string): RouteOutcome {
  const sock = /route: writing to routing socket: (.+)/.exec(stderr);
  const lines = stdout
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(Boolean);
  const line = lines.find((l) => /^(add|delete|change|get) (net|host) /.test(l));
  if (sock) return outcomeError(sock[1]!.trim(), line);
  if (!line) {
    const err = stderr.trim();
    return err ? outcomeError(err) : { ok: false, error: 'no output from route' };
  }
  // `<cmd> <net|host> <dst>[: gateway <gw>][: <error>]`; IPv6 text never contains ': '.
  const parts = line.split(': ');
  parts.shift();
  if (parts[0]?.startsWith('gateway ')) parts.shift();
  if (parts.length) return outcomeError(parts.join(': ').trim(), line);
  return { ok: true, line };
}

export interface RouteGet {
  routeTo: string;
  destination: string;
  mask?: string;
  gateway?: string;
  interface?: string;
  flags: string[];
  mtu?: number;
}

/** `route -n get <dst>` block. */
export function parseRouteGet(text: string): RouteGet | undefined {
  const kv = new Map<string, string>();
  const lines = text.split('\n');
  let mtu: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const m = /^\s*([a-z ]+):\s*(.*)$/.exec(l);
    if (m && !l.includes('recvpipe')) kv.set(m[1]!.trim(), m[2]!.trim());
    if (/^\s*recvpipe\s+sendpipe/.test(l)) {
      const hdr = l.trim().split(/\s+/);
      const vals = (lines[i + 1] ?? '').trim().split(/\s+/);
      const at = hdr.indexOf('mtu');
      if (at >= 0 && vals[at] !== undefined) mtu = Number(vals[at]);
    }
  }
  const routeTo = kv.get('route to');
  if (!routeTo) return undefined;
  const g: RouteGet = {
    routeTo,
    destination: kv.get('destination') ?? '',
    flags: (kv.get('flags') ?? '').replace(/[<>]/g, '').split(',').filter(Boolean),
  };
  const mask = kv.get('mask');
  if (mask) g.mask = mask;
  const gw = kv.get('gateway');
  if (gw) g.gateway = gw;
  const ifn = kv.get('interface');
  if (ifn) g.interface = ifn;
  if (mtu !== undefined) g.mtu = mtu;
  return g;
}

export interface RouteMonitorMessage {
  size: number;
  /** ctime text as printed */
  time: string;
  type: string;
  pid?: number;
  seq?: number;
  errno?: number;
  ifscope?: number;
  flags: string[];
  /** RTA names in order, lower-case (`dst`, `gateway`, `netmask`, `ifp`, `ifa`, …) → printed value ('' when empty) */
  addrs: Record<string, string>;
}

/**
 * `route -v monitor` text (route.c print_rtmsg/pmsg_addrs): a blank line, `got message of
 * size N on <ctime>`, `RTM_X: <desc>: len N, pid: P, seq S, errno E, [ifscope I, ]flags:<…>`,
 * `locks: … inits: …`, `sockaddrs: <DST,…>`, then one line of addresses with a leading
 * space (an absent value prints as an empty field). For diagnostics; the daemon reads the
 * binary messages (rtmsg.ts).
 */
export function parseRouteMonitor(text: string): RouteMonitorMessage[] {
  const out: RouteMonitorMessage[] = [];
  const lines = text.split('\n');
  let cur: RouteMonitorMessage | undefined;
  let names: string[] | undefined;
  for (const l of lines) {
    const got = /^got message of size (\d+) on (.+)$/.exec(l);
    if (got) {
      cur = { size: Number(got[1]), time: got[2]!.trim(), type: '', flags: [], addrs: {} };
      names = undefined;
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const head = /^(RTM_[A-Z0-9]+): [^:]+: len \d+, (.*)$/.exec(l);
    if (head) {
      cur.type = head[1]!;
      const rest = head[2]!;
      const num = (k: string) => {
        const m = new RegExp(`${k}:? (-?\\d+)`).exec(rest);
        return m ? Number(m[1]) : undefined;
      };
      const pid = num('pid');
      if (pid !== undefined) cur.pid = pid;
      const seq = num('seq');
      if (seq !== undefined) cur.seq = seq;
      const errno = num('errno');
      if (errno !== undefined) cur.errno = errno;
      const ifscope = num('ifscope');
      if (ifscope !== undefined) cur.ifscope = ifscope;
      const f = /flags:<([^>]*)>/.exec(rest);
      cur.flags = f?.[1] ? f[1].split(',') : [];
      continue;
    }
    const sa = /^sockaddrs: <([^>]*)>/.exec(l);
    if (sa) {
      names = sa[1]!.split(',').map((n) => n.toLowerCase());
      continue;
    }
    if (names && l.startsWith(' ')) {
      const vals = l.slice(1).split(' ');
      names.forEach((n, i) => (cur!.addrs[n] = vals[i] ?? ''));
      names = undefined;
    }
  }
  return out;
}
