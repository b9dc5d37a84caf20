/**
 * Runtime limits (`awg limit PID`, the Limit call): the processes the daemon shapes beside
 * the config, and the cgroups that carry them.
 *
 * A limit is a cgroup of its own, `<the cgroup the process sits in>/_limit-<pid>`
 * (procs/cgroups.ts), or `<root>/_limit-<pid>` for a process outside awg's subtree. The
 * process is moved there; children it forks from then on are born there (cgroup membership
 * is inherited), so the limit covers them too. Because it sits below the process's rule
 * cgroup, routing is unchanged (the firewall matches a rule's cgroup at its own level, its
 * descendants included), and the placer counts it as placed. Each run gives the limits to
 * the model (`BuildOptions.runtimeLimits`), which shapes each as a class of its own after the
 * config's (model/shaping.ts).
 *
 * Contract:
 * - set: validates the process (alive, not pid 1, not the daemon or a process it started, not
 *   a kernel thread, in the daemon's network namespace) and the caller (root any process; a
 *   socket-group member only its own uid's, never one inside a limit root set, never a limit
 *   root set); then makes the cgroup and moves the process. Rates replace the old ones
 *   exactly. `undo` puts everything back (the daemon calls it when the run that applies the
 *   limit fails).
 * - clear: the cgroup's processes go back to where the process came from (the cgroup outside
 *   our subtree it was in, while that exists) or to the cgroup the limit sits in; the cgroup
 *   is removed.
 * - A limit ends by itself when its cgroup is empty (the process and every child in it
 *   exited): `cgroup.events` is watched (inotify) and every run checks (expire()).
 * - Persisted in the state directory (`limits`, crash-safe) with the process's identity
 *   (boot id, start time): after a restart a limit whose pid now names another process is
 *   dropped, never applied to it. A limit whose cgroup is gone (a stopping daemon's teardown
 *   removed it, or the rule it sat in left the config) but whose process lives gets a new one
 *   after the next converged run (rehome): the process and the descendants that sit with it
 *   and started after the limit was set (so were born in its cgroup).
 * - `forget` (awg down): every limit ends; the teardown removes the cgroups.
 */
import { AwgError } from '../errors.js';
import { MAX_LIMITS } from '../config/rate.js';
import type { Config } from '../config/schema.js';
import type { RuntimeLimit } from '../model/shaping.js';
import { descendants } from '../procs/scan.js';
import { limitCgroupPath, splitLimit, withinCgroup } from '../procs/cgroups.js';
import type { StateStore } from '../util/state.js';
import type { DaemonEvent, LimitCaller, LimitInfo, LimitRequest } from './core.js';
import type { LimitSystem } from './limit-system.js';
import {
  checkRates,
  limitMembers,
  limitParents,
  LIMITS_STATE_KEY,
  parentOf,
  ratesOf,
  savedLimits,
  type LimitRates,
  type LimitRecord,
  type LimitsRecord,
} from './limit-records.js';

export {
  checkRates,
  limitMembers,
  limitParents,
  LIMITS_STATE_KEY,
  savedLimits,
  type LimitRates,
  type LimitRecord,
} from './limit-records.js';

export interface LimitBookOptions {
  state: StateStore;
  /** /proc and the cgroup file system (limit-system.ts); asked only once a limit is used */
  system: () => LimitSystem;
  /** the daemon's pid: it and what it started (engines, the placer) are never limited */
  selfPid: number;
  emit: (e: DaemonEvent) => void;
  /** a limit's cgroup changed (its processes may all have exited): a run should expire() */
  onMaybeEmpty: () => void;
  now?: () => Date;
}

/** what set/clear did; `undo` puts back what they changed (best effort) */
export interface LimitChange {
  record: LimitRecord | undefined;
  changed: boolean;
  undo: () => void;
}

export class LimitBook {
  private readonly records = new Map<number, LimitRecord>();
  private readonly watches = new Map<number, () => void>();
  private sys: LimitSystem | undefined;
  /** limits the last run could not give a class (no room beside the config's) */
  private unshaped = new Set<number>();

  constructor(private readonly o: LimitBookOptions) {
    for (const r of savedLimits(o.state)) this.records.set(r.pid, r);
  }

  private get system(): LimitSystem {
    return (this.sys ??= this.o.system());
  }

  get size(): number {
    return this.records.size;
  }

  /** the limit of `pid` was left out of the last run's classes for want of room (forRun) */
  isUnshaped(pid: number): boolean {
    return this.unshaped.has(pid);
  }

