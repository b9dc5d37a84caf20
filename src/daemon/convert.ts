/**
 * The boundary between proto/awg.proto and the domain types of core.ts. Pure: the proto is
 * loaded at runtime by @grpc/proto-loader (no codegen), and this file is the only one that
 * knows the shape of its messages; server.ts and client.ts pass them through untouched.
 *
 * Loader options: camelCase fields, int64 as JS numbers (byte counters stay far below
 * 2^53), enums as their names, proto3 `optional` fields absent when unset (`defaults`
 * fills only non-optional scalars), `oneofs` names the set member of `Event.event`.
 */
import { checkConfirmTimeout } from './confirm.js';
import { AwgError, ERROR_KINDS, type ErrorKind, type Issue } from '../errors.js';
import type { ExecChoice } from '../model/match.js';
import type { PlanDocument } from '../model/plan-document.js';
import type {
  ApplyRequest,
  ApplyResponse,
  DaemonEvent,
  LinkTraffic,
  PlacementStatus,
  ConfigState,
  ProcessInfo,
  RuleCounter,
  StatusResponse,
  TunnelStatus,
  WakeReason,
} from './core.js';
import type { HealthState } from './tunnel-health.js';

export { LOADER_OPTIONS, PROTO_PATH, SERVICE_NAME } from './wire/proto.js';
/** trailer carrying the AwgError of a failed RPC as UTF-8 JSON (a -bin key: paths need not be ASCII) */
export const ERROR_TRAILER = 'awg-error-bin';

// ---- wire shapes (what proto-loader produces and accepts) -------------------------------

/* eslint-disable @typescript-eslint/no-namespace */
export namespace Wire {
  export interface ErrorInfo {
    kind: string;
    message: string;
  }
  export interface Summary {
    create: number;
    update: number;
    replace: number;
    delete: number;
    drift: number;
    config: number;
  }
  export interface Change {
    kind: string;
    id: string;
    action: string;
    cause: string;
    reason: string;
    fields: string[];
    beforeJson?: string;
    afterJson?: string;
  }
  export interface Plan {
    formatVersion: number;
    config?: string;
    changes: Change[];
    summary: Summary | null;
    foreign: { kind: string; id: string; relation: string; description: string }[];
    warnings: string[];
  }
  export interface ApplyRequest {
    configPath: string;
    dryRun: boolean;
    confirmTimeoutSec: number;
  }
  export interface ApplyResponse {
    outcome: string;
    plan: Plan | null;
    mutations: number;
    error?: ErrorInfo;
    confirmDeadline?: string;
  }
  export interface DiffRequest {
    configPath: string;
  }
  export interface DiffResponse {
    plan: Plan | null;
    changes: boolean;
  }
  export interface Peer {
    publicKey: string;
    endpoint?: string;
    lastHandshakeAgeSec?: number;
    rxBytes: number;
    txBytes: number;
  }
  export interface Tunnel {
    name: string;
    type: string;
    link?: string;
    up: boolean;
    lastHandshakeAgeSec?: number;
    rxBytes: number;
    txBytes: number;
    peers: Peer[];
    health?: string;
    error?: string;
    connectionsActive?: number;
    connectionsTotal?: number;
    dialErrors?: number;
    linkTraffic?: LinkTraffic;
  }
  export interface LinkTraffic {
    rxPackets: number;
    rxBytes: number;
    txPackets: number;
    txBytes: number;
  }
  export interface Placement {
    state: string;
    reason?: string;
    execs: number;
    placed: number;
    errors: number;
    mode?: string;
    modeReason?: string;
    gateMarks?: string[];
  }
  export interface RuleCounter {
    name: string;
    target: string;
    route: string;
    txPackets: number;
    txBytes: number;
    rxPackets: number;
    rxBytes: number;
    connections?: number | null;
  }
  export interface StatusResponse {
    state: string;
    configPath?: string;
    lastReconcile?: { at: string; outcome: string; durationMs: number; error?: ErrorInfo };
    objects: { kind: string; id: string }[];
    tunnels: Tunnel[];
    confirmDeadline?: string;
    placement?: Placement;
    rules?: RuleCounter[];
    config?: ConfigState;
  }
  export interface ConfigState {
    revision?: string;
    valid: boolean;
    error?: string;
    sources?: string[];
    host?: string;
    lastConverged?: string;
    lastPlanChanges: number;
    checkoutRevision?: string;
  }
  export interface DownResponse {
    removed: string[];
    mutations: number;
  }
  export interface ConfirmResponse {
    confirmed: boolean;
  }
  export interface Event {
    at: string;
    event?: string;
    reconcileStarted?: { reason: string };
    reconcileFinished?: {
      reason: string;
      outcome: string;
      durationMs: number;
      summary: Summary | null;
      error?: ErrorInfo;
    };
    drift?: { ids: string[]; repaired: boolean };
    networkChanged?: { detail: string };
    configChanged?: { path: string; valid: boolean };
    tunnel?: { tunnel: string; up: boolean; state?: string; error?: string };
    handshake?: { tunnel: string; peer: string };
    confirmPending?: { deadline: string };
    reverted?: { reason: string };
    error?: ErrorInfo;
    traffic?: {
      rules: RuleCounter[];
      tunnels: { tunnel: string; rxBytes: number; txBytes: number; link?: LinkTraffic }[];
    };
  }
  export interface Process {
    pid: number;
    name: string;
    path: string;
    rule?: string;
    target?: string;
    route: string;
    ppid?: number;
    cgroup?: string;
    pending?: string;
  }
  export interface ListProcessesResponse {
    processes: Process[];
  }
  export interface ExecRequest {
    choice?: string;
    tunnel?: string;
    direct?: boolean;
    rule?: string;
  }
  export interface ExecRegistered {
    pid: number;
  }
}
/* eslint-enable @typescript-eslint/no-namespace */

