/**
 * The parts of the daemon's status that are computed, not stored: each tunnel's line (engine
 * counters, handshakes, health) and the per-rule egress counters read from the firewall.
 */
import type { Config } from '../config/schema.js';
import { compileRules } from '../model/match.js';
import type { FirewallPolicy } from '../model/policy.js';
import type { AnyResource } from '../model/resources.js';
import type { EngineStats } from '../resources/engine/inproc.js';
import { zeroRuleTraffic } from '../resources/engine/stats.js';
import type { ProxyTunnelStatsRow } from '../resources/engine/proxy-host.js';
import { readRuleCounters } from '../resources/firewall/counters.js';
import type { Exec } from '../util/exec.js';
import type { RuleCounter, StatusResponse, TunnelStatus, WakeReason } from './core.js';
import { isDown, type HealthMonitor } from './tunnel-health.js';

/** One status line per engine resource of the desired state. */
export function tunnelStatuses(
  resources: readonly AnyResource[],
  engines: readonly EngineStats[],
  proxies: readonly ProxyTunnelStatsRow[],
  health: HealthMonitor,
  nowMs = Date.now(),
): TunnelStatus[] {
  const stats = new Map(engines.map((s) => [s.tunnel, s]));
  const proxyRows = new Map(proxies.map((s) => [s.tunnel, s]));
  const age = (ms: number) => (ms > 0 ? Math.max(0, Math.round((nowMs - ms) / 1000)) : undefined);
  const out: TunnelStatus[] = [];
  for (const r of resources) {
    if (r.kind !== 'engine') continue;
    const name = r.spec.tunnel;
    const state = health.stateOf(name);
    if (!r.spec.link) {
      const px = proxyRows.get(name);
      const error = health.errorOf(name) ?? px?.error;
      out.push({
        name,
        type: r.spec.type,
        health: state,
        ...(error && isDown(state) ? { error } : {}),
        up: state === 'up',
        rxBytes: px?.bytes.down ?? 0,
        txBytes: px?.bytes.up ?? 0,
        peers: [],
        connectionsActive: px?.connections.active ?? 0,
        connectionsTotal: px?.connections.total ?? 0,
        dialErrors: Object.values(px?.dialErrors ?? {}).reduce((a, n) => a + (n ?? 0), 0),
      });
      continue;
    }
    const s = stats.get(name);
    const peers = (s?.peers ?? []).map((p) => ({
      publicKey: p.publicKey,
      ...(p.endpoint ? { endpoint: p.endpoint } : {}),
      lastHandshakeAgeSec: age(p.lastHandshakeMs),
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    }));
    const newest = Math.max(0, ...(s?.peers ?? []).map((p) => p.lastHandshakeMs));
    const error = health.errorOf(name);
    out.push({
      name,
      type: r.spec.type,
      link: r.spec.link,
      health: state,
      ...(error ? { error } : {}),
      up: Boolean(s?.up) && !isDown(state),
      lastHandshakeAgeSec: age(newest),
      rxBytes: peers.reduce((a, p) => a + p.rxBytes, 0),
      txBytes: peers.reduce((a, p) => a + p.txBytes, 0),
      peers,
    });
  }
  return out;
}

/** the user's rules of the policy, each with its target, its route now and what `count` says of it */
function ruleRows(
  config: Config,
  policy: FirewallPolicy,
  count: (
    name: string,
  ) => Pick<RuleCounter, 'txPackets' | 'txBytes' | 'rxPackets' | 'rxBytes' | 'connections'>,
): RuleCounter[] {
  const matcher = compileRules(config.rules);
  return policy.apps
    .filter((a) => !a.name.startsWith('_'))
    .map((a) => {
      const r = matcher.byName(a.name);
      const route =
        a.action.type === 'drop'
          ? 'blocked'
          : a.action.type === 'direct'
            ? 'direct'
            : (r?.target ?? '');
      return { name: a.name, target: r?.target ?? '', route, ...count(a.name) };
    });
}

/** per-rule counters (egress `app/<rule>`, ingress `app-in/<rule>`) from our nft table; nothing when it cannot be read */
export async function ruleCounters(
  exec: Exec,
  nftTable: string,
  config: Config,
  policy: FirewallPolicy | undefined,
): Promise<Pick<StatusResponse, 'rules'>> {
  if (!policy || config.rules.length === 0) return {};
  try {
    const counters = await readRuleCounters(exec, nftTable);
    return {
      rules: ruleRows(config, policy, (name) => {
        const tx = counters.get(`app/${name}`) ?? { packets: 0, bytes: 0 };
        const rx = counters.get(`app-in/${name}`) ?? { packets: 0, bytes: 0 };
        return {
          txPackets: tx.packets,
          txBytes: tx.bytes,
          rxPackets: rx.packets,
          rxBytes: rx.bytes,
        };
      }),
    };
  } catch {
    return {};
  }
}

/**
 * macOS: per-rule counters from the flow router (FlowRouterHost.ruleTraffic): the rule's TCP
 * connections through the router and their payload bytes. Packets are not counted (0): the
 * router relays streams, and PF has no counters of ours per rule.
 */
export function flowRuleCounters(
  config: Config,
  policy: FirewallPolicy | undefined,
  traffic: ReadonlyMap<string, { connections: number; txBytes: number; rxBytes: number }>,
): Pick<StatusResponse, 'rules'> {
  if (!policy || config.rules.length === 0) return {};
  return {
    rules: ruleRows(config, policy, (name) => {
      const t = traffic.get(name) ?? zeroRuleTraffic();
      return {
        txPackets: 0,
        txBytes: t.txBytes,
        rxPackets: 0,
        rxBytes: t.rxBytes,
        connections: t.connections,
      };
    }),
  };
}

/**
 * A run that only looks again (the drift timer, a network or engine event) leaves `state` at
 * the last run's verdict while it runs: `awg status` (exit 2 unless converged) must not flap
 * each time the laptop's network moves or the timer fires. A run for a new desired state (start,
 * a config change, an API apply, a confirm timeout) or a retry after a failure is `reconciling`.
 */
const RECHECK = new Set<WakeReason>(['drift-timer', 'network', 'engine']);

/** What `state` says, from the last run and the one under way (its wake reason). */
export function daemonState(o: {
  running: WakeReason | undefined;
  configured: boolean;
  lastOutcome: string | undefined;
}): StatusResponse['state'] {
  if (o.running && !(RECHECK.has(o.running) && o.lastOutcome !== undefined)) return 'reconciling';
  if (!o.configured) return 'down';
  switch (o.lastOutcome) {
    case undefined:
      return 'reconciling';
    case 'failed-closed':
      return 'failed-closed';
    case 'converged':
    case 'unchanged':
      return 'converged';
    case 'rolled-back':
      return 'drifted';
    default:
      return 'failed';
  }
}
