/**
 * Run bookkeeping: what the daemon remembers of its runs and what it says about them. The run
 * under way (its wake reason, and the echo window after it, when the network monitor's events
 * are our own changes coming back), the last run's verdict, what the last run observed, when
 * the host last matched the config; and each run's events: reconcile-started, drift,
 * reconcile-finished and error. Once runs settle, the process gives memory back.
 */
import { AwgError, toAwgError } from '../errors.js';
import type { Plan } from '../model/change.js';
import { toPlanDocument } from '../model/plan-document.js';
import type { AnyResource, ObservedState } from '../model/resources.js';
import { settleNow } from '../native/settle.js';
import type { ReconcileContext } from '../reconciler/machine.js';
import type { Reporter } from '../util/reporter.js';
import type { ApplyResponse, DaemonEvent, WakeReason } from './core.js';

export interface LastRun {
  at: string;
  outcome: string;
  durationMs: number;
  error?: { kind: string; message: string };
  reason: WakeReason;
}

/** what a run ended with (the loop classifies it; an API apply answers with it) */
export interface RunOutcome {
  outcome: string;
  plan?: Plan | undefined;
  error?: AwgError | undefined;
}

/** events that fall inside this window after a run are echoes of our own changes */
export const ECHO_MS = 750;
/** how long after a run ends (and no other began) the process settles (settleLater) */
const SETTLE_AFTER_MS = 3000;
/** the plan of a run that did not get to plan */
export const EMPTY_PLAN: Plan = { changes: [], foreign: [], warnings: [] };
const NO_CHANGES = { create: 0, update: 0, replace: 0, delete: 0, drift: 0, config: 0 };

const now = () => new Date().toISOString();
export const errOf = (e: AwgError) => ({ kind: e.kind, message: e.message });

/** An API apply's answer: how its run ended, its plan, the mutations it made. */
export function applyResponse(file: string, r: RunOutcome, mutations: number): ApplyResponse {
  return {
    outcome: r.outcome,
    plan: toPlanDocument(r.plan ?? EMPTY_PLAN, file),
    mutations,
    error: r.error && errOf(r.error),
  };
}

/** the outcomes after which the host matches the config */
export const isConverged = (outcome: string | undefined): boolean =>
  outcome === 'converged' || outcome === 'unchanged';

