/**
 * The daemon's runtime limits (`awg limit`): the book of limited processes (limit-book.ts)
 * and what the daemon does with it around its runs. A limit is set or cleared, then a run
 * shapes it (undone when that run fails); before each run the limits whose processes all
 * exited leave, after a good one the limits whose cgroup is gone get a new one. Also what
 * status, ListProcesses and Top say of them. A failure of this bookkeeping is reported as an
 * `error` event, never the end of a run.
 */
import { AwgError, toAwgError } from '../errors.js';
import { MAX_LIMITS } from '../config/rate.js';
import type { Config } from '../config/schema.js';
import type { Prepared } from '../pipeline/prepare.js';
import type { PerApp } from '../procs/list.js';
import type { StateStore } from '../util/state.js';
import type { ReadResult, Source } from './config-follower.js';
import type {
  DaemonEvent,
  LimitCaller,
  LimitInfo,
  LimitRequest,
  LimitResponse,
  ProcessInfo,
} from './core.js';
import { LimitBook, type LimitRates } from './limit-book.js';
import type { LimitSystem } from './limit-system.js';
import { isConverged, type RunOutcome } from './runs.js';

export interface LimitsHostOptions {
  state: StateStore;
  /** /proc and the cgroup file system (limit-system.ts) */
  system: () => LimitSystem;
  emit: (e: DaemonEvent) => void;
  /** a limit may have emptied, or got a new cgroup: wake the loop (`limit`) */
  wake: () => void;
  /** the placer has placed by the last run's rules (app-routing.ts) */
  placed: () => Promise<void>;
  /** the config followed: its file and its last good read */
  followed: () => { file: string | undefined; good: Source | undefined };
  /** read `file` anew (it takes the runtime limits as they are now) */
  read: (file: string) => Promise<ReadResult>;
  /** one run toward `p`, on the daemon's queue (the caller holds it) */
  reconcile: (p: Prepared) => Promise<RunOutcome>;
}

const now = () => new Date().toISOString();

export class LimitsHost {
  private readonly book: LimitBook;

  constructor(private readonly o: LimitsHostOptions) {
    this.book = new LimitBook({
      state: o.state,
      system: o.system,
      selfPid: process.pid,
      emit: o.emit,
      onMaybeEmpty: () => o.wake(),
    });
  }

  /** the limits every run of `config` shapes (BuildOptions.runtimeLimits) */
  forRun(config: Pick<Config, 'rules' | 'tunnels'>, cgroupRoot: string) {
    return this.book.forRun(config, cgroupRoot);
  }

  start(): void {
    this.guard(() => this.book.start());
  }

  /** `awg down` (or a revert to nothing): no limit is kept */
  forget(): void {
    this.book.forget();
  }

  close(): void {
    this.book.close();
  }

  /** runtime limits need cgroups: throws `unsupported` elsewhere */
  supported(perApp: PerApp | undefined): void {
    if (perApp !== 'cgroup')
      throw new AwgError(
        'unsupported',
        'runtime limits (awg limit) need cgroups: Linux only; on macOS limit a rule with `limit:` in the config',
      );
  }

  /**
   * `awg limit`: set, change or clear a process's runtime limit, then run toward the config
   * with it (on the daemon's queue: the caller holds it). A limit the run could not apply (the
   * model refused it: more than 32 limits; or the run failed) is undone and the error thrown;
   * a cleared limit stays cleared and a failed run is reported (the loop retries).
   */
  async change(req: LimitRequest, caller: LimitCaller): Promise<LimitResponse> {
    const { good, file } = this.o.followed();
    if (!good || !file)
      throw new AwgError(
        'invalid-config',
        'no config is applied: a runtime limit is shaped on the devices of the applied config (run `awg apply -f CONFIG` first)',
      );
    const change = req.clear
      ? this.book.clear(req.pid, caller)
      : this.book.set(req, caller, good.prepared.claims.cgroupRoot);
    const answer = (changed: boolean): LimitResponse => {
      const limit = this.book.list().find((l) => l.pid === req.pid);
      return { ...(limit ? { limit } : {}), changed };
    };
    if (!change.changed) return answer(false);
    const what = req.clear
      ? `clearing the limit of process ${req.pid}`
      : `the limit of process ${req.pid}`;
    const r = await this.o.read(file);
    if (r.ok && !req.clear && this.book.isUnshaped(req.pid)) {
      change.undo();
      throw new AwgError(
        'invalid-config',
        `${what}: at most ${MAX_LIMITS} limits can be in force at once, the config's and the runtime ones together; clear one first (awg limit --list)`,
      );
    }
    if (!r.ok) {
      change.undo();
      throw new AwgError(r.error.kind, `${what}: ${r.error.message}`, {
        ...(r.error.issues ? { issues: r.error.issues } : {}),
      });
    }
    const res = await this.o.reconcile(r.prepared);
    if (!isConverged(res.outcome)) {
      change.undo();
      const e = res.error ?? new AwgError('driver', `the run ended ${res.outcome}`);
      throw new AwgError(
        e.kind,
        req.clear
          ? `the limit of process ${req.pid} is cleared, but the run that removes its shaping ended ${res.outcome}: ${e.message} (the daemon retries)`
          : `the limit of process ${req.pid} is not set: the run that applies it ended ${res.outcome}: ${e.message}`,
      );
    }
    return answer(true);
  }

  /** the limits in force (status, `awg limit --list`) */
  list(): LimitInfo[] {
    return this.book.size ? (this.guard(() => this.book.list()) ?? []) : [];
  }

  /** ListProcesses: each process with its limit, if it has one */
  annotate(list: ProcessInfo[]): ProcessInfo[] {
    if (!this.book.size) return list;
    return list.map((x) => {
      const l = x.cgroup === undefined ? undefined : this.book.limitOf(x.cgroup);
      return l
        ? {
            ...x,
            limit: {
              pid: l.pid,
              ...(l.upload !== undefined ? { upload: l.upload } : {}),
              ...(l.download !== undefined ? { download: l.download } : {}),
            },
          }
        : x;
    });
  }

  /** Top's context: the limits' members, read once per reading */
  topContext(): { limitOf?: (pid: number) => LimitRates | undefined } {
    const limited = this.book.size ? this.guard(() => this.book.members()) : undefined;
    return limited?.size ? { limitOf: (pid: number) => limited.get(pid) } : {};
  }

  /** before a run: limits whose processes all exited leave (the run then removes their classes) */
  expire(): void {
    if (this.book.size) this.guard(() => this.book.expire());
  }

  /**
   * After a good run: limits whose cgroup is gone while their process lives get a new one once
   * the placer has placed by this run's rules (it would move them again otherwise); a run then
   * shapes them.
   */
  async rehome(cgroupRoot: string): Promise<void> {
    if (!this.book.size) return;
    await this.o.placed();
    if (this.guard(() => this.book.rehome(cgroupRoot))) this.o.wake();
  }

  /** a failure of the runtime limits' bookkeeping is reported, never the end of a run */
  private guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      const err = toAwgError(e);
      this.o.emit({
        type: 'error',
        at: now(),
        kind: err.kind,
        message: `runtime limits: ${err.message}`,
      });
      return undefined;
    }
  }
}