  /** the limits with what they hold now, in pid order */
  list(): LimitInfo[] {
    return [...this.records.values()]
      .sort((a, b) => a.pid - b.pid)
      .map((r) => ({
        pid: r.pid,
        ...(r.upload !== undefined ? { upload: r.upload } : {}),
        ...(r.download !== undefined ? { download: r.download } : {}),
        group: r.group,
        name: r.name,
        path: r.path,
        uid: r.uid,
        since: r.since,
        processes: this.countIn(r.group),
      }));
  }

  /** each limited process now (the limit's own and the children in its cgroup) with its rates */
  members(): Map<number, LimitRates> {
    return this.records.size ? limitMembers(this.records.values(), this.system) : new Map();
  }

  /** the limit a process in cgroup `procPath` (as /proc/PID/cgroup shows it) is under */
  limitOf(procPath: string): LimitRecord | undefined {
    if (!this.records.size) return undefined;
    const rel = this.system.relative(procPath);
    const pid = rel === undefined ? undefined : splitLimit(rel).limit;
    const r = pid === undefined ? undefined : this.records.get(pid);
    return r && withinCgroup(rel, r.group) ? r : undefined;
  }

  /**
   * The limits a run of `config` shapes: those whose cgroup exists and sits in a cgroup the
   * config has (limitParents). The others wait: rehome() gives them a cgroup after the run.
   */
  forRun(config: Pick<Config, 'rules' | 'tunnels'>, cgroupRoot: string): RuntimeLimit[] {
    if (!this.records.size) return [];
    const parents = limitParents(config, cgroupRoot);
    const ready = [...this.records.values()]
      .filter((r) => parents.has(parentOf(r.group)) && this.system.exists(r.group))
      // the config's limits come first: runtime limits never make a config invalid; when
      // they do not all fit, the oldest keep their classes
      .sort((a, b) => a.since.localeCompare(b.since) || a.pid - b.pid);
    const room = Math.max(0, MAX_LIMITS - config.rules.filter((r) => r.enabled && r.limit).length);
    const left = new Set(ready.slice(room).map((r) => r.pid));
    for (const pid of left)
      if (!this.unshaped.has(pid))
        this.o.emit({
          type: 'error',
          at: this.at(),
          kind: 'invalid-config',
          message: `the runtime limit of process ${pid} is not shaped: the config's limits and older runtime limits take all ${MAX_LIMITS} classes`,
        });
    this.unshaped = left;
    return ready
      .slice(0, room)
      .sort((a, b) => a.pid - b.pid)
      .map((r) => ({
        pid: r.pid,
        group: r.group,
        ...(r.upload !== undefined ? { upload: r.upload } : {}),
        ...(r.download !== undefined ? { download: r.download } : {}),
      }));
  }

  /** Set or change the limit of `req.pid` (see the contract at the top). */
  set(req: LimitRequest, caller: LimitCaller, cgroupRoot: string): LimitChange {
    const rates = checkRates(req);
    const pid = req.pid;
    const old = this.live(pid);
    if (old) {
      this.mayChange(old, caller);
      if (old.upload === rates.upload && old.download === rates.download)
        return { record: old, changed: false, undo: () => {} };
      const before = { ...old };
      const next: LimitRecord = {
        ...withoutRates(old),
        ...rates,
        byRoot: old.byRoot || caller.root,
      };
      this.records.set(pid, next);
      this.save();
      this.o.emit({ type: 'limit', at: this.at(), pid, action: 'changed', ...rates });
      return {
        record: next,
        changed: true,
        undo: () => {
          this.records.set(pid, before);
          this.save();
          this.o.emit({ type: 'limit', at: this.at(), pid, action: 'changed', ...ratesOf(before) });
        },
      };
    }
    const proc = this.checkProcess(pid, caller);
    const cur = this.system.cgroup(pid);
    if (cur === undefined)
      throw new AwgError('invalid-config', `process ${pid} has no cgroup v2 the daemon can see`);
    const inOurs = withinCgroup(cur, cgroupRoot);
    const split = inOurs ? splitLimit(cur) : { base: cgroupRoot };
    if (split.limit !== undefined) {
      const holder = this.records.get(split.limit);
      if (holder?.byRoot && !caller.root)
        throw new AwgError(
          'permission',
          `process ${pid} is under the limit root set on process ${holder.pid}; only root may limit it apart`,
        );
    }
    const group = limitCgroupPath(split.base, pid);
    if (!this.system.exists(split.base))
      throw new AwgError(
        'driver',
        `cgroup ${split.base} is missing (the next run makes it again); try again`,
      );
    this.system.mkdir(group);
    if (!this.system.move(group, pid)) {
      this.system.rmdir(group);
      throw new AwgError('invalid-config', `process ${pid} exited`);
    }
    const ticks = this.system.ticks();
    const record: LimitRecord = {
      pid,
      bootId: proc.identity.bootId,
      startTime: proc.identity.startTime,
      group,
      ...rates,
      uid: proc.uid,
      byRoot: caller.root,
      since: this.at(),
      ...(ticks !== undefined ? { sinceTicks: ticks } : {}),
      name: proc.name,
      path: proc.path,
      ...(inOurs ? {} : { from: cur }),
    };
    this.records.set(pid, record);
    this.watch(record);
    this.save();
    this.o.emit({ type: 'limit', at: this.at(), pid, action: 'added', ...rates });
    return {
      record,
      changed: true,
      undo: () => {
        this.release(record, cur);
        this.drop(record, 'failed');
      },
    };
  }