export class RunBook {
  private last: LastRun | undefined;
  private seen: ObservedState | undefined;
  private converged: string | undefined;
  private planChanges = 0;
  private busy = false;
  private reason: WakeReason | undefined;
  private t0 = 0;
  private echoUntil = 0;
  private settleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      emit: (e: DaemonEvent) => void;
      /** the daemon's log (restored objects after a stop that kept the kill switch) */
      reporter: Reporter;
      /** give memory back once runs settle (default native/settle.ts settleNow) */
      settle?: () => void;
      /** how long after a run ends (and no other began) memory settles (default 3 s) */
      settleAfterMs?: number;
    },
  ) {}

  get lastRun(): LastRun | undefined {
    return this.last;
  }
  /** what the last run or teardown observed */
  get observed(): ObservedState | undefined {
    return this.seen;
  }
  /** end of the last run that left the host matching the config */
  get lastConverged(): string | undefined {
    return this.converged;
  }
  /** changes the last run's plan held */
  get lastPlanChanges(): number {
    return this.planChanges;
  }
  /** a run or a teardown is under way */
  get running(): boolean {
    return this.busy;
  }
  /** why the work under way was started; a teardown (stop, down) has no reason of its own: 'api' */
  get runningFor(): WakeReason | undefined {
    return this.busy ? (this.reason ?? 'api') : undefined;
  }
  /** true while a change the network monitor reports may be our own */
  isEcho(): boolean {
    return this.busy || Date.now() < this.echoUntil;
  }

  /** A run starts (reconcile-started). */
  begin(reason: WakeReason): void {
    this.t0 = Date.now();
    this.busy = true;
    this.reason = reason;
    this.o.emit({ type: 'reconcile-started', at: now(), reason });
  }

  /** The run under way ended (either way): the echo window opens; memory settles later. */
  end(): void {
    this.busy = false;
    this.reason = undefined;
    this.echoUntil = Date.now() + ECHO_MS;
    this.settleLater();
  }

  /**
   * A teardown (stop, down, a revert to nothing): not a run, no events, but our changes echo
   * all the same, and what it leaves is what status shows.
   */
  async teardown<T extends { after: AnyResource[] }>(fn: () => Promise<T>): Promise<T> {
    this.busy = true;
    try {
      const r = await fn();
      this.seen = { resources: r.after, foreign: [] };
      return r;
    } finally {
      this.busy = false;
      this.echoUntil = Date.now() + ECHO_MS;
    }
  }

  /** No settling after this (the daemon stops). */
  close(): void {
    clearTimeout(this.settleTimer);
  }

  /**
   * A run's transient native memory (child processes' output, the JSON of `ip -j`/`nft -j`,
   * netlink dumps) is freed when it ends, but glibc keeps the pages: once runs settle, give
   * them back (1.5–6 MiB of an idle daemon's RSS, bench/RESULTS.md Step 10), after a
   * collection unless a tunnel is busy (native/settle.ts).
   */
  private settleLater(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      (this.o.settle ?? settleNow)();
    }, this.o.settleAfterMs ?? SETTLE_AFTER_MS);
    this.settleTimer.unref();
  }

  /**
   * The run converged, or did not: record it and say so. `restoring`: the ids a stopping
   * daemon removed on purpose (AppliedStore.stoppedRemoved), restored now, not drift.
   */
  finished(
    ctx: Pick<ReconcileContext, 'outcome' | 'plan' | 'error' | 'before' | 'after'>,
    restoring: ReadonlySet<string>,
    file: string,
  ): RunOutcome {
    const reason = this.reason ?? 'api';
    const outcome = ctx.outcome ?? 'failed';
    const ok = isConverged(outcome);
    this.seen = ctx.after ?? ctx.before;
    const missing = (ctx.plan?.changes ?? [])
      .filter((c) => c.action !== 'noop' && c.cause === 'drift')
      .map((c) => c.id);
    const drift = missing.filter((id) => !restoring.has(id));
    const restored = missing.filter((id) => restoring.has(id));
    if (drift.length)
      this.o.emit({ type: 'drift', at: now(), ids: drift, repaired: outcome === 'converged' });
    if (restored.length && outcome === 'converged')
      this.o.reporter.report({
        type: 'info',
        message: `restored ${restored.length} object(s) the daemon removed when it last stopped`,
      });
    const durationMs = Date.now() - this.t0;
    const doc = toPlanDocument(ctx.plan ?? EMPTY_PLAN, file);
    const error =
      ctx.error ?? (ok ? undefined : new AwgError('driver', `reconcile ended ${outcome}`));
    this.planChanges = (ctx.plan?.changes ?? []).filter((c) => c.action !== 'noop').length;
    if (ok) this.converged = now();
    this.last = {
      at: now(),
      outcome,
      durationMs,
      reason,
      ...(error ? { error: errOf(error) } : {}),
    };
    this.o.emit({
      type: 'reconcile-finished',
      at: now(),
      reason,
      outcome,
      durationMs,
      summary: doc.summary,
      ...(error ? { error: errOf(error) } : {}),
    });
    if (error) this.o.emit({ type: 'error', at: now(), kind: error.kind, message: error.message });
    return { outcome, plan: ctx.plan, error };
  }

  /** The run threw before it could finish. */
  failed(e: unknown): RunOutcome {
    const reason = this.reason ?? 'api';
    const err = toAwgError(e);
    const durationMs = Date.now() - this.t0;
    this.last = { at: now(), outcome: 'failed', durationMs, reason, error: errOf(err) };
    this.o.emit({
      type: 'reconcile-finished',
      at: now(),
      reason,
      outcome: 'failed',
      durationMs,
      summary: NO_CHANGES,
      error: errOf(err),
    });
    this.o.emit({ type: 'error', at: now(), kind: err.kind, message: err.message });
    return { outcome: 'failed', error: err };
  }

  /** A run woke with no config to reconcile toward: the config could not be read. */
  refused(reason: WakeReason, error: AwgError): void {
    this.last = { at: now(), outcome: 'failed', durationMs: 0, error: errOf(error), reason };
  }
}
