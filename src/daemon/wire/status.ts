/**
 * What the daemon shows on the wire: Status (its state, tunnels, placement, rule counters,
 * the config it follows, the runtime limits) and ListProcesses. The tunnel, rule and link counters are copied by
 * one function each, used in both directions: the proto's messages and the domain's types
 * have the same fields under the same names. Pure.
 */
import type {
  ConfigState,
  LinkTraffic,
  PlacementStatus,
  ProcessInfo,
  RuleCounter,
  StatusResponse,
  TunnelStatus,
} from '../core.js';
import {
  DAEMON_STATES,
  DOWN_REASONS,
  PLACEMENT_MODES,
  PLACEMENT_STATES,
  ROLLOUT_HOLDS,
  TUNNEL_HEALTH,
} from '../names.js';
import type { HealthState } from '../tunnel-health.js';
import { errIn, opt, protoEnum } from './common.js';
import { limitRef, processLimit } from './limits.js';
import { urlListFromWire, urlListToWire } from './lists.js';
import type { ConfigState__Output } from './generated/awg/v1/ConfigState.js';
import type { DnsStub__Output } from './generated/awg/v1/DnsStub.js';
import type { HostCondition__Output } from './generated/awg/v1/HostCondition.js';
import type { UpdateStatus__Output } from './generated/awg/v1/UpdateStatus.js';
import type { ListProcessesResponse__Output } from './generated/awg/v1/ListProcessesResponse.js';
import type { Peer__Output } from './generated/awg/v1/Peer.js';
import type { Placement__Output } from './generated/awg/v1/Placement.js';
import type { StatusResponse__Output } from './generated/awg/v1/StatusResponse.js';
import type { RuleCounter__Output } from './generated/awg/v1/RuleCounter.js';
import type { RuleSet__Output } from './generated/awg/v1/RuleSet.js';
import type { Tunnel__Output } from './generated/awg/v1/Tunnel.js';
import type { ProfileSwitch__Output } from './generated/awg/v1/ProfileSwitch.js';

const STATE = protoEnum('STATE', DAEMON_STATES);
export const stateToWire = STATE.toWire;
export const stateFromWire = STATE.fromWire;

// ---- counters and tunnels (the same copy both ways) ---------------------------------------

export const linkTraffic = (l: LinkTraffic): LinkTraffic => ({
  rxPackets: l.rxPackets,
  rxBytes: l.rxBytes,
  txPackets: l.txPackets,
  txBytes: l.txBytes,
});

// The copies are typed as both sides' shapes: `opt` leaves an unset optional field out, so
// the copy also fits the proto's exact optional fields.
type RuleFields = Omit<RuleCounter, 'sets'>;
const ruleFields = (r: RuleFields): RuleFields & Omit<RuleCounter__Output, 'sets'> => ({
  name: r.name,
  target: r.target,
  route: r.route,
  txPackets: r.txPackets,
  txBytes: r.txBytes,
  rxPackets: r.rxPackets,
  rxBytes: r.rxBytes,
  ...opt('connections', r.connections),
  ...opt('learned', r.learned),
  ...opt('learnedNames', r.learnedNames),
});

type RuleSet = NonNullable<RuleCounter['sets']>[number];
const SET_KINDS = ['static', 'learned'] as const;
const ruleSet = (s: RuleSet): RuleSet & RuleSet__Output => ({
  name: s.name,
  kind: s.kind,
  ...opt('elements', s.elements),
  packets: s.packets,
  bytes: s.bytes,
});

export const ruleCounterToWire = (r: RuleCounter): RuleCounter__Output => ({
  ...ruleFields(r),
  sets: (r.sets ?? []).map(ruleSet),
});

/** a set of a kind this side does not know (a newer daemon's) is left out */
export const ruleCounterFromWire = (w: RuleCounter__Output): RuleCounter => {
  const sets = (w.sets ?? []).flatMap((s) => {
    const kind = oneOf(SET_KINDS, s.kind);
    return kind ? [ruleSet({ ...s, kind })] : [];
  });
  return { ...ruleFields(w), ...(sets.length ? { sets } : {}) };
};

