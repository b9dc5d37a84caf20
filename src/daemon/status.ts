/**
 * The daemon's status: assembled (assembleStatus) from what its parts hold — the config it
 * follows, the last run, the engines, tunnel health, placement — and from what is computed,
 * not stored: each tunnel's line (engine counters, handshakes, health, link counters) and the
 * per-rule counters read from the firewall (or, on macOS, the flow router).
 */
import type { Config } from '../config/schema.js';
import { compileRules } from '../model/match.js';
import type { FirewallPolicy } from '../model/policy.js';
import { configConditions } from '../model/unrouted.js';
import type { AnyResource, ObservedState } from '../model/resources.js';
import type { Prepared } from '../pipeline/prepare.js';
import type { EngineStats, InprocEngineHost } from '../resources/engine/inproc.js';
import { zeroRuleTraffic, type RuleTraffic } from '../resources/engine/stats.js';
import type { ProxyTunnelStatsRow } from '../resources/engine/proxy-host.js';
import { readTableCounters } from '../resources/firewall/counters.js';
import type { Exec } from '../util/exec.js';
import type {
  ConfigState,
  LinkTraffic,
  PlacementStatus,
  RuleCounter,
  StatusResponse,
  TunnelStatus,
  WakeReason,
} from './core.js';
import { destinationCounters } from './rule-sets.js';
import { readLinkTraffic, withLinkTraffic } from './traffic.js';
import type { Rating } from './health-rating.js';
import { isDown, type HealthMonitor } from './tunnel-health.js';

/** What a status is assembled from: the daemon's parts as they stand when it is asked. */
export interface StatusParts {
  /** the config followed (config follower); undefined before one is known */
  config: ConfigState | undefined;
  configPath: string | undefined;
  /** a config is followed or applied: without one the daemon is `down` */
  configured: boolean;
  /** the wake reason of the run under way (a teardown: 'api'); undefined when none runs */
  running: WakeReason | undefined;
  lastRun: NonNullable<StatusResponse['lastReconcile']> | undefined;
  /** what the last run (or teardown) observed */
  observed: ObservedState | undefined;
  /** the desired state followed: the last good config */
  prepared: Pick<Prepared, 'config' | 'model' | 'desired' | 'claims' | 'facts'> | undefined;
  engines: Pick<InprocEngineHost, 'stats' | 'proxyStats'>;
  health: HealthMonitor;
  confirmDeadline: string | undefined;
  placement: PlacementStatus;
  /**
   * macOS: the flow router's per-rule traffic (the rules are counted there); absent: the rules'
   * firewall counters are read through `exec`
   */
  flowTraffic?: (() => ReadonlyMap<string, RuleTraffic>) | undefined;
  exec: Exec;
  /** the DNS learning stub's counters, while it runs */
  dnsStub?: StatusResponse['dnsStub'] | undefined;
  /**
   * rule name → the names its learned addresses came from (the DNS stub's book, when it runs):
   * a rule's `learnedNames`
   */
  learnedNames?: (() => ReadonlyMap<string, number>) | undefined;
  /** awg's own releases, when the update watch checks them (update-watch.ts) */
  update?: StatusResponse['update'] | undefined;
  /** the TUN links' kernel counters (default: one rtnetlink dump, traffic.ts) */
  links?: (names: readonly string[]) => ReadonlyMap<string, LinkTraffic>;
}

/** The status response from the daemon's parts (DaemonCore.status). */
export async function assembleStatus(s: StatusParts): Promise<StatusResponse> {
  const lr = s.lastRun;
  const p = s.prepared;
  const resources = p?.desired.resources ?? [];
  return {
    ...(s.config ? { config: s.config } : {}),
    state: daemonState({
      running: s.running,
      configured: s.configured,
      lastOutcome: lr?.outcome,
    }),
    ...(s.configPath ? { configPath: s.configPath } : {}),
    ...(lr
      ? {
          lastReconcile: {
            at: lr.at,
            outcome: lr.outcome,
            durationMs: lr.durationMs,
            ...(lr.error ? { error: lr.error } : {}),
          },
        }
      : {}),
    objects: (s.observed?.resources ?? []).map((r) => ({ kind: r.kind, id: r.id })),
    tunnels: withLinkTraffic(
      tunnelStatuses(resources, s.engines.stats(), s.engines.proxyStats(), s.health),
      (s.links ?? readLinkTraffic)(
        resources.flatMap((r) => (r.kind === 'engine' && r.spec.link ? [r.spec.link] : [])),
      ),
    ),
    ...(s.confirmDeadline ? { confirmDeadline: s.confirmDeadline } : {}),
    placement: s.placement,
    ...(p
      ? s.flowTraffic
        ? flowRuleCounters(p.config, p.model.policy, s.flowTraffic())
        : withLearnedNames(
            await ruleCounters(s.exec, p.claims.nftTable, p.config, p.model.policy),
            s.learnedNames?.(),
          )
      : {}),
    ...(s.dnsStub ? { dnsStub: s.dnsStub } : {}),
    ...hostConditionsOf(p),
    ...(s.update ? { update: s.update } : {}),
  };
}