  /** Remove the limit of `pid`: its processes leave its cgroup (see the contract at the top). */
  clear(pid: number, caller: LimitCaller): LimitChange {
    const r = this.records.get(pid);
    if (!r) throw new AwgError('invalid-config', `process ${pid} has no limit`);
    this.mayChange(r, caller);
    this.release(r, r.from);
    this.drop(r, 'clear');
    return { record: undefined, changed: true, undo: () => {} };
  }

  /**
   * Drop the limits whose processes all exited: an empty cgroup (removed here), or a cgroup
   * that is gone with the process it was set on. True when one ended.
   */
  expire(): boolean {
    let ended = false;
    for (const r of [...this.records.values()]) {
      const populated = this.system.populated(r.group);
      if (populated === true) continue;
      if (populated === undefined && this.alive(r)) continue; // rehome() makes it again
      if (populated === false) this.system.rmdir(r.group);
      this.drop(r, 'exited');
      ended = true;
    }
    return ended;
  }

  /**
   * After a converged run (its rule cgroups exist, the placer has placed): a limit whose
   * cgroup is gone while its process lives gets a new one below where the process sits now,
   * with the descendants that sit with it. True when one did: a run should follow.
   */
  rehome(cgroupRoot: string): boolean {
    let again = false;
    for (const r of [...this.records.values()]) {
      if (this.system.exists(r.group)) continue;
      if (!this.alive(r)) {
        this.drop(r, 'exited');
        continue;
      }
      const cur = this.system.cgroup(r.pid);
      if (cur === undefined) continue;
      const inOurs = withinCgroup(cur, cgroupRoot);
      const base = inOurs ? splitLimit(cur).base : cgroupRoot;
      if (!this.system.exists(base)) continue;
      const group = limitCgroupPath(base, r.pid);
      this.system.mkdir(group);
      // its descendants born after the limit (so born in its cgroup) that sit with it still
      const born = (p: number) => {
        const start = Number(this.system.identity(p)?.startTime);
        return r.sinceTicks !== undefined && start >= r.sinceTicks;
      };
      const mine = [...descendants(this.system.processes(), r.pid)].filter(
        (p) => p === r.pid || (this.system.cgroup(p) === cur && born(p)),
      );
      for (const p of mine) this.system.move(group, p);
      const next: LimitRecord = {
        ...r,
        group,
        ...(inOurs ? {} : { from: cur }),
      };
      if (inOurs && r.from !== undefined) next.from = r.from;
      this.records.set(r.pid, next);
      this.watch(next);
      this.o.emit({
        type: 'limit',
        at: this.at(),
        pid: r.pid,
        action: 'added',
        ...ratesOf(next),
        reason: 'restored',
      });
      again = true;
    }
    if (again) this.save();
    return again;
  }

  /** awg down: every limit ends (the teardown removes their cgroups) */
  forget(): void {
    for (const r of [...this.records.values()]) this.drop(r, 'down');
  }

  /** the daemon stops: the records stay for its next start */
  close(): void {
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
  }

  /** start watching the cgroups of the loaded limits (the daemon starts) */
  start(): void {
    for (const r of this.records.values()) this.watch(r);
  }

  // ---- internals ---------------------------------------------------------------------

  private at(): string {
    return (this.o.now?.() ?? new Date()).toISOString();
  }

  /** the record of `pid` when it still names that process (a stale one is dropped) */
  private live(pid: number): LimitRecord | undefined {
    const r = this.records.get(pid);
    if (!r || this.alive(r)) return r;
    // the pid now names another process: the old limit's cgroup keeps its own children
    if (!this.system.populated(r.group)) {
      this.system.rmdir(r.group);
      this.drop(r, 'exited');
      return undefined;
    }
    throw new AwgError(
      'conflict',
      `pid ${pid} was reused: the limit set on the process that had it still holds its children (awg limit ${pid} --clear ends it)`,
    );
  }

