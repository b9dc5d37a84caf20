/**
 * The daemon's lists of names, each written once: the status's schema (status-document.ts),
 * the types of core.ts, the proto's enums (State, WakeReason; test/unit/daemon/
 * wire-definition.test.ts compares), the wire mapping and the metrics follow them. Plain
 * constants that import nothing at run time: the CLI's daemon client loads them with the wire
 * mapping, and must not load the daemon's modules or zod schemas for that.
 */
/** a tunnel's health (tunnel-health.ts rates it) */
export type HealthState = 'connecting' | 'up' | 'down' | 'auth-failed';

/**
 * Why the loop woke (the proto's WakeReason). Wakes never carry state: each run re-observes
 * everything. `limit`: a runtime limit's processes all exited, or its cgroup is to be made
 * again (limit-book.ts). `system`: a system service spoke (resolved started or its per-link
 * settings changed, NetworkManager reconfigured, resume from sleep: resources/monitor/system-bus.ts).
 * `lists`: a list fetched by URL has a new copy (list-refresh.ts).
 */
export const WAKE_REASONS = [
  'start',
  'config',
  'network',
  'engine',
  'drift-timer',
  'api',
  'retry',
  'confirm-timeout',
  'limit',
  'system',
  'lists',
  'revision-rejected',
] as const;
export type WakeReason = (typeof WAKE_REASONS)[number];

/**
 * The daemon's state, as `awg status` reports it (status.ts's daemonState decides it). The
 * status's zod enum, the proto's State enum (STATE_ + the name), the wire mapping and the
 * metrics' state gauge follow it.
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

/**
 * The states of a tunnel's health (tunnel-health.ts's HealthState): what the loop routes by.
 * The status's tunnel line (`health`) follows this list.
 */
export const TUNNEL_HEALTH = [
  'connecting',
  'up',
  'down',
  'auth-failed',
] as const satisfies readonly HealthState[];

/**
 * Why a tunnel is down (health-rating.ts): `stopped` its engine is not running; `handshake`
 * no handshake answered for downAfter; `no-data` handshakes answered but our data unanswered
 * (data-path.ts); `probe-failed` the configured probe failed; `proxy` the proxy's upstream
 * check failed; `auth-failed` the proxy refused our credentials.
 */
export const DOWN_REASONS = [
  'stopped',
  'handshake',
  'no-data',
  'probe-failed',
  'proxy',
  'auth-failed',
] as const;
export type DownReason = (typeof DOWN_REASONS)[number];

/** PlacementStatus.state: the process watcher runs; it could not start (reason); no rules */
export const PLACEMENT_STATES = ['active', 'unavailable', 'off'] as const;
/**
 * PlacementStatus.mode. gated: the exec gate holds every exec a rule could match until it is
 * placed (no first packet by the wrong path); best-effort: the watcher places after the exec
 * (modeReason says why)
 */
export const PLACEMENT_MODES = ['gated', 'best-effort'] as const;

/** LimitChanged.action: a runtime limit (`awg limit`) was set, its rates changed, or it went */
export const LIMIT_ACTIONS = ['added', 'changed', 'removed'] as const;
export type LimitAction = (typeof LIMIT_ACTIONS)[number];

/**
 * A list fetched by URL (list-refresh.ts): `ok` its copy is in use and current; `stale` its
 * copy is in use but the last fetch failed; `pending` it has no copy (it contributes nothing).
 */
export const LIST_STATES = ['ok', 'stale', 'pending'] as const;
export type ListState = (typeof LIST_STATES)[number];

/** ListFetched.result: a new copy; the copy is current (304, or the same bytes); no copy taken */
export const LIST_RESULTS = ['fetched', 'not-modified', 'failed'] as const;
export type ListResult = (typeof LIST_RESULTS)[number];

/**
 * Why the rollout gate holds a new revision (rollout-gate.ts): its wave is not due, or the
 * revision says `fleet.halt`. The `rollout` event adds `applying` (the wave came due).
 */
export const ROLLOUT_HOLDS = ['waiting', 'halted'] as const;
export const ROLLOUT_EVENT_STATES = [...ROLLOUT_HOLDS, 'applying'] as const;
export type RolloutEventState = (typeof ROLLOUT_EVENT_STATES)[number];