type Peer = TunnelStatus['peers'][number];
const peer = (p: Peer): Peer & Peer__Output => ({
  publicKey: p.publicKey,
  ...opt('endpoint', p.endpoint),
  ...opt('persistentKeepalive', p.persistentKeepalive),
  ...opt('lastHandshakeAgeSec', p.lastHandshakeAgeSec),
  rxBytes: p.rxBytes,
  txBytes: p.txBytes,
});

/** the fields a tunnel's line has alike on both sides */
type TunnelFields = Omit<
  TunnelStatus,
  'health' | 'reason' | 'linkTraffic' | 'profileSwitches' | 'heldRules' | 'probe'
>;

/** A tunnel's line with `health` as the receiving side spells it (the wire: '' for unknown). */
function tunnel<H extends object>(
  t: TunnelFields,
  health: H,
  link: LinkTraffic | null | undefined,
): TunnelFields &
  Omit<
    Tunnel__Output,
    'health' | 'reason' | 'linkTraffic' | 'profileSwitches' | 'heldRules' | 'probe'
  > &
  H & { linkTraffic?: LinkTraffic } {
  return {
    name: t.name,
    type: t.type,
    ...opt('link', t.link),
    up: t.up,
    ...opt('lastHandshakeAgeSec', t.lastHandshakeAgeSec),
    rxBytes: t.rxBytes,
    txBytes: t.txBytes,
    peers: t.peers.map(peer),
    ...health,
    ...opt('error', t.error),
    ...opt('since', t.since),
    ...opt('lastUp', t.lastUp),
    ...opt('profile', t.profile),
    ...opt('connectionsActive', t.connectionsActive),
    ...opt('connectionsTotal', t.connectionsTotal),
    ...opt('dialErrors', t.dialErrors),
    ...opt('linkTraffic', link ? linkTraffic(link) : undefined),
  };
}

/** `w` when it is one of `values` (a value this side does not know reads as none) */
function oneOf<V extends string>(values: readonly V[], w: string | undefined): V | undefined {
  return (values as readonly string[]).includes(w ?? '') ? (w as V) : undefined;
}

/** a reason this side does not know reads as none */
export const downReasonFromWire = (r: string | undefined) => oneOf(DOWN_REASONS, r);

/** a health this side does not know reads as none (the status line then says up or down) */
export function healthFromWire(h: string | undefined): HealthState | undefined {
  return oneOf(TUNNEL_HEALTH, h);
}

const switchCopy = (s: ProfileSwitch__Output): ProfileSwitch__Output => ({
  at: s.at,
  from: s.from,
  to: s.to,
  reason: s.reason,
});

/** a tunnel's probe state, the same copy both ways */
const probeCopy = (p: {
  failures: number;
  lastFailure?: string | undefined;
  lastFailureAt?: string | undefined;
}): { failures: number; lastFailure?: string; lastFailureAt?: string } => ({
  failures: p.failures,
  ...opt('lastFailure', p.lastFailure),
  ...opt('lastFailureAt', p.lastFailureAt),
});

const tunnelToWire = (t: TunnelStatus): Tunnel__Output =>
  tunnel(
    t,
    {
      health: t.health ?? '',
      ...opt('reason', t.reason),
      profileSwitches: (t.profileSwitches ?? []).map(switchCopy),
      heldRules: (t.heldRules ?? []).map(({ rule, since }) => ({ rule, since })),
      ...opt('probe', t.probe ? probeCopy(t.probe) : undefined),
    },
    t.linkTraffic,
  );

const tunnelFromWire = (w: Tunnel__Output): TunnelStatus =>
  tunnel(
    w,
    {
      ...opt('health', healthFromWire(w.health)),
      ...opt('reason', oneOf(DOWN_REASONS, w.reason)),
      ...(w.profileSwitches.length ? { profileSwitches: w.profileSwitches.map(switchCopy) } : {}),
      ...(w.heldRules.length
        ? { heldRules: w.heldRules.map(({ rule, since }) => ({ rule, since })) }
        : {}),
      ...opt('probe', w.probe ? probeCopy(w.probe) : undefined),
    },
    w.linkTraffic,
  );

// ---- status -----------------------------------------------------------------------------------