// ---- helpers -----------------------------------------------------------------------------

function bad(what: string): AwgError {
  return new AwgError('bug', `malformed API message: ${what}`);
}

const opt = <K extends string, V>(k: K, v: V | undefined | null): { [P in K]?: V } =>
  v === undefined || v === null ? {} : ({ [k]: v } as { [P in K]?: V });

function errIn(
  e: Wire.ErrorInfo | undefined | null,
): { kind: string; message: string } | undefined {
  return e ? { kind: e.kind, message: e.message } : undefined;
}

// ---- enums ---------------------------------------------------------------------------------

const STATES: StatusResponse['state'][] = [
  'converged',
  'drifted',
  'reconciling',
  'failed',
  'failed-closed',
  'down',
];
const WAKES: WakeReason[] = [
  'start',
  'config',
  'network',
  'engine',
  'drift-timer',
  'api',
  'retry',
  'confirm-timeout',
];

const enumName = (prefix: string, v: string) => `${prefix}_${v.toUpperCase().replace(/-/g, '_')}`;

function enumFrom<T extends string>(prefix: string, values: readonly T[], wire: string): T {
  const v = values.find((x) => enumName(prefix, x) === wire);
  if (!v) throw bad(`${prefix} ${wire}`);
  return v;
}

export const stateToWire = (s: StatusResponse['state']) => enumName('STATE', s);
export const stateFromWire = (s: string) => enumFrom('STATE', STATES, s);
export const wakeToWire = (w: WakeReason) => enumName('WAKE_REASON', w);
export const wakeFromWire = (w: string) => enumFrom('WAKE_REASON', WAKES, w);

// ---- plan ----------------------------------------------------------------------------------

const ZERO_SUMMARY: Wire.Summary = {
  create: 0,
  update: 0,
  replace: 0,
  delete: 0,
  drift: 0,
  config: 0,
};

export function planToWire(p: PlanDocument): Wire.Plan {
  return {
    formatVersion: p.formatVersion,
    ...opt('config', p.config),
    changes: p.changes.map((c) => ({
      kind: c.kind,
      id: c.id,
      action: c.action,
      cause: c.cause,
      reason: c.reason,
      fields: c.fields ?? [],
      ...opt('beforeJson', c.before === undefined ? undefined : JSON.stringify(c.before)),
      ...opt('afterJson', c.after === undefined ? undefined : JSON.stringify(c.after)),
    })),
    summary: { ...p.summary },
    foreign: p.foreign.map((f) => ({ ...f })),
    warnings: [...p.warnings],
  };
}

