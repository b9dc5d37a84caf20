/**
 * The daemon's events on the wire (Watch): one member of the Event oneof per DaemonEvent
 * type. A client skips an event type it does not know (a newer daemon's). Pure.
 */
import type { DaemonEvent, LinkTraffic, TunnelTraffic } from '../core.js';
import { LIMIT_ACTIONS, ROLLOUT_EVENT_STATES, WAKE_REASONS } from '../names.js';
import { errIn, opt, protoEnum } from './common.js';
import type { Event__Output } from './generated/awg/v1/Event.js';
import { ZERO_SUMMARY } from './plan.js';
import { listFetchedFromWire, listFetchedToWire } from './lists.js';
import {
  downReasonFromWire,
  healthFromWire,
  linkTraffic,
  ruleCounterToWire,
  ruleCounterFromWire,
} from './status.js';

const WAKE = protoEnum('WAKE_REASON', WAKE_REASONS);
export const wakeToWire = WAKE.toWire;
export const wakeFromWire = WAKE.fromWire;

/** a tunnel's counters in a traffic event, the same copy both ways */
const tunnelTraffic = (
  t: Omit<TunnelTraffic, 'link'> & { link?: LinkTraffic | null },
): TunnelTraffic => ({
  tunnel: t.tunnel,
  rxBytes: t.rxBytes,
  txBytes: t.txBytes,
  ...opt('link', t.link ? linkTraffic(t.link) : undefined),
});

const PROFILE_REASONS = ['handshake', 'no-data', 'network'] as const;
const STICKY_REASONS = ['network', 'config', 'apply', 'rule'] as const;

export function eventToWire(e: DaemonEvent, id = ''): Event__Output {
  return { ...eventBody(e), id };
}

function eventBody(e: DaemonEvent): Omit<Event__Output, 'id'> {
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
          ...opt('reason', e.reason),
          ...opt('lastUp', e.lastUp),
        },
      };
    case 'handshake':
      return { at: e.at, handshake: { tunnel: e.tunnel, peer: e.peer } };
    case 'profile':
      return { at: e.at, profile: { tunnel: e.tunnel, from: e.from, to: e.to, reason: e.reason } };
    case 'sticky':
      return {
        at: e.at,
        sticky: {
          rule: e.rule,
          tunnel: e.tunnel,
          held: e.held,
          since: e.since,
          ...opt('reason', e.reason),
        },
      };
    case 'confirm-pending':
      return { at: e.at, confirmPending: { deadline: e.deadline } };
    case 'reverted':
      return { at: e.at, reverted: { reason: e.reason } };
    case 'revision-rejected':
      return {
        at: e.at,
        revisionRejected: {
          revision: e.revision,
          reason: e.reason,
          ...opt('revertedTo', e.revertedTo),
        },
      };
    case 'error':
      return { at: e.at, error: { kind: e.kind, message: e.message } };
    case 'traffic':
      return {
        at: e.at,
        traffic: {
          rules: e.rules.map(ruleCounterToWire),
          tunnels: e.tunnels.map(tunnelTraffic),
        },
      };
    case 'gap':
      return { at: e.at, gap: { after: e.after, reason: e.reason } };
    case 'list': {
      const { type: _t, at, ...rest } = e;
      return { at, list: listFetchedToWire(rest) };
    }
    case 'rollout':
      return {
        at: e.at,
        rollout: {
          revision: e.revision,
          state: e.state,
          ...opt('wave', e.wave),
          ...opt('dueAt', e.dueAt),
          message: e.message,
        },
      };
    case 'limit':
      return {
        at: e.at,
        limit: {
          pid: e.pid,
          action: e.action,
          ...opt('upload', e.upload),
          ...opt('download', e.download),
          ...opt('reason', e.reason),
        },
      };
  }
}

/** undefined for an event type this client does not know (a newer daemon) */
export function eventFromWire(w: Event__Output): DaemonEvent | undefined {
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
      ...opt('reason', downReasonFromWire(w.tunnel.reason)),
      ...opt('lastUp', w.tunnel.lastUp),
    };
  if (w.handshake)
    return { type: 'handshake', at, tunnel: w.handshake.tunnel, peer: w.handshake.peer };
  if (w.confirmPending) return { type: 'confirm-pending', at, deadline: w.confirmPending.deadline };
  if (w.reverted) return { type: 'reverted', at, reason: w.reverted.reason };
  if (w.revisionRejected) {
    const r = w.revisionRejected;
    return {
      type: 'revision-rejected',
      at,
      revision: r.revision,
      reason: r.reason,
      ...opt('revertedTo', r.revertedTo),
    };
  }
  if (w.error) return { type: 'error', at, kind: w.error.kind, message: w.error.message };
  if (w.gap) return { type: 'gap', at, after: w.gap.after, reason: w.gap.reason };
  if (w.traffic)
    return {
      type: 'traffic',
      at,
      rules: (w.traffic.rules ?? []).map(ruleCounterFromWire),
      tunnels: (w.traffic.tunnels ?? []).map(tunnelTraffic),
    };
  if (w.list) return listFetchedFromWire(w.list, at);
  if (w.profile) {
    const reason = PROFILE_REASONS.find((r) => r === w.profile?.reason);
    // a reason this client does not know (a newer daemon's): skipped like an unknown event
    if (!reason) return undefined;
    const { tunnel, from, to } = w.profile;
    return { type: 'profile', at, tunnel, from, to, reason };
  }
  if (w.sticky) {
    const { rule, tunnel, held, since } = w.sticky;
    const reason = STICKY_REASONS.find((r) => r === w.sticky?.reason);
    return { type: 'sticky', at, rule, tunnel, held, since, ...opt('reason', reason) };
  }
  if (w.rollout) {
    const state = ROLLOUT_EVENT_STATES.find((x) => x === w.rollout?.state);
    // a state this client does not know (a newer daemon's): skipped like an unknown event
    if (!state) return undefined;
    const r = w.rollout;
    return {
      type: 'rollout',
      at,
      revision: r.revision,
      state,
      ...opt('wave', r.wave),
      ...opt('dueAt', r.dueAt),
      message: r.message,
    };
  }
  if (w.limit) {
    const action = LIMIT_ACTIONS.find((a) => a === w.limit?.action);
    // an action this client does not know (a newer daemon's): skipped like an unknown event
    if (!action) return undefined;
    return {
      type: 'limit',
      at,
      pid: w.limit.pid,
      action,
      ...opt('upload', w.limit.upload),
      ...opt('download', w.limit.download),
      ...opt('reason', w.limit.reason),
    };
  }
  return undefined;
}