export function statusToWire(s: StatusResponse): StatusResponse__Output {
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
    ...opt('placement', s.placement ? placementToWire(s.placement) : undefined),
    rules: (s.rules ?? []).map(ruleCounterToWire),
    ...opt('config', s.config ? configStateToWire(s.config) : undefined),
    limits: (s.limits ?? []).map(processLimit),
    ...opt('dnsStub', s.dnsStub ? dnsStub(s.dnsStub) : undefined),
    hostConditions: (s.hostConditions ?? []).map(hostConditionToWire),
    ...opt('update', s.update ? updateToWire(s.update) : undefined),
    lists: (s.lists ?? []).map(urlListToWire),
  };
}

type UpdateStatus = NonNullable<StatusResponse['update']>;

const updateToWire = (u: UpdateStatus): UpdateStatus__Output => ({
  checkedAt: u.checkedAt,
  available: u.available,
  ...opt('installed', u.installed),
  ...opt('candidate', u.candidate),
  suites: [...(u.suites ?? [])],
  ...opt('error', u.error),
});

const updateFromWire = (w: UpdateStatus__Output): UpdateStatus => ({
  checkedAt: w.checkedAt,
  available: Boolean(w.available),
  ...opt('installed', w.installed),
  ...opt('candidate', w.candidate),
  ...(w.suites?.length ? { suites: [...w.suites] } : {}),
  ...opt('error', w.error),
});

type HostCondition = NonNullable<StatusResponse['hostConditions']>[number];
const HOST_CONDITIONS = [
  'no-default-route',
  'default-route-unusable',
  'endpoint-unreachable',
] as const;

const hostConditionToWire = (h: HostCondition): HostCondition__Output => ({
  kind: h.kind,
  message: h.message,
  ...opt('family', h.family),
  reach: [...(h.reach ?? [])],
  ...opt('tunnel', h.tunnel),
  ...opt('address', h.address),
});

/** a condition of a kind this side does not know (a newer daemon's) is left out */
function hostConditionFromWire(w: HostCondition__Output): HostCondition[] {
  const kind = oneOf(HOST_CONDITIONS, w.kind);
  if (!kind) return [];
  return [
    {
      kind,
      message: w.message,
      ...opt('family', w.family),
      // a no-default-route condition always lists what direct traffic reaches, maybe nothing
      ...(w.reach.length || kind === 'no-default-route' ? { reach: [...w.reach] } : {}),
      ...opt('tunnel', w.tunnel),
      ...opt('address', w.address),
    },
  ];
}

type DnsStubStatus = NonNullable<StatusResponse['dnsStub']>;

/** the same fields both ways (uint64 counts arrive as numbers: proto-loader's `longs: Number`) */
const dnsStub = (d: DnsStubStatus | DnsStub__Output): DnsStubStatus & DnsStub__Output => ({
  port: Number(d.port),
  queries: Number(d.queries),
  answers: Number(d.answers),
  servfails: Number(d.servfails),
  upstreamTimeouts: Number(d.upstreamTimeouts),
  learnedAnswers: Number(d.learnedAnswers),
  installs: Number(d.installs),
  installFailures: Number(d.installFailures),
  elements: Number(d.elements),
  names: Number(d.names),
});

function placementToWire(p: PlacementStatus): Placement__Output {
  return {
    state: p.state,
    ...opt('reason', p.reason),
    execs: p.execs,
    placed: p.placed,
    errors: p.errors,
    ...(p.errorsByKind ? { errorsByKind: { ...p.errorsByKind } } : {}),
    ...opt('mode', p.mode),
    ...opt('modeReason', p.modeReason),
    gateMarks: [...(p.gateMarks ?? [])],
  };
}