function json(s: string, what: string): Record<string, unknown> {
  try {
    return JSON.parse(s) as Record<string, unknown>;
  } catch {
    throw bad(what);
  }
}

export function planFromWire(w: Wire.Plan | null | undefined): PlanDocument {
  if (!w) throw bad('plan missing');
  if (w.formatVersion !== 1) throw bad(`plan formatVersion ${w.formatVersion}`);
  return {
    formatVersion: 1,
    ...opt('config', w.config),
    changes: w.changes.map((c) => ({
      kind: c.kind as PlanDocument['changes'][number]['kind'],
      id: c.id,
      action: c.action as PlanDocument['changes'][number]['action'],
      cause: c.cause as PlanDocument['changes'][number]['cause'],
      reason: c.reason,
      ...(c.fields.length ? { fields: [...c.fields] } : {}),
      ...opt(
        'before',
        c.beforeJson === undefined ? undefined : json(c.beforeJson, `${c.id} before`),
      ),
      ...opt('after', c.afterJson === undefined ? undefined : json(c.afterJson, `${c.id} after`)),
    })),
    summary: { ...(w.summary ?? ZERO_SUMMARY) },
    foreign: w.foreign.map((f) => ({
      kind: f.kind as PlanDocument['foreign'][number]['kind'],
      id: f.id,
      relation: f.relation as 'conflict' | 'competitor',
      description: f.description,
    })),
    warnings: [...w.warnings],
  };
}

// ---- requests and responses ----------------------------------------------------------------

export function applyRequestToWire(r: ApplyRequest): Wire.ApplyRequest {
  return {
    configPath: r.configPath,
    dryRun: Boolean(r.dryRun),
    confirmTimeoutSec: r.confirmTimeoutSec ?? 0,
  };
}

export function applyRequestFromWire(w: Wire.ApplyRequest): ApplyRequest {
  if (!w.configPath) throw new AwgError('invalid-config', 'config path missing');
  if (w.confirmTimeoutSec) checkConfirmTimeout(w.confirmTimeoutSec);
  return {
    configPath: w.configPath,
    ...(w.dryRun ? { dryRun: true } : {}),
    ...(w.confirmTimeoutSec ? { confirmTimeoutSec: w.confirmTimeoutSec } : {}),
  };
}

export function applyResponseToWire(r: ApplyResponse): Wire.ApplyResponse {
  return {
    outcome: r.outcome,
    plan: planToWire(r.plan),
    mutations: r.mutations,
    ...opt('error', r.error),
    ...opt('confirmDeadline', r.confirmDeadline),
  };
}

export function applyResponseFromWire(w: Wire.ApplyResponse): ApplyResponse {
  return {
    outcome: w.outcome,
    plan: planFromWire(w.plan),
    mutations: w.mutations,
    ...opt('error', errIn(w.error)),
    ...opt('confirmDeadline', w.confirmDeadline),
  };
}

export function diffResponseToWire(r: { plan: PlanDocument; changes: boolean }): Wire.DiffResponse {
  return { plan: planToWire(r.plan), changes: r.changes };
}

export function diffResponseFromWire(w: Wire.DiffResponse): {
  plan: PlanDocument;
  changes: boolean;
} {
  return { plan: planFromWire(w.plan), changes: w.changes };
}

function tunnelToWire(t: TunnelStatus): Wire.Tunnel {
  return {
    name: t.name,
    type: t.type,
    ...opt('link', t.link),
    up: t.up,
    ...opt('lastHandshakeAgeSec', t.lastHandshakeAgeSec),
    rxBytes: t.rxBytes,
    txBytes: t.txBytes,
    peers: t.peers.map((p) => ({
      publicKey: p.publicKey,
      ...opt('endpoint', p.endpoint),
      ...opt('lastHandshakeAgeSec', p.lastHandshakeAgeSec),
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    })),
    health: t.health ?? '',
    ...opt('error', t.error),
    ...opt('connectionsActive', t.connectionsActive),
    ...opt('connectionsTotal', t.connectionsTotal),
    ...opt('dialErrors', t.dialErrors),
    ...opt('linkTraffic', t.linkTraffic ? { ...t.linkTraffic } : undefined),
  };
}

