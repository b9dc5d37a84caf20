/**
 * The records of the runtime limits (limit-book.ts): their persisted shape in the state
 * directory and its checks, the rate checks of a request, and the cgroups limits may sit in
 * or be read from (used by `awg top` as well as by the book).
 */
import { AwgError } from '../errors.js';
import { MAX_RATE, MIN_RATE, formatRate } from '../config/rate.js';
import type { Config } from '../config/schema.js';
import { ruleName } from '../model/match.js';
import { EXEC_CGROUP_PREFIX } from '../procs/cgroups.js';
import { isObject } from '../util/shape.js';
import { checkedRecord, type StateStore } from '../util/state.js';
import type { LimitRequest } from './core.js';
import type { LimitSystem } from './limit-system.js';

/** the state directory's record of the limits */
export const LIMITS_STATE_KEY = 'limits';

export interface LimitRecord {
  pid: number;
  /** the process's identity: a reused pid matches neither (resources/engine/process-identity.ts) */
  bootId: string;
  startTime: string;
  /** its cgroup below the v2 mount */
  group: string;
  /** bit/s */
  upload?: number;
  download?: number;
  /** the process's uid when it was limited */
  uid: number;
  /** set or last changed by root: only root may change or clear it */
  byRoot: boolean;
  since: string;
  /** clock ticks since boot when it was set: a process started later in its cgroup was born there */
  sinceTicks?: number;
  name: string;
  path: string;
  /** the cgroup outside our subtree the process came from: where clear puts it back */
  from?: string;
}

export interface LimitsRecord {
  version: 1;
  limits: LimitRecord[];
}

const isRate = (v: unknown) =>
  v === undefined || (typeof v === 'number' && Number.isSafeInteger(v));
const isLimitRecord = (r: unknown): r is LimitRecord =>
  isObject(r) &&
  Number.isSafeInteger(r.pid) &&
  typeof r.bootId === 'string' &&
  typeof r.startTime === 'string' &&
  typeof r.group === 'string' &&
  isRate(r.upload) &&
  isRate(r.download) &&
  Number.isSafeInteger(r.uid) &&
  typeof r.byRoot === 'boolean' &&
  typeof r.since === 'string' &&
  (r.sinceTicks === undefined || Number.isSafeInteger(r.sinceTicks)) &&
  typeof r.name === 'string' &&
  typeof r.path === 'string' &&
  (r.from === undefined || typeof r.from === 'string');
export const isLimitsRecord = (r: unknown): r is LimitsRecord =>
  isObject(r) && r.version === 1 && Array.isArray(r.limits) && r.limits.every(isLimitRecord);

export const parentOf = (group: string) => group.slice(0, group.lastIndexOf('/'));

/** The rates of a request, checked: at least one, each within the config's range. */
export function checkRates(req: Pick<LimitRequest, 'upload' | 'download'>): {
  upload?: number;
  download?: number;
} {
  if (req.upload === undefined && req.download === undefined)
    throw new AwgError('invalid-config', 'a limit needs an upload rate, a download rate or both');
  for (const [dir, v] of [
    ['upload', req.upload],
    ['download', req.download],
  ] as const) {
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < MIN_RATE || v > MAX_RATE)
      throw new AwgError(
        'invalid-config',
        `${dir} ${v} bit/s: a limit must be between ${formatRate(MIN_RATE)} and ${formatRate(MAX_RATE)}`,
      );
  }
  return {
    ...(req.upload !== undefined ? { upload: req.upload } : {}),
    ...(req.download !== undefined ? { download: req.download } : {}),
  };
}

/**
 * The cgroups of `config` a runtime limit may sit in (model/desired.ts makes them): the root,
 * each enabled rule's, each tunnel's `_exec-<tunnel>` and `_exec-direct`.
 */
export function limitParents(
  config: Pick<Config, 'rules' | 'tunnels'>,
  cgroupRoot: string,
): Set<string> {
  const out = new Set([cgroupRoot]);
  config.rules.forEach((r, i) => {
    if (r.enabled) out.add(`${cgroupRoot}/${ruleName(r, i)}`);
  });
  const tunnels = Object.keys(config.tunnels);
  for (const t of tunnels) out.add(`${cgroupRoot}/${EXEC_CGROUP_PREFIX}${t}`);
  if (tunnels.length) out.add(`${cgroupRoot}/${EXEC_CGROUP_PREFIX}direct`);
  return out;
}

/** a process's limit as the monitor shows it (bit/s) */
export interface LimitRates {
  upload?: number;
  download?: number;
}

/**
 * The processes in each limit's cgroup now, with its rates: what `awg top` shows per process
 * (one read of cgroup.procs per limit).
 */
export function limitMembers(
  records: Iterable<Pick<LimitRecord, 'group' | 'upload' | 'download'>>,
  system: Pick<LimitSystem, 'members'>,
): Map<number, LimitRates> {
  const out = new Map<number, LimitRates>();
  for (const r of records) {
    const rates = ratesOf(r);
    for (const pid of system.members(r.group)) out.set(pid, rates);
  }
  return out;
}

/** The limits a daemon keeps in `state` (read-only: `awg top --direct`); [] when none or unusable. */
export function savedLimits(state: StateStore): LimitRecord[] {
  return checkedRecord(state, LIMITS_STATE_KEY, isLimitsRecord, 'the runtime limits')?.limits ?? [];
}

export function ratesOf(r: { upload?: number; download?: number }): {
  upload?: number;
  download?: number;
} {
  return {
    ...(r.upload !== undefined ? { upload: r.upload } : {}),
    ...(r.download !== undefined ? { download: r.download } : {}),
  };
}
