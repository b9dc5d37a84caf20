/**
 * The daemon's domain API: what `awg daemon` offers, independent of gRPC. The gRPC server
 * (server.ts) converts proto messages to and from these types at the boundary; nothing
 * proto-shaped passes this file. Secrets never appear in any of these types.
 */
import type { ExecChoice } from '../model/match.js';
import type { PlanDocument } from '../model/plan-document.js';
import type { ProcessInfo } from '../procs/placer.js';
import type { DetachedEngineStatus } from '../resources/engine/detached-status.js';
import type { HealthState } from './tunnel-health.js';

export type { ProcessInfo };

export type DaemonEvent =
  | { type: 'reconcile-started'; at: string; reason: WakeReason }
  | {
      type: 'reconcile-finished';
      at: string;
      reason: WakeReason;
      outcome: string;
      durationMs: number;
      summary: PlanDocument['summary'];
      error?: { kind: string; message: string };
    }
  | { type: 'drift'; at: string; ids: string[]; repaired: boolean }
  | { type: 'network-changed'; at: string; detail: string }
  | { type: 'config-changed'; at: string; path: string; valid: boolean }
  | { type: 'tunnel'; at: string; tunnel: string; state: HealthState; error?: string }
  | { type: 'handshake'; at: string; tunnel: string; peer: string }
  | { type: 'confirm-pending'; at: string; deadline: string }
  | { type: 'reverted'; at: string; reason: string }
  | { type: 'error'; at: string; kind: string; message: string }
  /** traffic counters, at most every TRAFFIC_EVENT_MS and only when one moved (daemon.ts) */
  | { type: 'traffic'; at: string; rules: RuleCounter[]; tunnels: TunnelTraffic[] };

/** a tunnel's counters in a traffic event */
export interface TunnelTraffic {
  tunnel: string;
  /** what the engine counts (encrypted datagrams with their headers; proxy tunnels: payload) */
  rxBytes: number;
  txBytes: number;
  /** the TUN's own counts of the inner IP packets (TUN tunnels) */
  link?: LinkTraffic;
}

/** the kernel's counters of a TUN link (IFLA_STATS64): inner IP packets, headers included */
export interface LinkTraffic {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

/** Why the loop woke. Wakes never carry state: each run re-observes everything. */
export const WAKE_REASONS = [
  'start',
  'config',
  'network',
  'engine',
  'drift-timer',
  'api',
  'retry',
  'confirm-timeout',
] as const;
export type WakeReason = (typeof WAKE_REASONS)[number];

/**
 * The daemon's state, as `awg status` reports it (status.ts's daemonState decides it). The
 * one list: the status document's zod enum, the proto's State enum (STATE_ + the name; a test
 * compares) and the metrics' state gauge follow it.
 */
export const DAEMON_STATES = [
  'converged',
  'drifted',
  'reconciling',
  'failed',
  'failed-closed',
  'down',
] as const;
export type DaemonState = (typeof DAEMON_STATES)[number];

export interface ApplyRequest {
  /** the daemon reads the file itself (it resolves `{file}`/`{env}` secrets; none cross the API) */
  configPath: string;
  dryRun?: boolean;
  /** netplan-try style: revert unless `confirm()` arrives within this many seconds */
  confirmTimeoutSec?: number;
}

export interface ApplyResponse {
  outcome: string;
  plan: PlanDocument;
  mutations: number;
  error?: { kind: string; message: string };
  /** ISO time by which `confirm()` must arrive (confirm-timeout applies) */
  confirmDeadline?: string;
}

/** A detached engine's answer (same fields), plus what only the daemon knows. */
export interface TunnelStatus extends Omit<DetachedEngineStatus, 'health'> {
  /** what the loop routes by (rules take their fallback while down/auth-failed) */
  health?: HealthState;
  /** proxy tunnels */
  connectionsActive?: number;
  connectionsTotal?: number;
  dialErrors?: number;
  /** TUN tunnels: the kernel's counters of the link (absent when it could not be read) */
  linkTraffic?: LinkTraffic;
}

export interface PlacementStatus {
  /** active: the process watcher runs; unavailable: it could not start (reason); off: no rules */
  state: 'active' | 'unavailable' | 'off';
  reason?: string;
  execs: number;
  placed: number;
  errors: number;
  /**
   * gated: the exec gate holds every exec a rule could match until it is placed (no first
   * packet by the wrong path); best-effort: the watcher places after the exec (modeReason)
   */
  mode?: 'gated' | 'best-effort';
  modeReason?: string;
  /** mount points of the file systems the gate marks */
  gateMarks?: string[];
}

/**
 * per-rule traffic: the firewall's counters of the rule's cgroup, i.e. the total of every
 * process in it (the kernel counts per socket cgroup, not per process). tx: packets the rule's
 * sockets send (counted before routing, whatever the route: tunnel, direct or dropped); rx:
 * packets delivered to them (input hook). Bytes are IP packet lengths (IP header included, no
 * tunnel encapsulation).
 */
export interface RuleCounter {
  name: string;
  target: string;
  route: string;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  /**
   * macOS: the rule's TCP connections through the flow router. Present, the bytes are payload
   * bytes of those connections and the packets are not counted (0); absent (Linux), all four
   * are the rule cgroup's IP packets and bytes.
   */
  connections?: number;
}

export interface StatusResponse {
  state: DaemonState;
  configPath?: string;
  lastReconcile?: {
    at: string;
    outcome: string;
    durationMs: number;
    error?: { kind: string; message: string };
  };
  objects: { kind: string; id: string }[];
  tunnels: TunnelStatus[];
  confirmDeadline?: string;
  placement?: PlacementStatus;
  rules?: RuleCounter[];
  config?: ConfigState;
}

/** What the daemon follows (fleet: the revision it runs and whether the newest one is valid). */
export interface ConfigState {
  /** git commit of the checkout holding the applied (last good) config, when it is in one */
  revision?: string;
  /** the config as it is on disk now is valid (false: the last good one keeps running) */
  valid: boolean;
  error?: string;
  /** the applied config's files: the config, then the overlay files */
  sources?: string[];
  /** the host name overlays are selected for */
  host?: string;
  /** end of the last run that left the host matching the config (converged or unchanged) */
  lastConverged?: string;
  /** changes the last run's plan held */
  lastPlanChanges: number;
  /** git commit of the checkout now (differs from `revision` while a newer commit is invalid) */
  checkoutRevision?: string;
}

export interface DaemonCore {
  apply(req: ApplyRequest): Promise<ApplyResponse>;
  diff(req: { configPath: string }): Promise<{ plan: PlanDocument; changes: boolean }>;
  status(): Promise<StatusResponse>;
  down(): Promise<{ removed: string[]; mutations: number }>;
  confirm(): Promise<{ confirmed: boolean }>;
  listProcesses(): Promise<ProcessInfo[]>;
  /**
   * `awg exec` where the daemon routes it (macOS, the flow router): `pid` (the caller's own,
   * from the socket's credentials) and its descendants take `choice` until the returned
   * function is called; `onEnd` gets the reason when the daemon ends it first. Absent or
   * throwing AwgError('unsupported') where awg exec needs no daemon (Linux).
   */
  routeExec?(pid: number, choice: ExecChoice, onEnd: (reason: string) => void): Promise<() => void>;
  /** returns an unsubscribe function */
  subscribe(listener: (e: DaemonEvent) => void): () => void;
}
