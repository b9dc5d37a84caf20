/**
 * `awg fleet status`: per revision, how many hosts applied it, hold it back (waiting for
 * their wave, or halted) and rejected it — from what the fleet already reports (docs/fleet.md
 * "Seeing a rollout"): a Prometheus scrape in the text format (a federation of the hosts'
 * /metrics), the JSON answer of a Prometheus instant query, or the observation records the
 * hosts recorded (`awg status --observed-out`, pipeline/observation.ts `rollout`). Pure.
 *
 * The series read: `awg_config_info{revision, host}` (applied), `awg_rollout_waiting{revision,
 * wave, state}` (held) with `awg_rollout_due_timestamp_seconds`, `awg_revision_rejected{rev}` (rejected; `revision` is read as well).
 * A host is named by its `host` label, else its `instance` label.
 */
import { AwgError } from '../errors.js';
import { isObject } from '../util/shape.js';
import type { ObservationRecord } from './observation.js';

export interface HostRollout {
  host: string;
  applied?: string;
  held?: { revision: string; state: 'waiting' | 'halted'; wave?: number; dueAt?: string };
  rejected: string[];
}

export interface RevisionCount {
  revision: string;
  applied: number;
  waiting: number;
  halted: number;
  rejected: number;
  /** the earliest wave due time among the hosts waiting for it (ISO 8601) */
  nextDue?: string;
}

export interface FleetStatus {
  hosts: HostRollout[];
  revisions: RevisionCount[];
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition format → samples (comments and blank lines skipped) */
export function parsePrometheusText(text: string, what: string): Sample[] {
  const out: Sample[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!m) throw new AwgError('invalid-config', `${what}:${i + 1}: not a Prometheus sample line`);
    const labels: Record<string, string> = Object.create(null) as Record<string, string>;
    const body = m[3] ?? '';
    const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;
    let k: RegExpExecArray | null;
    let at = 0;
    while (at < body.length && (k = re.exec(body))) {
      labels[k[1]!] = k[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
      at = re.lastIndex;
    }
    if (body.slice(at).trim() !== '')
      throw new AwgError('invalid-config', `${what}:${i + 1}: cannot read the labels`);
    out.push({ name: m[1]!, labels, value: Number(m[4]) });
  });
  return out;
}

/** The JSON of a Prometheus instant query (`/api/v1/query`, resultType vector) → samples */
export function parsePrometheusJson(v: unknown, what: string): Sample[] {
  const data = isObject(v) && isObject(v.data) ? v.data : undefined;
  const result = data && Array.isArray(data.result) ? data.result : undefined;
  if (!result || (isObject(v) && v.status !== undefined && v.status !== 'success'))
    throw new AwgError(
      'invalid-config',
      `${what}: not the answer of a Prometheus instant query ({"status":"success","data":{"result":[…]}})`,
    );
  return result.flatMap((r: unknown) => {
    if (!isObject(r) || !isObject(r.metric) || !Array.isArray(r.value)) return [];
    const labels: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [k, x] of Object.entries(r.metric)) if (typeof x === 'string') labels[k] = x;
    const name = labels.__name__ ?? '';
    delete labels.__name__;
    return [{ name, labels, value: Number(r.value[1]) }];
  });
}

/** series whose value is not a 0/1 flag */
const VALUED = new Set(['awg_revision_rejected', 'awg_rollout_due_timestamp_seconds']);

const hostOf = (l: Record<string, string>): string => l.host || l.instance || '';

/** samples → each host's rollout (a host appears once it reports awg_config_info) */
export function hostsFromSamples(samples: readonly Sample[]): HostRollout[] {
  const byInstance = new Map<string, HostRollout>();
  const due = new Map<string, number>();
  const get = (l: Record<string, string>): HostRollout => {
    // awg_config_info has `host`; the other series only the scrape's instance: join on it
    // (a single host's /metrics has no instance: all its series are one host)
    const key = l.instance ?? '';
    let h = byInstance.get(key);
    if (!h) byInstance.set(key, (h = { host: hostOf(l), rejected: [] }));
    if (l.host) h.host = l.host;
    return h;
  };
  for (const s of samples) {
    if (s.value !== 1 && !VALUED.has(s.name)) continue;
    if (s.name === 'awg_config_info') {
      const h = get(s.labels);
      if (s.labels.revision) h.applied = s.labels.revision;
    } else if (s.name === 'awg_rollout_waiting') {
      const state = s.labels.state === 'halted' ? 'halted' : 'waiting';
      const wave = Number(s.labels.wave);
      if (s.labels.revision)
        get(s.labels).held = {
          revision: s.labels.revision,
          state,
          ...(Number.isInteger(wave) && wave > 0 ? { wave } : {}),
        };
    } else if (s.name === 'awg_rollout_due_timestamp_seconds' && s.labels.revision) {
      due.set(`${s.labels.instance ?? ''}\0${s.labels.revision}`, s.value);
    } else if (s.name === 'awg_revision_rejected' && s.value > 0) {
      const rev = s.labels.rev ?? s.labels.revision;
      const h = get(s.labels);
      if (rev && !h.rejected.includes(rev)) h.rejected.push(rev);
    }
  }
  for (const [key, h] of byInstance) {
    const t = h.held && due.get(`${key}\0${h.held.revision}`);
    if (h.held && t && Number.isFinite(t)) h.held.dueAt = new Date(t * 1000).toISOString();
  }
  return [...byInstance.values()];
}

/** an observation record → the host's place in the rollout */
export function hostFromRecord(r: ObservationRecord): HostRollout {
  return {
    host: r.host,
    ...(r.revision ? { applied: r.revision } : {}),
    ...(r.rollout?.held ? { held: { ...r.rollout.held } } : {}),
    rejected: (r.rejected ?? []).map((x) => x.revision),
  };
}

/** the counts per revision, newest activity first: held, then applied, then rejected only */
export function fleetStatus(hosts: readonly HostRollout[]): FleetStatus {
  const revs = new Map<string, RevisionCount>();
  const order: string[] = [];
  const get = (revision: string) => {
    let r = revs.get(revision);
    if (!r) {
      revs.set(revision, (r = { revision, applied: 0, waiting: 0, halted: 0, rejected: 0 }));
      order.push(revision);
    }
    return r;
  };
  for (const h of hosts) {
    if (h.held) {
      const r = get(h.held.revision);
      if (h.held.state === 'halted') r.halted++;
      else r.waiting++;
      if (h.held.dueAt && (!r.nextDue || h.held.dueAt < r.nextDue)) r.nextDue = h.held.dueAt;
    }
  }
  for (const h of hosts) if (h.applied) get(h.applied).applied++;
  for (const h of hosts) for (const rev of new Set(h.rejected)) get(rev).rejected++;
  return {
    hosts: [...hosts].sort((a, b) => a.host.localeCompare(b.host)),
    revisions: order.map((r) => revs.get(r)!),
  };
}
