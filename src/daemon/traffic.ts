/**
 * Per-tunnel traffic from the kernel's link counters, and the event stream's `traffic` event.
 *
 * Where each number comes from (docs/platform-linux.md "Traffic counters"):
 * - a rule: the nft counters of its cgroup (`app/<rule>` egress, `app-in/<rule>` ingress; status.ts);
 *   a destination rule's sets: their lines' counters and entries (rule-sets.ts);
 * - a TUN tunnel: rx/tx bytes as the engine counts them (encrypted datagrams) and the TUN link's
 *   own counters (IFLA_STATS64: inner IP packets, read here by one rtnetlink dump);
 * - a proxy tunnel: the engine's byte counts of the relayed streams (no packets: it relays TCP).
 */
import { dumpLinks, NetlinkSocket } from '../native/netlink.js';
import type { AnyResource } from '../model/resources.js';
import { readTableCounters, type ContentCount } from '../resources/firewall/counters.js';
import type { Exec } from '../util/exec.js';
import type {
  DaemonEvent,
  LinkTraffic,
  RuleCounter,
  StatusResponse,
  TunnelStatus,
} from './core.js';
import { fromRead } from './rule-sets.js';

/** how often the daemon looks for moved counters while someone subscribes (Watch clients; `--metrics` subscribes too, so with it the poll always runs: one nft read and one rtnetlink dump per period) */
export const TRAFFIC_EVENT_MS = 10_000;

/** link name → its counters, for the links asked about; empty when rtnetlink cannot be read */
export function readLinkTraffic(names: readonly string[]): Map<string, LinkTraffic> {
  const out = new Map<string, LinkTraffic>();
  if (names.length === 0) return out;
  const want = new Set(names);
  let sock: NetlinkSocket | undefined;
  try {
    sock = NetlinkSocket.open();
    for (const l of dumpLinks(sock))
      if (l.ifname && want.has(l.ifname) && l.stats) out.set(l.ifname, { ...l.stats });
  } catch {
    return new Map();
  } finally {
    sock?.close();
  }
  return out;
}

/** the TUN tunnels' status lines with their link's counters */
export function withLinkTraffic(
  tunnels: TunnelStatus[],
  links: ReadonlyMap<string, LinkTraffic>,
): TunnelStatus[] {
  return tunnels.map((t) => {
    const l = t.link ? links.get(t.link) : undefined;
    return l ? { ...t, linkTraffic: l } : t;
  });
}

/**
 * The `traffic` event for a status, or undefined when no counter moved since `prevKey` (the
 * returned key). One event carries every rule and tunnel of the config, so its size is bounded
 * by the config, and the daemon sends at most one per TRAFFIC_EVENT_MS.
 */
export function trafficEvent(
  s: Pick<StatusResponse, 'rules' | 'tunnels'>,
  prevKey: string,
  at: string,
): { key: string; event?: Extract<DaemonEvent, { type: 'traffic' }> } {
  const rules = (s.rules ?? []).map((r) => ({ ...r }));
  const tunnels = s.tunnels.map((t) => ({
    tunnel: t.name,
    rxBytes: t.rxBytes,
    txBytes: t.txBytes,
    ...(t.linkTraffic ? { link: { ...t.linkTraffic } } : {}),
  }));
  const key = JSON.stringify([rules, tunnels]);
  if (key === prevKey || (rules.length === 0 && tunnels.length === 0)) return { key };
  return { key, event: { type: 'traffic', at, rules, tunnels } };
}

/** what direct mode (`awg status` without a daemon) can count: no config is loaded, so rules are named by their counters */
export interface DirectTraffic {
  rules: ({
    name: string;
    txPackets: number;
    txBytes: number;
    rxPackets: number;
    rxBytes: number;
  } & Pick<RuleCounter, 'sets' | 'learned'>)[];
  tunnels: ({ tunnel: string; link: string } & LinkTraffic)[];
}

/** the rules' counters of our table and the TUN links of the applied engines */
export async function readDirectTraffic(
  exec: Pick<Exec, 'read'>,
  table: string,
  applied: readonly AnyResource[],
  contents?: ContentCount,
): Promise<DirectTraffic> {
  const { rules: counters, sets } = await readTableCounters(exec, table, { contents });
  const names = [
    ...new Set(
      [...counters.keys()].flatMap((k) =>
        /^app(-in)?\/[^_]/.test(k) ? [k.slice(k.indexOf('/') + 1)] : [],
      ),
    ),
  ].sort();
  const zero = { packets: 0, bytes: 0 };
  const rules = names.map((name) => {
    const tx = counters.get(`app/${name}`) ?? zero;
    const rx = counters.get(`app-in/${name}`) ?? zero;
    return {
      name,
      txPackets: tx.packets,
      txBytes: tx.bytes,
      rxPackets: rx.packets,
      rxBytes: rx.bytes,
      ...fromRead(sets.get(name) ?? []),
    };
  });
  const engines = applied.flatMap((r) =>
    r.kind === 'engine' && r.spec.link ? [{ tunnel: r.spec.tunnel, link: r.spec.link }] : [],
  );
  const links = readLinkTraffic(engines.map((e) => e.link));
  return {
    rules,
    tunnels: engines.flatMap((e) => {
      const l = links.get(e.link);
      return l ? [{ ...e, ...l }] : [];
    }),
  };
}
