/**
 * The macOS network wake source: a PF_ROUTE socket (native/darwin/route-socket.ts) says that
 * routes, addresses or interfaces changed, and a DNS watcher says when the resolver
 * configuration or the primary interface did. Like the Linux watch (monitor/linux.ts) it only
 * says "something changed"; the daemon's loop debounces wakes (daemon/loop.ts) and
 * re-observes. NEVER RUN ON A MAC: tested on captured and synthesised routing messages and
 * captured scutil output (docs/platform-macos.md).
 *
 * Which routing messages wake (wakingRouteMessage):
 * - RTM_IFINFO/IFINFO2 (a utun gone, Wi-Fi down) always, as Linux counts link events;
 * - RTM_ADD/DELETE/CHANGE and RTM_NEWADDR/DELADDR outside the echo window only — except a
 *   change of the default route itself (0.0.0.0/0, ::/0), which wakes inside it too: awg
 *   never writes one on macOS (realiseDarwin splits 0/0 into 0/1 + 128/1), so it is always
 *   someone else's (DHCP, another interface taking over) and must not be lost to our window;
 * - never: messages our own process wrote to a routing socket (rtm_pid = our pid: RTM_GET
 *   lookups, native route writes), RTM_GET answers, misses, redirects, multicast membership.
 *   awg changes routes through `route(8)`, whose rtm_pid is that child's, so those echoes
 *   are told apart by time instead: while a run is in flight and shortly after (`isEcho`),
 *   route and address messages are ignored — the same window Linux uses for its own events.
 *   Outside it everything counts (someone deleting our route is drift).
 * - an unreadable message, bytes left over after the last whole message, or an empty read
 *   (the route socket's way to say messages were lost, e.g. ENOBUFS): a wake (full
 *   re-observation), as Linux does for lost events.
 *
 * The DNS watcher: a default-route message (dst 0.0.0.0/0 or ::/0), an interface message or
 * an unreadable one schedules a re-read of `scutil --dns` and `scutil --nwi`, after
 * `dnsDebounceMs` without another trigger (a network switch is a burst of messages: one
 * read). It wakes only when the parsed resolvers (dnsFingerprint: what a lookup would use,
 * not how scutil printed it) or the primary interface per family changed since the last
 * read. Inside the echo window (at the trigger or at the read) the new answer becomes the
 * baseline without a wake: the DNS driver's own `scutil` writes show up there, and a real
 * network switch in that window also brings an RTM_IFINFO, which wakes anyway.
 */
import {
  decodeRouteMessage,
  splitRouteMessages,
  type RouteMessage,
} from '../../platform/darwin/rtmsg.js';
import { parseScutilDns, parseScutilNwi } from '../../platform/darwin/scutil.js';
import type { Exec } from '../../util/exec.js';
import type { NetworkWatch, NetworkWatchOptions } from './types.js';

/** what the route socket delivers (the shape of native/darwin/route-socket.ts's RouteSocket) */
export interface RouteMessageSource {
  onMessage(cb: (msg: Uint8Array) => void): void;
  close(): void;
}

const ROUTE = new Set(['RTM_ADD', 'RTM_DELETE', 'RTM_CHANGE']);
const ADDR = new Set(['RTM_NEWADDR', 'RTM_DELADDR']);
const LINK = new Set(['RTM_IFINFO', 'RTM_IFINFO2']);
const RTF_HOST = 0x4;

function describe(m: RouteMessage): string {
  const dst = m.sockaddrs.dst;
  const where =
    dst && 'address' in dst
      ? ` ${dst.address}${m.prefixlen !== undefined ? `/${m.prefixlen}` : ''}`
      : '';
  const ifa = m.sockaddrs.ifa;
  const addr = ifa && 'address' in ifa ? ` ${ifa.address}` : '';
  return `${m.typeName}${ROUTE.has(m.typeName) ? where : ADDR.has(m.typeName) ? addr : ''} (if #${m.index})`;
}

/** a route message about the default route of either family */
export function isDefaultRoute(m: RouteMessage): boolean {
  if (!ROUTE.has(m.typeName)) return false;
  const dst = m.sockaddrs.dst;
  if (!dst || (dst.family !== 'inet' && dst.family !== 'inet6')) return false;
  if (dst.address !== '0.0.0.0' && dst.address !== '::') return false;
  return m.prefixlen === 0 || (m.prefixlen === undefined && (m.flags & RTF_HOST) === 0);
}

export interface RouteReadVerdict {
  /** a description of the first message that wakes the loop; undefined when none does */
  wake?: string;
  /** the read may have changed the primary service: re-read the DNS configuration */
  recheckDns: boolean;
}