  private alive(r: LimitRecord): boolean {
    const id = this.system.identity(r.pid);
    return id !== undefined && id.bootId === r.bootId && id.startTime === r.startTime;
  }

  private mayChange(r: LimitRecord, caller: LimitCaller): void {
    if (caller.root) return;
    if (r.byRoot)
      throw new AwgError(
        'permission',
        `the limit of process ${r.pid} was set by root; only root may change or clear it`,
      );
    if (r.uid !== caller.uid)
      throw new AwgError(
        'permission',
        `process ${r.pid} belongs to uid ${r.uid}; a socket-group member may limit only its own processes (uid ${caller.uid})`,
      );
  }

  private checkProcess(
    pid: number,
    caller: LimitCaller,
  ): { identity: { bootId: string; startTime: string }; uid: number; name: string; path: string } {
    if (!Number.isSafeInteger(pid) || pid <= 0)
      throw new AwgError('invalid-config', `${pid} is not a process id`);
    if (pid === 1)
      throw new AwgError('invalid-config', 'pid 1 is the init process; awg does not limit it');
    const identity = this.system.identity(pid);
    if (!identity) throw new AwgError('invalid-config', `there is no process ${pid}`);
    const path = this.system.exe(pid);
    if (path === undefined)
      throw new AwgError(
        'invalid-config',
        `process ${pid} is a kernel thread (it has no program and no sockets of its own to limit)`,
      );
    const procs = this.system.processes();
    if (descendants(procs, this.o.selfPid).has(pid))
      throw new AwgError(
        'invalid-config',
        `process ${pid} is awg's own (the daemon or a process it started: an engine, the placer); limit a tunnel with \`limit:\` in the config instead`,
      );
    const ns = this.system.netns(pid);
    if (ns === undefined || ns !== this.system.netns('self'))
      throw new AwgError(
        'invalid-config',
        `process ${pid} runs in another network namespace than the daemon; awg shapes the devices of its own namespace only`,
      );
    const uids = this.system.uids(pid);
    if (!uids) throw new AwgError('invalid-config', `there is no process ${pid}`);
    if (!caller.root && (uids.real !== caller.uid || uids.effective !== caller.uid))
      throw new AwgError(
        'permission',
        `process ${pid} belongs to uid ${uids.real === uids.effective ? uids.real : `${uids.real} (effective ${uids.effective})`}; a socket-group member may limit only its own processes (uid ${caller.uid})`,
      );
    return { identity, uid: uids.real, name: this.system.comm(pid) ?? '', path };
  }

  /** the cgroup's processes leave it (for `to` while it exists outside ours, else its parent); then it goes */
  private release(r: LimitRecord, to: string | undefined): void {
    const parent = parentOf(r.group);
    const target = to !== undefined && this.system.exists(to) ? to : parent;
    for (const p of this.system.members(r.group)) {
      // a cgroup that no longer takes processes (it gained controllers or children): the parent
      if (target !== parent) {
        try {
          if (this.system.move(target, p)) continue;
        } catch {
          /* below */
        }
      }
      this.system.move(parent, p);
    }
    // still busy (a child forked into it meanwhile): the run's cgroup driver moves the rest and removes it
    this.system.rmdir(r.group);
  }

  private drop(r: LimitRecord, reason: 'clear' | 'exited' | 'down' | 'failed'): void {
    this.records.delete(r.pid);
    this.watches.get(r.pid)?.();
    this.watches.delete(r.pid);
    this.save();
    this.o.emit({
      type: 'limit',
      at: this.at(),
      pid: r.pid,
      action: 'removed',
      ...ratesOf(r),
      reason,
    });
  }

  private watch(r: LimitRecord): void {
    this.watches.get(r.pid)?.();
    this.watches.set(
      r.pid,
      this.system.watch(r.group, () => {
        if (this.system.populated(r.group) !== true) this.o.onMaybeEmpty();
      }),
    );
  }

  private countIn(group: string): number {
    // the cgroup itself; a limit's cgroup has no children of its own
    return this.system.members(group).length;
  }

  private save(): void {
    if (!this.records.size) return this.o.state.delete(LIMITS_STATE_KEY);
    const out: LimitsRecord = {
      version: 1,
      limits: [...this.records.values()].sort((a, b) => a.pid - b.pid),
    };
    this.o.state.set(LIMITS_STATE_KEY, out);
  }
}

function withoutRates(r: LimitRecord): Omit<LimitRecord, 'upload' | 'download'> {
  const { upload: _u, download: _d, ...rest } = r;
  return rest;
}