function tunnelFromWire(w: Wire.Tunnel): TunnelStatus {
  return {
    name: w.name,
    type: w.type,
    ...opt('link', w.link),
    up: w.up,
    ...opt('lastHandshakeAgeSec', w.lastHandshakeAgeSec),
    rxBytes: w.rxBytes,
    txBytes: w.txBytes,
    peers: w.peers.map((p) => ({
      publicKey: p.publicKey,
      ...opt('endpoint', p.endpoint),
      ...opt('lastHandshakeAgeSec', p.lastHandshakeAgeSec),
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    })),
    ...opt('health', healthFromWire(w.health)),
    ...opt('error', w.error),
    ...opt('connectionsActive', w.connectionsActive),
    ...opt('connectionsTotal', w.connectionsTotal),
    ...opt('dialErrors', w.dialErrors),
    ...opt('linkTraffic', w.linkTraffic ? linkFromWire(w.linkTraffic) : undefined),
  };
}

const linkFromWire = (l: Wire.LinkTraffic): LinkTraffic => ({
  rxPackets: l.rxPackets,
  rxBytes: l.rxBytes,
  txPackets: l.txPackets,
  txBytes: l.txBytes,
});
const ruleFromWire = (r: Wire.RuleCounter): RuleCounter => ({
  name: r.name,
  target: r.target,
  route: r.route,
  txPackets: r.txPackets,
  txBytes: r.txBytes,
  rxPackets: r.rxPackets,
  rxBytes: r.rxBytes,
  ...opt('connections', r.connections),
});

const HEALTH: readonly HealthState[] = ['connecting', 'up', 'down', 'auth-failed'];
function healthFromWire(h: string | undefined): HealthState | undefined {
  return HEALTH.includes(h as HealthState) ? (h as HealthState) : undefined;
}

export function statusToWire(s: StatusResponse): Wire.StatusResponse {
  const lr = s.lastReconcile;
  return {
    state: stateToWire(s.state),
    ...opt('configPath', s.configPath),
    ...opt(
      'lastReconcile',
      lr
        ? { at: lr.at, outcome: lr.outcome, durationMs: lr.durationMs, ...opt('error', lr.error) }
        : undefined,
    ),
    objects: s.objects.map((o) => ({ kind: o.kind, id: o.id })),
    tunnels: s.tunnels.map(tunnelToWire),
    ...opt('confirmDeadline', s.confirmDeadline),
    ...opt('placement', s.placement ? { ...s.placement } : undefined),
    rules: (s.rules ?? []).map((r) => ({ ...r })),
    ...opt(
      'config',
      s.config ? { ...s.config, sources: [...(s.config.sources ?? [])] } : undefined,
    ),
  };
}

function placementModeFromWire(
  p: Wire.Placement,
): Pick<PlacementStatus, 'mode' | 'modeReason' | 'gateMarks'> {
  const mode: PlacementStatus['mode'] =
    p.mode === 'gated' || p.mode === 'best-effort' ? p.mode : undefined;
  return {
    ...opt('mode', mode),
    ...opt('modeReason', p.modeReason),
    ...(p.gateMarks?.length ? { gateMarks: [...p.gateMarks] } : {}),
  };
}

export function statusFromWire(w: Wire.StatusResponse): StatusResponse {
  const lr = w.lastReconcile;
  return {
    state: stateFromWire(w.state),
    ...opt('configPath', w.configPath),
    ...opt(
      'lastReconcile',
      lr
        ? {
            at: lr.at,
            outcome: lr.outcome,
            durationMs: lr.durationMs,
            ...opt('error', errIn(lr.error)),
          }
        : undefined,
    ),
    objects: w.objects.map((o) => ({ kind: o.kind, id: o.id })),
    tunnels: w.tunnels.map(tunnelFromWire),
    ...opt('confirmDeadline', w.confirmDeadline),
    ...opt(
      'placement',
      w.placement
        ? {
            state: (['active', 'unavailable', 'off'].includes(w.placement.state)
              ? w.placement.state
              : 'off') as PlacementStatus['state'],
            ...opt('reason', w.placement.reason),
            execs: w.placement.execs,
            placed: w.placement.placed,
            errors: w.placement.errors,
            ...placementModeFromWire(w.placement),
          }
        : undefined,
    ),
    ...(w.rules?.length ? { rules: w.rules.map(ruleFromWire) } : {}),
    ...opt('config', w.config ? configStateFromWire(w.config) : undefined),
  };
}