/** One read from the routing socket (back-to-back messages) → wake and DNS re-check. Pure. */
export function classifyRouteRead(
  buf: Uint8Array,
  o: { echo: boolean; pid?: number },
): RouteReadVerdict {
  const v: RouteReadVerdict = { recheckDns: false };
  if (buf.length === 0)
    return { wake: 'routing messages lost: full re-observation', recheckDns: true };
  const msgs = splitRouteMessages(buf);
  if (msgs.reduce((n, m) => n + m.length, 0) < buf.length) {
    v.wake = 'an unreadable routing message: full re-observation';
    v.recheckDns = true;
  }
  for (const raw of msgs) {
    let m: RouteMessage;
    try {
      m = decodeRouteMessage(raw);
    } catch {
      v.wake ??= 'an unreadable routing message: full re-observation';
      v.recheckDns = true;
      continue;
    }
    if (o.pid !== undefined && m.pid === o.pid) continue;
    if (LINK.has(m.typeName)) {
      v.wake ??= describe(m);
      v.recheckDns = true;
      continue;
    }
    const def = isDefaultRoute(m);
    if (def) v.recheckDns = true;
    if ((ROUTE.has(m.typeName) || ADDR.has(m.typeName)) && (!o.echo || def)) v.wake ??= describe(m);
  }
  return v;
}

/** The first message of a read that wakes the loop, described; undefined when none does. Pure. */
export function wakingRouteMessage(
  buf: Uint8Array,
  o: { echo: boolean; pid?: number },
): string | undefined {
  return classifyRouteRead(buf, o).wake;
}

/** The resolver configuration as compared: what a lookup would use, not how scutil printed it. */
export function dnsFingerprint(scutilDns: string): string {
  return JSON.stringify(
    parseScutilDns(scutilDns).map((r) => ({
      s: r.section,
      d: r.domain ?? '',
      n: r.nameservers,
      q: r.searchDomains,
      i: r.ifName ?? r.ifIndex ?? '',
      o: r.order ?? 0,
    })),
  );
}

/** The primary interface per family (`scutil --nwi` lists each family's interfaces primary first). */
export function primaryInterfaces(scutilNwi: string): { v4?: string; v6?: string } {
  const n = parseScutilNwi(scutilNwi);
  return {
    ...(n.ipv4[0] ? { v4: n.ipv4[0].name } : {}),
    ...(n.ipv6[0] ? { v6: n.ipv6[0].name } : {}),
  };
}

export interface DarwinWatchDeps {
  source: RouteMessageSource;
  exec: Pick<Exec, 'read'>;
  /** messages with this rtm_pid are our own (default: this process) */
  pid?: number;
  /** quiet time after the last trigger before scutil is read again (default 300 ms) */
  dnsDebounceMs?: number;
}

export const DNS_DEBOUNCE_MS = 300;

interface DnsView {
  resolvers: string;
  primary: { v4?: string; v6?: string };
}

function dnsChange(a: DnsView, b: DnsView): string | undefined {
  if (a.primary.v4 !== b.primary.v4 || a.primary.v6 !== b.primary.v6)
    return `primary interface changed (scutil --nwi): IPv4 ${a.primary.v4 ?? 'none'} → ${b.primary.v4 ?? 'none'}, IPv6 ${a.primary.v6 ?? 'none'} → ${b.primary.v6 ?? 'none'}`;
  if (a.resolvers !== b.resolvers) return 'DNS resolver configuration changed (scutil --dns)';
  return undefined;
}

export async function watchDarwinNetwork(
  o: NetworkWatchOptions,
  deps?: DarwinWatchDeps,
): Promise<NetworkWatch> {
  const d: DarwinWatchDeps = deps ?? {
    source: (await import('../../native/darwin/route-socket.js')).openRouteSocket(),
    exec: new (await import('../../util/exec.js')).ProcessExec(
      (await import('../../util/reporter.js')).silentReporter,
    ),
  };
  const pid = d.pid ?? process.pid;
  const debounceMs = d.dnsDebounceMs ?? DNS_DEBOUNCE_MS;
  const readDns = async (): Promise<DnsView | undefined> => {
    try {
      const [dns, nwi] = await Promise.all([
        d.exec.read('scutil', ['--dns'], { allowFail: true }),
        d.exec.read('scutil', ['--nwi'], { allowFail: true }),
      ]);
      if (dns.code !== 0) return undefined;
      return {
        resolvers: dnsFingerprint(dns.stdout),
        primary: nwi.code === 0 ? primaryInterfaces(nwi.stdout) : {},
      };
    } catch {
      return undefined;
    }
  };
  let last = await readDns();
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let echoSeen = false;
  let reading: Promise<void> | undefined;
  let again = false;

  const check = (): void => {
    if (reading) {
      again = true;
      return;
    }
    reading = (async () => {
      do {
        again = false;
        const echo = echoSeen || o.isEcho();
        echoSeen = false;
        const now = await readDns();
        if (closed) return;
        if (now === undefined) continue;
        const why = last !== undefined ? dnsChange(last, now) : undefined;
        last = now;
        if (why && !echo && !o.isEcho()) o.onChange(why);
      } while (again && !closed);
    })().finally(() => (reading = undefined));
  };

  const schedule = (): void => {
    if (o.isEcho()) echoSeen = true;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (!closed) check();
    }, debounceMs);
  };

  d.source.onMessage((msg) => {
    if (closed) return;
    const v = classifyRouteRead(msg, { echo: o.isEcho(), pid });
    if (v.wake) o.onChange(v.wake);
    if (v.recheckDns) schedule();
  });
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      d.source.close();
      await reading;
    },
  };
}