/** what the routing the last run probed keeps from working (model/unrouted.ts) */
function hostConditionsOf(p: StatusParts['prepared']): Pick<StatusResponse, 'hostConditions'> {
  const found = p ? configConditions(p.config, p.facts) : [];
  return found.length ? { hostConditions: found } : {};
}

/** the rating's reason (while down), since when, and when last up, for a tunnel's line */
function ratingFields(r: Rating | undefined): Pick<TunnelStatus, 'reason' | 'since' | 'lastUp'> {
  if (!r) return {};
  return {
    ...(r.reason && isDown(r.state) ? { reason: r.reason } : {}),
    since: new Date(r.sinceMs).toISOString(),
    ...(r.lastUpMs > 0 ? { lastUp: new Date(r.lastUpMs).toISOString() } : {}),
  };
}

/** the sticky rules held on a tunnel's fallback although it is up (sticky.ts) */
function heldFields(health: HealthMonitor, tunnel: string): Pick<TunnelStatus, 'heldRules'> {
  const s = health.sticky;
  const held = s
    ? s
        .list()
        .filter((h) => h.tunnel === tunnel && s.held.has(h.rule))
        .map((h) => ({ rule: h.rule, since: new Date(h.sinceMs).toISOString() }))
    : [];
  return held.length ? { heldRules: held } : {};
}

/** a tunnel's probe: consecutive failures now, the last failure (health-probe.ts) */
function probeFields(health: HealthMonitor, tunnel: string): Pick<TunnelStatus, 'probe'> {
  const p = health.probes?.stateOf(tunnel);
  return p ? { probe: p } : {};
}

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
    const rating = ratingFields(health.ratingOf(name));
    if (!r.spec.link) {
      const px = proxyRows.get(name);
      const error = health.errorOf(name) ?? px?.error;
      out.push({
        name,
        type: r.spec.type,
        health: state,
        ...(error && isDown(state) ? { error } : {}),
        ...rating,
        ...heldFields(health, name),
        ...probeFields(health, name),
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
    // the keepalive as configured (a range is drawn from by the engine, never shown as one draw)
    const keepalive = new Map(r.spec.config.peers.map((p) => [p.publicKey, p.persistentKeepalive]));
    const peers = (s?.peers ?? []).map((p) => ({
      publicKey: p.publicKey,
      ...(p.endpoint ? { endpoint: p.endpoint } : {}),
      ...(keepalive.get(p.publicKey)
        ? { persistentKeepalive: String(keepalive.get(p.publicKey)) }
        : {}),
      lastHandshakeAgeSec: age(p.lastHandshakeMs),
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    }));
    const newest = Math.max(0, ...(s?.peers ?? []).map((p) => p.lastHandshakeMs));
    const error = health.errorOf(name);
    const profile = health.profiles?.view(name);
    out.push({
      name,
      type: r.spec.type,
      link: r.spec.link,
      health: state,
      ...(error ? { error } : {}),
      ...rating,
      ...(profile ? { profile: profile.active } : {}),
      ...(profile?.switches.length
        ? { profileSwitches: profile.switches.map(({ tunnel: _t, ...s }) => s) }
        : {}),
      ...heldFields(health, name),
      ...probeFields(health, name),
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
  ) => Pick<
    RuleCounter,
    'txPackets' | 'txBytes' | 'rxPackets' | 'rxBytes' | 'connections' | 'sets' | 'learned'
  >,
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
    const { rules: counters, sets } = await readTableCounters(exec, nftTable);
    const byApp = new Map(policy.apps.map((a) => [a.name, a]));
    return {
      rules: ruleRows(config, policy, (name) => {
        const tx = counters.get(`app/${name}`) ?? { packets: 0, bytes: 0 };
        const rx = counters.get(`app-in/${name}`) ?? { packets: 0, bytes: 0 };
        return {
          txPackets: tx.packets,
          txBytes: tx.bytes,
          rxPackets: rx.packets,
          rxBytes: rx.bytes,
          ...destinationCounters(byApp.get(name), sets.get(name) ?? [], policy),
        };
      }),
    };
  } catch {
    return {};
  }
}

/** the DNS stub's names per rule, on the rules that learn (a seam: absent until it reports) */
function withLearnedNames(
  r: Pick<StatusResponse, 'rules'>,
  names: ReadonlyMap<string, number> | undefined,
): Pick<StatusResponse, 'rules'> {
  if (!names || !r.rules) return r;
  return {
    rules: r.rules.map((x) => {
      const n = names.get(x.name);
      return n !== undefined ? { ...x, learnedNames: n } : x;
    }),
  };
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
 * A run that only looks again (the drift timer, a network, engine or system event) leaves `state` at
 * the last run's verdict while it runs: `awg status` (exit 2 unless converged) must not flap
 * each time the laptop's network moves or the timer fires. A run for a new desired state (start,
 * a config change, an API apply, a confirm timeout) or a retry after a failure is `reconciling`.
 */
const RECHECK = new Set<WakeReason>(['drift-timer', 'network', 'engine', 'system']);

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
