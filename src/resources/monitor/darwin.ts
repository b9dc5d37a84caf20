/**
 * The macOS network wake source: a PF_ROUTE socket (native/darwin/route-socket.ts) says that
 * routes, addresses or interfaces changed, and a DNS watcher says when the resolver
 * configuration did (`scutil --dns`, compared parsed, so a reordering of output that means
 * the same is no wake). Like the Linux watch it only says "something changed"; the daemon's
 * loop re-observes. NEVER RUN ON A MAC: tested on captured and synthesised routing messages
 * and captured scutil output (docs/platform-macos.md).
 *
 * Our own changes: awg changes routes through `route(8)`, so rtm_pid is that child's, not
 * ours, and cannot tell our echoes apart. While a run is in flight and shortly after
 * (`isEcho`), route and address messages are ignored; interface messages (RTM_IFINFO: a
 * utun gone, Wi-Fi down) always count. Outside that window everything counts (someone
 * deleting our route is drift). RTM_GET answers, cache misses, redirects and multicast
 * membership messages never wake.
 *
 * The DNS watcher re-reads `scutil --dns` after every batch of routing messages (a new
 * primary service comes with a default-route change) and wakes when the parsed resolvers
 * differ from the last read, echo window or not: macOS rewrites them when the primary
 * service changes, which is what the DNS driver must follow.
 */
import { decodeRouteMessage, splitRouteMessages, type RouteMessage } from '../../platform/darwin/rtmsg.js';
import { parseScutilDns } from '../../platform/darwin/scutil.js';
import type { Exec } from '../../util/exec.js';
import type { NetworkWatch, NetworkWatchOptions } from './types.js';

/** what the route socket delivers (native/darwin/route-socket.ts) */
export interface RouteMessageSource {
  onMessage(cb: (msg: Uint8Array) => void): void;
  close(): void;
}

const ROUTE = new Set(['RTM_ADD', 'RTM_DELETE', 'RTM_CHANGE']);
const ADDR = new Set(['RTM_NEWADDR', 'RTM_DELADDR']);
const LINK = new Set(['RTM_IFINFO', 'RTM_IFINFO2']);

function describe(m: RouteMessage): string {
  const dst = m.sockaddrs.dst;
  const where = dst && 'address' in dst ? ` ${dst.address}${m.prefixlen !== undefined ? `/${m.prefixlen}` : ''}` : '';
  const ifa = m.sockaddrs.ifa;
  const addr = ifa && 'address' in ifa ? ` ${ifa.address}` : '';
  return `${m.typeName}${ROUTE.has(m.typeName) ? where : ADDR.has(m.typeName) ? addr : ''} (if #${m.index})`;
}

/** The first message of a read that wakes the loop, described; undefined when none does. Pure. */
export function wakingRouteMessage(buf: Uint8Array, o: { echo: boolean }): string | undefined {
  for (const raw of splitRouteMessages(buf)) {
    let m: RouteMessage;
    try {
      m = decodeRouteMessage(raw);
    } catch {
      return 'an unreadable routing message: full re-observation';
    }
    if (LINK.has(m.typeName)) return describe(m);
    if ((ROUTE.has(m.typeName) || ADDR.has(m.typeName)) && !o.echo) return describe(m);
  }
  return undefined;
}

/** The resolver configuration as compared: what a lookup would use, not how scutil printed it. */
export function dnsFingerprint(scutilDns: string): string {
  return JSON.stringify(
    parseScutilDns(scutilDns).map((r) => ({ s: r.section, d: r.domain ?? '', n: r.nameservers, q: r.searchDomains, i: r.ifName ?? r.ifIndex ?? '', o: r.order ?? 0 })),
  );
}

export interface DarwinWatchDeps {
  source: RouteMessageSource;
  exec: Pick<Exec, 'read'>;
}

export async function watchDarwinNetwork(o: NetworkWatchOptions, deps?: DarwinWatchDeps): Promise<NetworkWatch> {
  const d: DarwinWatchDeps = deps ?? {
    source: (await import('../../native/darwin/route-socket.js')).openRouteSocket(),
    exec: new (await import('../../util/exec.js')).ProcessExec((await import('../../util/reporter.js')).silentReporter),
  };
  const readDns = async () => dnsFingerprint((await d.exec.read('scutil', ['--dns'], { allowFail: true })).stdout);
  let lastDns = await readDns().catch(() => undefined);
  let checking: Promise<void> | undefined;
  let again = false;
  let closed = false;
  const checkDns = () => {
    if (checking) {
      again = true;
      return;
    }
    checking = (async () => {
      do {
        again = false;
        const now = await readDns().catch(() => undefined);
        if (closed) return;
        if (now !== undefined && lastDns !== undefined && now !== lastDns) o.onChange('DNS resolver configuration changed (scutil --dns)');
        if (now !== undefined) lastDns = now;
      } while (again && !closed);
    })().finally(() => (checking = undefined));
  };
  d.source.onMessage((msg) => {
    const w = wakingRouteMessage(msg, { echo: o.isEcho() });
    if (w) o.onChange(w);
    checkDns();
  });
  return {
    async close() {
      closed = true;
      d.source.close();
      await checking;
    },
  };
}
