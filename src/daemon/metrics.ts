/**
 * Prometheus metrics of the daemon (prom-client), opt-in: `awg daemon --metrics
 * [host:port]`, on 127.0.0.1:9586 unless a host is given (the seed system left a profiling
 * port open to everyone). Event counters are fed from DaemonEvents; per-tunnel values, rule
 * counters and the state are read from `status()` at each scrape. Every cumulative value is a
 * counter whose name ends in `_total`, and nothing else ends so (metrics.test.ts checks both). Labels carry tunnel names, outcomes and
 * error kinds only: never keys, endpoints or messages.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AwgError } from '../errors.js';
import type { DaemonCore, DaemonEvent } from './core.js';
import { DAEMON_STATES, DOWN_REASONS, LIST_STATES } from './names.js';

export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9586';
export interface DaemonMetrics {
  registry: Registry;
  /** the exposition text (refreshes the status gauges first) */
  render(): Promise<string>;
  close(): void;
}

export function createMetrics(core: Pick<DaemonCore, 'status' | 'subscribe'>): DaemonMetrics {
  const registry = new Registry();
  const registers = [registry];
  const reconciles = new Counter({
    name: 'awg_reconcile_total',
    help: 'Reconcile runs by outcome.',
    labelNames: ['outcome'],
    registers,
  });
  const duration = new Histogram({
    name: 'awg_reconcile_duration_seconds',
    help: 'Reconcile run duration by outcome.',
    labelNames: ['outcome'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const driftFound = new Counter({
    name: 'awg_drift_detected_total',
    help: 'Objects found drifted from the desired state.',
    registers,
  });
  const driftRepaired = new Counter({
    name: 'awg_drift_repairs_total',
    help: 'Drifted objects repaired.',
    registers,
  });
  const errors = new Counter({
    name: 'awg_errors_total',
    help: 'Errors by kind.',
    labelNames: ['kind'],
    registers,
  });
  const network = new Counter({
    name: 'awg_network_changes_total',
    help: 'Network change events that woke the loop.',
    registers,
  });
  const reverts = new Counter({
    name: 'awg_confirm_reverts_total',
    help: 'Applies reverted because no confirm arrived in time.',
    registers,
  });
  const state = new Gauge({
    name: 'awg_state',
    help: 'Daemon state (1 for the current one).',
    labelNames: ['state'],
    registers,
  });
  const up = new Gauge({
    name: 'awg_tunnel_up',
    help: 'Whether the tunnel is up.',
    labelNames: ['tunnel'],
    registers,
  });
  const health = new Gauge({
    name: 'awg_tunnel_health',
    help: 'Tunnel health as the loop routes by (1 for the current state: connecting, up, down, auth-failed).',
    labelNames: ['tunnel', 'state'],
    registers,
  });
  const downReason = new Gauge({
    name: 'awg_tunnel_down_reason',
    help: 'Why a tunnel is down (1 for the current reason: stopped, handshake, no-data, probe-failed, proxy, auth-failed; all 0 while not down).',
    labelNames: ['tunnel', 'reason'],
    registers,
  });
  const profile = new Gauge({
    name: 'awg_tunnel_profile',
    help: 'The active obfuscation profile of an amneziawg tunnel with profiles (1 for it).',
    labelNames: ['tunnel', 'profile'],
    registers,
  });
  const profileSwitches = new Counter({
    name: 'awg_tunnel_profile_switches_total',
    help: 'Obfuscation profile switches since the daemon started, by reason (handshake, no-data: down with the one before; network: the one remembered there).',
    labelNames: ['tunnel', 'reason'],
    registers,
  });
  const probeFailures = new Gauge({
    name: 'awg_tunnel_probe_failures',
    help: "Consecutive failures of the tunnel's active probe (health.probe) now; 0 while it answers.",
    labelNames: ['tunnel'],
    registers,
  });
  const probeFailedAt = new Gauge({
    name: 'awg_tunnel_probe_last_failure_timestamp_seconds',
    help: "Unix time of the last failure of the tunnel's active probe (absent: none yet).",
    labelNames: ['tunnel'],
    registers,
  });
  const held = new Gauge({
    name: 'awg_rule_held_since_timestamp_seconds',
    help: 'Sticky rules (sticky: true) held on their fallback although their tunnel is up again: Unix time the rule took the fallback.',
    labelNames: ['rule', 'tunnel'],
    registers,
  });
  const healthSince = new Gauge({
    name: 'awg_tunnel_health_since_seconds',
    help: 'Unix time of the last change of the tunnel health.',
    labelNames: ['tunnel'],
    registers,
  });
  const conns = new Gauge({
    name: 'awg_tunnel_connections',
    help: 'Proxy tunnels: open connections through the transparent proxy.',
    labelNames: ['tunnel'],
    registers,
  });
  const hsAge = new Gauge({
    name: 'awg_tunnel_last_handshake_age_seconds',
    help: 'Seconds since the latest handshake of the tunnel (absent: never).',
    labelNames: ['tunnel'],
    registers,
  });
  // Cumulative values the daemon reads at each scrape (engine and firewall counters): counters,
  // set from the source each time; they restart at 0 when their engine or rule does, which
  // rate() reads as a counter reset.
  const rx = new Counter({
    name: 'awg_tunnel_rx_bytes_total',
    help: 'Bytes received through the tunnel (since its engine started).',
    labelNames: ['tunnel'],
    registers,
  });
  const tx = new Counter({
    name: 'awg_tunnel_tx_bytes_total',
    help: 'Bytes sent through the tunnel (since its engine started).',
    labelNames: ['tunnel'],
    registers,
  });
  const connsTotal = new Counter({
    name: 'awg_tunnel_connections_total',
    help: 'Proxy tunnels: connections accepted since the tunnel started.',
    labelNames: ['tunnel'],
    registers,
  });
  const dialErrors = new Counter({
    name: 'awg_tunnel_dial_errors_total',
    help: 'Proxy tunnels: failed upstream dials since the tunnel started.',
    labelNames: ['tunnel'],
    registers,
  });
  const rulePackets = new Counter({
    name: 'awg_rule_packets_total',
    help: "Packets of a rule's cgroup (firewall counter; direction tx: sent, rx: delivered). Linux only.",
    labelNames: ['rule', 'target', 'route', 'direction'],
    registers,
  });
  const ruleBytes = new Counter({
    name: 'awg_rule_bytes_total',
    help: 'Bytes of a rule (direction tx: sent, rx: delivered): on Linux the IP packet lengths of its cgroup (firewall counter), on macOS the payload of its connections through the flow router.',
    labelNames: ['rule', 'target', 'route', 'direction'],
    registers,
  });
  const ruleConns = new Counter({
    name: 'awg_rule_connections_total',
    help: "macOS: a rule's TCP connections through the flow router.",
    labelNames: ['rule', 'target', 'route'],
    registers,
  });
  const setElements = new Gauge({
    name: 'awg_rule_set_elements',
    help: "Entries of a destination rule's nft set (kind static: loaded from the config and its lists; learned: addresses learned from DNS). Linux only.",
    labelNames: ['rule', 'set', 'kind'],
    registers,
  });
  const setHits = new Counter({
    name: 'awg_rule_set_hits_total',
    help: "Packets a destination rule decided because their destination is in this set (its firewall line's counter). Linux only.",
    labelNames: ['rule', 'set', 'kind'],
    registers,
  });
  const setBytes = new Counter({
    name: 'awg_rule_set_bytes_total',
    help: 'Bytes (IP packet lengths) of those packets. Linux only.',
    labelNames: ['rule', 'set', 'kind'],
    registers,
  });
  const linkPackets = new Counter({
    name: 'awg_tunnel_link_packets_total',
    help: "Inner IP packets through the tunnel's TUN link (kernel link counters).",
    labelNames: ['tunnel', 'direction'],
    registers,
  });
  const linkBytes = new Counter({
    name: 'awg_tunnel_link_bytes_total',
    help: "Inner IP bytes through the tunnel's TUN link (kernel link counters).",
    labelNames: ['tunnel', 'direction'],
    registers,
  });
  const placed = new Counter({
    name: 'awg_placement_placed_total',
    help: 'Processes moved into a rule cgroup by the watcher.',
    registers,
  });
  const execs = new Counter({
    name: 'awg_placement_execs_total',
    help: 'exec events the watcher handled.',
    registers,
  });
  const placementErrors = new Counter({
    name: 'awg_placement_errors_total',
    help: "Placement errors by kind: missingCgroup (the rule's cgroup did not exist), writeFailed (cgroup.procs could not be opened or written), gateLate (the exec gate answered past its deadline undecided), gateFailed (the exec gate failed to decide or answer).",
    labelNames: ['kind'],
    registers,
  });
  const configInfo = new Gauge({
    name: 'awg_config_info',
    help: 'The applied config: git commit of its checkout (revision, empty when not in one) and the host overlays are selected for; always 1.',
    labelNames: ['revision', 'host'],
    registers,
  });
  const configValid = new Gauge({
    name: 'awg_config_valid',
    help: 'Whether the config as it is on disk now is valid (0: the last good one keeps running).',
    registers,
  });
  const configBehind = new Gauge({
    name: 'awg_config_behind',
    help: '1 while the checkout holds a commit other than the applied one (a newer commit is invalid or not yet applied).',
    registers,
  });
  const rolloutWaiting = new Gauge({
    name: 'awg_rollout_waiting',
    help: "A new revision (the checkout's commit) the rollout gate holds back: state waiting (for wave) or halted (fleet.halt); 1 while held.",
    labelNames: ['revision', 'wave', 'state'],
    registers,
  });
  const rolloutDue = new Gauge({
    name: 'awg_rollout_due_timestamp_seconds',
    help: "When this host's wave for the held revision is due (Unix time, the host's clock).",
    labelNames: ['revision', 'wave'],
    registers,
  });
  const rejected = new Gauge({
    name: 'awg_revision_rejected',
    help: 'A revision of the followed checkout this host rejected: it failed its check after the apply and the host went back to the last good one (1 per rejected revision; the newest 20 are kept).',
    labelNames: ['rev'],
    registers,
  });
  const lastConverged = new Gauge({
    name: 'awg_last_converge_timestamp_seconds',
    help: 'When a run last left the host matching the config (Unix time).',
    registers,
  });
  const planChanges = new Gauge({
    name: 'awg_last_plan_changes',
    help: "Changes in the last run's plan (0: the host matched).",
    registers,
  });
  const mode = new Gauge({
    name: 'awg_placement_mode',
    help: '1 for the placement mode in effect: gated (the exec gate holds matching execs until placed) or best-effort (the watcher alone).',
    labelNames: ['mode'],
    registers,
  });
  const dnsQueries = new Counter({
    name: 'awg_dns_queries_total',
    help: 'DNS queries the learning stub of domain rules forwarded (every application query while it runs).',
    registers,
  });
  const dnsElements = new Gauge({
    name: 'awg_dns_learned_elements',
    help: "(rule, address) entries the DNS learning stub holds in the rules' learned sets.",
    registers,
  });
  const updateAvailable = new Gauge({
    name: 'awg_update_available',
    help: "1 when awg's configured apt source offers a newer awg than the installed one (the candidate label); absent when awg is not checked (no apt source, not a Debian install).",
    labelNames: ['installed', 'candidate'],
    registers,
  });
  const lists = listMetrics(registers);
  for (const o of ['converged', 'unchanged', 'rolled-back', 'failed-closed', 'failed'])
    reconciles.inc({ outcome: o }, 0);

  const unsubscribe = core.subscribe((e: DaemonEvent) => {
    switch (e.type) {
      case 'reconcile-finished':
        reconciles.inc({ outcome: e.outcome });
        duration.observe({ outcome: e.outcome }, e.durationMs / 1000);
        return;
      case 'drift':
        driftFound.inc(e.ids.length);
        if (e.repaired) driftRepaired.inc(e.ids.length);
        return;
      case 'error':
        errors.inc({ kind: e.kind });
        return;
      case 'network-changed':
        network.inc();
        return;
      case 'reverted':
        reverts.inc();
        return;
      case 'profile':
        profileSwitches.inc({ tunnel: e.tunnel, reason: e.reason });
        return;
      default:
        return;
    }
  });

  return {
    registry,
    async render() {
      const s = await core.status();
      for (const x of DAEMON_STATES) state.set({ state: x }, x === s.state ? 1 : 0);
      for (const g of [
        configInfo,
        configValid,
        configBehind,
        rolloutWaiting,
        rolloutDue,
        rejected,
        lastConverged,
        planChanges,
        updateAvailable,
      ])
        g.reset();
      if (s.update?.candidate)
        updateAvailable.set(
          { installed: s.update.installed ?? '', candidate: s.update.candidate },
          s.update.available ? 1 : 0,
        );
      if (s.config) {
        configInfo.set({ revision: s.config.revision ?? '', host: s.config.host ?? '' }, 1);
        configValid.set(s.config.valid ? 1 : 0);
        configBehind.set(
          s.config.checkoutRevision !== undefined && s.config.checkoutRevision !== s.config.revision
            ? 1
            : 0,
        );
        const r = s.config.rollout;
        if (r) {
          const wave = r.wave !== undefined ? String(r.wave) : '';
          rolloutWaiting.set({ revision: r.revision, wave, state: r.state }, 1);
          if (r.dueAt) rolloutDue.set({ revision: r.revision, wave }, Date.parse(r.dueAt) / 1000);
        }
        for (const r of s.config.rejected ?? []) rejected.set({ rev: r.revision }, 1);
        if (s.config.lastConverged) lastConverged.set(Date.parse(s.config.lastConverged) / 1000);
        planChanges.set(s.config.lastPlanChanges);
      }
      for (const g of [
        up,
        hsAge,
        health,
        downReason,
        profile,
        probeFailures,
        probeFailedAt,
        held,
        healthSince,
        conns,
        rx,
        tx,
        connsTotal,
        dialErrors,
        rulePackets,
        ruleBytes,
        ruleConns,
        setElements,
        setHits,
        setBytes,
        linkPackets,
        linkBytes,
        placed,
        execs,
        placementErrors,
        dnsQueries,
        dnsElements,
      ])
        g.reset();
      if (s.dnsStub) {
        dnsQueries.inc(s.dnsStub.queries);
        dnsElements.set(s.dnsStub.elements);
      }
      for (const r of s.rules ?? []) {
        const l = { rule: r.name, target: r.target, route: r.route };
        ruleBytes.inc({ ...l, direction: 'tx' }, r.txBytes);
        ruleBytes.inc({ ...l, direction: 'rx' }, r.rxBytes);
        if (r.connections !== undefined) ruleConns.inc(l, r.connections);
        else {
          rulePackets.inc({ ...l, direction: 'tx' }, r.txPackets);
          rulePackets.inc({ ...l, direction: 'rx' }, r.rxPackets);
        }
        for (const x of r.sets ?? []) {
          const sl = { rule: r.name, set: x.name, kind: x.kind };
          if (x.elements !== undefined) setElements.set(sl, x.elements);
          setHits.inc(sl, x.packets);
          setBytes.inc(sl, x.bytes);
        }
      }
      lists.set(s.lists ?? []);
      placed.inc(s.placement?.placed ?? 0);
      execs.inc(s.placement?.execs ?? 0);
      for (const [k, n] of Object.entries(s.placement?.errorsByKind ?? {}))
        placementErrors.inc({ kind: k }, n);
      for (const m of ['gated', 'best-effort'])
        mode.set({ mode: m }, s.placement?.mode === m ? 1 : 0);
      for (const t of s.tunnels) {
        for (const h of ['connecting', 'up', 'down', 'auth-failed'])
          health.set(
            { tunnel: t.name, state: h },
            (t.health ?? (t.up ? 'up' : 'down')) === h ? 1 : 0,
          );
        for (const r of DOWN_REASONS)
          downReason.set({ tunnel: t.name, reason: r }, t.reason === r ? 1 : 0);
        if (t.profile) profile.set({ tunnel: t.name, profile: t.profile }, 1);
        if (t.since) healthSince.set({ tunnel: t.name }, Date.parse(t.since) / 1000);
        if (t.probe) {
          probeFailures.set({ tunnel: t.name }, t.probe.failures);
          if (t.probe.lastFailureAt)
            probeFailedAt.set({ tunnel: t.name }, Date.parse(t.probe.lastFailureAt) / 1000);
        }
        for (const h of t.heldRules ?? [])
          held.set({ rule: h.rule, tunnel: t.name }, Date.parse(h.since) / 1000);
        if (t.connectionsTotal !== undefined) {
          conns.set({ tunnel: t.name }, t.connectionsActive ?? 0);
          connsTotal.inc({ tunnel: t.name }, t.connectionsTotal);
          dialErrors.inc({ tunnel: t.name }, t.dialErrors ?? 0);
        }
        up.set({ tunnel: t.name }, t.up ? 1 : 0);
        rx.inc({ tunnel: t.name }, t.rxBytes);
        tx.inc({ tunnel: t.name }, t.txBytes);
        if (t.lastHandshakeAgeSec !== undefined)
          hsAge.set({ tunnel: t.name }, t.lastHandshakeAgeSec);
        if (t.linkTraffic) {
          linkPackets.inc({ tunnel: t.name, direction: 'rx' }, t.linkTraffic.rxPackets);
          linkPackets.inc({ tunnel: t.name, direction: 'tx' }, t.linkTraffic.txPackets);
          linkBytes.inc({ tunnel: t.name, direction: 'rx' }, t.linkTraffic.rxBytes);
          linkBytes.inc({ tunnel: t.name, direction: 'tx' }, t.linkTraffic.txBytes);
        }
      }
      return registry.metrics();
    },
    close: unsubscribe,
  };
}

/**
 * The lists fetched by URL (status `lists`), by `list` (the URL without credentials or
 * query): entries in use, seconds since the server last confirmed the copy, that time, the
 * failed fetches, and the state (1 for the current one: ok, stale, pending).
 */
function listMetrics(registers: Registry[]): {
  set(lists: NonNullable<Awaited<ReturnType<DaemonCore['status']>>['lists']>): void;
} {
  const entries = new Gauge({
    name: 'awg_list_entries',
    help: 'Entries of the copy of a list fetched by URL that is in use (absent: no copy).',
    labelNames: ['list'],
    registers,
  });
  const age = new Gauge({
    name: 'awg_list_age_seconds',
    help: "Seconds since the list's server last confirmed the copy in use (a new copy or 304).",
    labelNames: ['list'],
    registers,
  });
  const success = new Gauge({
    name: 'awg_list_last_success_timestamp_seconds',
    help: "When the list's server last confirmed the copy in use (Unix time).",
    labelNames: ['list'],
    registers,
  });
  const failures = new Counter({
    name: 'awg_list_fetch_failures_total',
    help: 'Fetches of the list that failed or were refused since the daemon started (the last good copy stays).',
    labelNames: ['list'],
    registers,
  });
  const state = new Gauge({
    name: 'awg_list_state',
    help: 'State of the list (1 for the current one): ok, stale (the last fetch failed, its copy is used), pending (no copy: it contributes nothing).',
    labelNames: ['list', 'state'],
    registers,
  });
  return {
    set(lists) {
      for (const g of [entries, age, success, failures, state]) g.reset();
      for (const l of lists) {
        const list = l.list;
        if (l.entries !== undefined) entries.set({ list }, l.entries);
        if (l.ageSec !== undefined) age.set({ list }, l.ageSec);
        if (l.checkedAt) success.set({ list }, Date.parse(l.checkedAt) / 1000);
        failures.inc({ list }, l.failuresTotal);
        for (const x of LIST_STATES) state.set({ list, state: x }, x === l.state ? 1 : 0);
      }
    },
  };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** `host:port`, `[v6]:port`, `:port` or `port`; the host defaults to 127.0.0.1. */
export function parseListen(s: string): { host: string; port: number; loopback: boolean } {
  let host = '127.0.0.1';
  let port: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) [host, port] = [v6[1]!, v6[2]!];
  else if (/^\d+$/.test(s)) port = s;
  else {
    const i = s.lastIndexOf(':');
    if (i < 0) throw new AwgError('invalid-config', `--metrics ${s}: expected host:port`);
    if (i > 0) host = s.slice(0, i);
    port = s.slice(i + 1);
  }
  const n = Number(port);
  if (!/^\d+$/.test(port) || n > 65535)
    throw new AwgError('invalid-config', `--metrics ${s}: bad port`);
  return { host, port: n, loopback: LOOPBACK.test(host) };
}

export interface MetricsServer {
  address: { host: string; port: number };
  close(): Promise<void>;
}

/** Serve GET /metrics; anything else 404. */
export async function startMetricsServer(
  core: Pick<DaemonCore, 'status' | 'subscribe'>,
  listen: string = DEFAULT_METRICS_LISTEN,
): Promise<MetricsServer> {
  const { host, port } = parseListen(listen);
  const m = createMetrics(core);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    m.render().then(
      (text) => res.writeHead(200, { 'content-type': m.registry.contentType }).end(text),
      (e: unknown) =>
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`awg: metrics unavailable: ${e instanceof AwgError ? e.kind : 'error'}\n`),
    );
  });
  // after listen, an accept error (EMFILE…) must not end the daemon: the server keeps listening
  server.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new AwgError(
          e.code === 'EACCES' ? 'permission' : 'driver',
          `metrics on ${listen}: ${e.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const a = server.address();
  return {
    address: { host, port: typeof a === 'object' && a ? a.port : port },
    close: () =>
      new Promise<void>((resolve) => {
        m.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