function configStateFromWire(c: Wire.ConfigState): ConfigState {
  return {
    ...opt('revision', c.revision),
    valid: Boolean(c.valid),
    ...opt('error', c.error),
    ...(c.sources?.length ? { sources: [...c.sources] } : {}),
    ...opt('host', c.host),
    ...opt('lastConverged', c.lastConverged),
    lastPlanChanges: Number(c.lastPlanChanges ?? 0),
    ...opt('checkoutRevision', c.checkoutRevision),
  };
}

export function downResponseToWire(r: { removed: string[]; mutations: number }): Wire.DownResponse {
  return { removed: [...r.removed], mutations: r.mutations };
}

export function downResponseFromWire(w: Wire.DownResponse): {
  removed: string[];
  mutations: number;
} {
  return { removed: [...w.removed], mutations: w.mutations };
}

export function processesToWire(ps: ProcessInfo[]): Wire.ListProcessesResponse {
  return {
    processes: ps.map((p) => ({
      pid: p.pid,
      name: p.name,
      path: p.path,
      ...opt('rule', p.rule),
      ...opt('target', p.target),
      route: p.route,
      ppid: p.ppid ?? 0,
      cgroup: p.cgroup ?? '',
      ...opt('pending', p.pending),
    })),
  };
}

export function processesFromWire(w: Wire.ListProcessesResponse): ProcessInfo[] {
  return w.processes.map((p) => ({
    pid: p.pid,
    name: p.name,
    path: p.path,
    ...opt('rule', p.rule),
    ...opt('target', p.target),
    route: p.route,
    ...(p.ppid ? { ppid: p.ppid } : {}),
    ...(p.cgroup ? { cgroup: p.cgroup } : {}),
    ...opt('pending', p.pending),
  }));
}

// ---- events --------------------------------------------------------------------------------

export function eventToWire(e: DaemonEvent): Wire.Event {
  switch (e.type) {
    case 'reconcile-started':
      return { at: e.at, reconcileStarted: { reason: wakeToWire(e.reason) } };
    case 'reconcile-finished':
      return {
        at: e.at,
        reconcileFinished: {
          reason: wakeToWire(e.reason),
          outcome: e.outcome,
          durationMs: Math.max(0, Math.round(e.durationMs)),
          summary: { ...e.summary },
          ...opt('error', e.error),
        },
      };
    case 'drift':
      return { at: e.at, drift: { ids: [...e.ids], repaired: e.repaired } };
    case 'network-changed':
      return { at: e.at, networkChanged: { detail: e.detail } };
    case 'config-changed':
      return { at: e.at, configChanged: { path: e.path, valid: e.valid } };
    case 'tunnel':
      return {
        at: e.at,
        tunnel: {
          tunnel: e.tunnel,
          up: e.state === 'up',
          state: e.state,
          ...opt('error', e.error),
        },
      };
    case 'handshake':
      return { at: e.at, handshake: { tunnel: e.tunnel, peer: e.peer } };
    case 'confirm-pending':
      return { at: e.at, confirmPending: { deadline: e.deadline } };
    case 'reverted':
      return { at: e.at, reverted: { reason: e.reason } };
    case 'error':
      return { at: e.at, error: { kind: e.kind, message: e.message } };
    case 'traffic':
      return {
        at: e.at,
        traffic: {
          rules: e.rules.map((r) => ({ ...r })),
          tunnels: e.tunnels.map((t) => ({
            tunnel: t.tunnel,
            rxBytes: t.rxBytes,
            txBytes: t.txBytes,
            ...opt('link', t.link ? { ...t.link } : undefined),
          })),
        },
      };
  }
}

