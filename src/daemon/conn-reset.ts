/**
 * Connections through a tunnel that went down are reset (docs/architecture.md "Tunnel health",
 * "Connections through a dead tunnel"). The firewall gives a connection's packets its conntrack
 * mark (`ct mark` → `meta mark`, render.ts "connection"), so a connection opened through a
 * tunnel keeps going into it after the rules took their fallback: the app would hang until its
 * own timeout. After the run that applied the fallback, every local TCP socket whose
 * connection carries the tunnel's mark in conntrack (the original tuple: the app's own
 * addresses and ports, before a proxy tunnel's redirect) is destroyed (SOCK_DESTROY: the app
 * sees ECONNABORTED, the peer a RST) and reconnects, taking the fallback. UDP, forwarded
 * flows and sockets of other processes' namespaces are not touched.
 */
import type { CtEntry } from '../native/conntrack.js';
import type { InetSocket } from '../native/sockdiag.js';

export interface TunnelMark {
  tunnel: string;
  mark: number;
}

const key = (src: string, sport: number, dst: string, dport: number) =>
  `${src}|${sport}|${dst}|${dport}`;
const unmapped = (a: string) => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);

/** the tunnel each TCP flow (by original tuple) runs through, from conntrack marks (pure) */
export function flowsOf(
  entries: readonly CtEntry[],
  tunnels: readonly TunnelMark[],
  mask: number,
): Map<string, string> {
  const byMark = new Map(tunnels.map((t) => [t.mark >>> 0, t.tunnel]));
  const out = new Map<string, string>();
  for (const e of entries) {
    if (e.proto !== 6 || e.mark === undefined) continue;
    const t = byMark.get((e.mark & mask) >>> 0);
    if (t !== undefined) out.set(key(e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport), t);
  }
  return out;
}

/** the tunnel a local socket's connection runs through (undefined: none of these) */
export function tunnelOfSocket(
  s: InetSocket,
  flows: ReadonlyMap<string, string>,
): string | undefined {
  return flows.get(key(unmapped(s.src), s.sport, unmapped(s.dst), s.dport));
}

/**
 * The tunnels whose connections a run's fallbacks reset: down in this run, not down in the
 * last one applied, and the target of an enabled rule whose fallback moves its connections
 * somewhere (`allow-direct`, `failover`). A tunnel only `block`/`drop` rules and the default
 * route into keeps its connections: a reconnect could only meet the block, and a short outage
 * (a roam, a rekey that took a while) would otherwise cost every connection. Pure.
 */
export function resetCandidates(
  marks: readonly TunnelMark[],
  down: ReadonlySet<string>,
  appliedDown: ReadonlySet<string>,
  rules: readonly {
    target: string;
    fallback?: string | undefined;
    enabled?: boolean | undefined;
  }[],
): TunnelMark[] {
  const movable = new Set(
    rules
      .filter(
        (r) => r.enabled !== false && (r.fallback === 'allow-direct' || r.fallback === 'failover'),
      )
      .map((r) => r.target),
  );
  return marks.filter(
    (m) => down.has(m.tunnel) && !appliedDown.has(m.tunnel) && movable.has(m.tunnel),
  );
}

export interface ResetResult {
  /** per tunnel: sockets destroyed */
  reset: Map<string, number>;
  failed: number;
}

/** Destroy the local TCP sockets whose connections run through `tunnels` (Linux, root). */
export async function resetTunnelConnections(
  tunnels: readonly TunnelMark[],
  mask: number,
  netns?: string,
): Promise<ResetResult> {
  const [{ openConntrack, dumpConntrack }, { destroyTcpSockets }] = await Promise.all([
    import('../native/conntrack.js'),
    import('../native/sock-destroy.js'),
  ]);
  const ct = openConntrack(netns);
  let entries: CtEntry[];
  try {
    entries = dumpConntrack(ct);
  } finally {
    ct.close();
  }
  const flows = flowsOf(entries, tunnels, mask);
  const reset = new Map<string, number>();
  if (flows.size === 0) return { reset, failed: 0 };
  const r = destroyTcpSockets((s) => tunnelOfSocket(s, flows) !== undefined, netns);
  for (const s of r.destroyed) {
    const t = tunnelOfSocket(s, flows)!;
    reset.set(t, (reset.get(t) ?? 0) + 1);
  }
  // ENOENT: the socket closed between the dump and the destroy
  return { reset, failed: r.failed.filter((f) => f.errno !== 2).length };
}