function placementFromWire(p: Placement__Output): PlacementStatus {
  const mode = oneOf(PLACEMENT_MODES, p.mode);
  return {
    state: oneOf(PLACEMENT_STATES, p.state) ?? 'off',
    ...opt('reason', p.reason),
    execs: p.execs,
    placed: p.placed,
    errors: p.errors,
    ...(p.errorsByKind
      ? {
          errorsByKind: {
            missingCgroup: Number(p.errorsByKind.missingCgroup),
            writeFailed: Number(p.errorsByKind.writeFailed),
            gateLate: Number(p.errorsByKind.gateLate),
            gateFailed: Number(p.errorsByKind.gateFailed),
          },
        }
      : {}),
    ...opt('mode', mode),
    ...opt('modeReason', p.modeReason),
    ...(p.gateMarks?.length ? { gateMarks: [...p.gateMarks] } : {}),
  };
}

function configStateToWire(c: ConfigState): ConfigState__Output {
  return {
    ...opt('revision', c.revision),
    valid: c.valid,
    ...opt('error', c.error),
    sources: [...(c.sources ?? [])],
    ...opt('host', c.host),
    ...opt('lastConverged', c.lastConverged),
    lastPlanChanges: c.lastPlanChanges,
    ...opt('checkoutRevision', c.checkoutRevision),
    ...opt(
      'rollout',
      c.rollout
        ? {
            revision: c.rollout.revision,
            state: c.rollout.state,
            ...opt('wave', c.rollout.wave),
            ...opt('waveName', c.rollout.waveName),
            ...opt('dueAt', c.rollout.dueAt),
            message: c.rollout.message,
          }
        : undefined,
    ),
    rejected: (c.rejected ?? []).map((r) => ({ ...r })),
    ...opt('verifying', c.verifying ? { ...c.verifying } : undefined),
  };
}

function configStateFromWire(c: ConfigState__Output): ConfigState {
  return {
    ...opt('revision', c.revision),
    valid: Boolean(c.valid),
    ...opt('error', c.error),
    ...(c.sources?.length ? { sources: [...c.sources] } : {}),
    ...opt('host', c.host),
    ...opt('lastConverged', c.lastConverged),
    lastPlanChanges: Number(c.lastPlanChanges ?? 0),
    ...opt('checkoutRevision', c.checkoutRevision),
    ...(c.rejected?.length
      ? { rejected: c.rejected.map((r) => ({ revision: r.revision, reason: r.reason, at: r.at })) }
      : {}),
    ...opt(
      'verifying',
      c.verifying ? { revision: c.verifying.revision, deadline: c.verifying.deadline } : undefined,
    ),
    ...opt('rollout', c.rollout ? rolloutFromWire(c.rollout) : undefined),
  };
}

function rolloutFromWire(
  r: NonNullable<ConfigState__Output['rollout']>,
): NonNullable<ConfigState['rollout']> | undefined {
  // a hold this client does not know (a newer daemon's) is left out
  const state = ROLLOUT_HOLDS.find((x) => x === r.state);
  if (!state) return undefined;
  return {
    revision: r.revision,
    state,
    ...opt('wave', r.wave),
    ...opt('waveName', r.waveName),
    ...opt('dueAt', r.dueAt),
    message: r.message,
  };
}

export function statusFromWire(w: StatusResponse__Output): StatusResponse {
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
    ...opt('placement', w.placement ? placementFromWire(w.placement) : undefined),
    ...(w.rules?.length ? { rules: w.rules.map(ruleCounterFromWire) } : {}),
    ...opt('config', w.config ? configStateFromWire(w.config) : undefined),
    ...(w.limits?.length ? { limits: w.limits.map(processLimit) } : {}),
    ...opt('dnsStub', w.dnsStub ? dnsStub(w.dnsStub) : undefined),
    ...(w.hostConditions?.length
      ? { hostConditions: w.hostConditions.flatMap(hostConditionFromWire) }
      : {}),
    ...opt('update', w.update ? updateFromWire(w.update) : undefined),
    ...(w.lists?.length ? { lists: w.lists.flatMap(urlListFromWire) } : {}),
  };
}

// ---- processes --------------------------------------------------------------------------------

export function processesToWire(ps: ProcessInfo[]): ListProcessesResponse__Output {
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
      ...opt('limit', p.limit ? limitRef(p.limit) : undefined),
    })),
  };
}

export function processesFromWire(w: ListProcessesResponse__Output): ProcessInfo[] {
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
    ...opt('limit', p.limit ? limitRef(p.limit) : undefined),
  }));
}