/** undefined for an event type this client does not know (a newer daemon) */
export function eventFromWire(w: Wire.Event): DaemonEvent | undefined {
  const at = w.at;
  if (w.reconcileStarted)
    return { type: 'reconcile-started', at, reason: wakeFromWire(w.reconcileStarted.reason) };
  if (w.reconcileFinished) {
    const f = w.reconcileFinished;
    return {
      type: 'reconcile-finished',
      at,
      reason: wakeFromWire(f.reason),
      outcome: f.outcome,
      durationMs: f.durationMs,
      summary: { ...(f.summary ?? ZERO_SUMMARY) },
      ...opt('error', errIn(f.error)),
    };
  }
  if (w.drift) return { type: 'drift', at, ids: [...w.drift.ids], repaired: w.drift.repaired };
  if (w.networkChanged) return { type: 'network-changed', at, detail: w.networkChanged.detail };
  if (w.configChanged)
    return { type: 'config-changed', at, path: w.configChanged.path, valid: w.configChanged.valid };
  if (w.tunnel)
    return {
      type: 'tunnel',
      at,
      tunnel: w.tunnel.tunnel,
      state: healthFromWire(w.tunnel.state) ?? (w.tunnel.up ? 'up' : 'down'),
      ...opt('error', w.tunnel.error),
    };
  if (w.handshake)
    return { type: 'handshake', at, tunnel: w.handshake.tunnel, peer: w.handshake.peer };
  if (w.confirmPending) return { type: 'confirm-pending', at, deadline: w.confirmPending.deadline };
  if (w.reverted) return { type: 'reverted', at, reason: w.reverted.reason };
  if (w.error) return { type: 'error', at, kind: w.error.kind, message: w.error.message };
  if (w.traffic)
    return {
      type: 'traffic',
      at,
      rules: (w.traffic.rules ?? []).map(ruleFromWire),
      tunnels: (w.traffic.tunnels ?? []).map((t) => ({
        tunnel: t.tunnel,
        rxBytes: t.rxBytes,
        txBytes: t.txBytes,
        ...opt('link', t.link ? linkFromWire(t.link) : undefined),
      })),
    };
  return undefined;
}

// ---- errors --------------------------------------------------------------------------------

export interface WireError {
  kind: ErrorKind;
  message: string;
  issues?: Issue[];
  hint?: string;
}

export function errorToWire(e: AwgError): { code: number; trailer: string } {
  const w: WireError = {
    kind: e.kind,
    message: e.message,
    ...(e.issues.length ? { issues: e.issues } : {}),
    ...opt('hint', e.hint),
  };
  return { code: ERROR_KINDS[e.kind].grpcCode, trailer: JSON.stringify(w) };
}

/** gRPC code → kind, for failures without our trailer (transport errors, an older daemon) */
const KIND_BY_CODE = new Map<number, ErrorKind>(
  Object.entries(ERROR_KINDS).map(([k, v]) => [v.grpcCode, k as ErrorKind]),
);

export function errorFromWire(
  code: number,
  details: string,
  trailer: string | undefined,
): AwgError {
  if (trailer) {
    try {
      const w = JSON.parse(trailer) as WireError;
      if (w && typeof w.kind === 'string' && w.kind in ERROR_KINDS)
        return new AwgError(w.kind, w.message, {
          issues: w.issues ?? [],
          ...(w.hint ? { hint: w.hint } : {}),
        });
    } catch {
      /* fall through to the status code */
    }
  }
  return new AwgError(KIND_BY_CODE.get(code) ?? 'driver', details || `gRPC status ${code}`);
}

// ---- Exec ----------------------------------------------------------------------------------

export function execRequestToWire(c: ExecChoice): Wire.ExecRequest {
  return 'tunnel' in c ? { tunnel: c.tunnel } : 'rule' in c ? { rule: c.rule } : { direct: true };
}

export function execRequestFromWire(w: Wire.ExecRequest): ExecChoice {
  if (w.choice === 'tunnel' && w.tunnel) return { tunnel: w.tunnel };
  if (w.choice === 'rule' && w.rule) return { rule: w.rule };
  if (w.choice === 'direct' && w.direct) return { direct: true };
  throw new AwgError(
    'invalid-config',
    'Exec: give exactly one of a tunnel name, direct or a rule name',
  );
}
