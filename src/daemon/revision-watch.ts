/**
 * The rollout gate at work (docs/fleet.md, "Rollouts"; decisions in revision-gate.ts): after a
 * run converges a new revision of the followed checkout, it looks at the host every
 * `POLL_MS` until the check passes or `fleet.verify.within` has passed. A pass makes the
 * revision the last good one; a failure rejects it (kept in the state directory), reverts to
 * the last good revision's prepared config through the daemon's normal run (converge: the
 * kill switch stays closed, a failed run rolls back or fails closed) and reports it: a
 * `revision-rejected` event, the config state, the metrics and the observation record.
 *
 * The check runs beside the loop, not in it: the loop keeps converging (health wakes, API
 * calls) while a revision is checked; a newer revision converged meanwhile replaces the one
 * checked (it is checked in its place, against the same last good one).
 */
import { connect } from 'node:net';
import { verifyOf } from '../config/schema.js';
import { toAwgError } from '../errors.js';
import { gitRemoteUrlOf, remoteEndpoint } from '../util/git-remote.js';
import { checkedRecord, type StateStore } from '../util/state.js';
import { sourcesHash, type Source } from './config-follower.js';
import type { DaemonEvent } from './core.js';
import {
  heldBack,
  isRolloutRecord,
  judge,
  needsVerify,
  rejectionOf,
  ROLLOUT_STATE_KEY,
  sightingOf,
  verifyPlan,
  withRejection,
  type RejectedRevision,
  type RolloutRecord,
  type VerifyPlan,
} from './revision-gate.js';
import type { Timer } from './confirm.js';

export type { RejectedRevision };

/** time between two looks at the host while a revision is checked */
export const POLL_MS = 500;
/** the longest one TCP connect of a reach target may take */
const CONNECT_TIMEOUT_MS = 3000;

/** a revision held to go back to */
export interface GoodRevision {
  revision: string;
  source: Source;
}

/** does host:port answer a TCP connect within timeoutMs? */
export type Connect = (host: string, port: number, timeoutMs: number) => Promise<boolean>;

export interface RevisionWatchOptions {
  state: StateStore;
  emit: (e: DaemonEvent) => void;
  /** the tunnels up now (tunnel health) */
  up: () => ReadonlySet<string>;
  /** run toward `to` (through the daemon's queue and converge); throws when it fails */
  revert: (to: GoodRevision) => Promise<void>;
  /** the daemon's own TCP connect (tests swap it) */
  connect?: Connect | undefined;
  timer?: Timer | undefined;
  now?: () => number;
}

interface Check {
  revision: string;
  /** its config: the good one to go back to once it passes */
  source: Source;
  /** the hash of its files when it converged (a later commit with the same is held back too) */
  content: string;
  plan: VerifyPlan;
  started: number;
  reached: Set<string>;
  cancel: () => void;
}

const defaultTimer: Timer = (ms, fn) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return () => clearTimeout(t);
};

export const tcpConnect: Connect = (host, port, timeoutMs) =>
  new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });

export class RevisionWatch {
  private book: RolloutRecord;
  private good: GoodRevision | undefined;
  private check: Check | undefined;
  private closed = false;
  private readonly now: () => number;
  private readonly timer: Timer;
  private readonly connect: Connect;

  constructor(private readonly o: RevisionWatchOptions) {
    const book = checkedRecord(o.state, ROLLOUT_STATE_KEY, isRolloutRecord, 'the rollout gate');
    // a damaged sighting is dropped alone: the revision counts as unseen, the rest holds
    const { seen, ...rest } = book ?? { rejected: [] };
    this.book = seen !== undefined && sightingOf(seen, Infinity) ? { ...rest, seen } : rest;
    this.now = o.now ?? Date.now;
    this.timer = o.timer ?? defaultTimer;
    this.connect = o.connect ?? tcpConnect;
  }

  /** the last revision this host kept (the state directory's, across restarts) */
  get lastGood(): string | undefined {
    return this.good?.revision ?? this.book.lastGood;
  }

  /**
   * The last good revision's config, read again after a restart (last-good.ts) while this
   * daemon holds none: the revision converged next can go back to it, so it is checked.
   */
  baseline(g: GoodRevision): void {
    if (!this.good && g.revision === this.book.lastGood) this.good = g;
  }

  /**
   * When this host first saw `revision` (ms, host clock), as the rollout record keeps it across
   * restarts; undefined when it names another revision or is not usable (sightingOf).
   */
  sighting(revision: string, now: number): number | undefined {
    const s = sightingOf(this.book.seen, now);
    return s?.revision === revision ? s.at : undefined;
  }

  /** record this host's first sight of `revision`, replacing the one before (the gate's) */
  sighted(revision: string, at: number): void {
    this.save({ ...this.book, seen: { revision, at: new Date(at).toISOString() } });
  }

  /** the rejection of `revision` */
  rejected(revision: string | undefined): RejectedRevision | undefined {
    return rejectionOf(this.book, revision);
  }

  /**
   * Hold the checkout at `revision` back? Yes when it was rejected, or when this host's files
   * (`content`: their hash) are those of a rejected revision: that revision is then recorded
   * as rejected too (for the same reason; status and metrics name it) without being applied.
   */
  holdBack(revision: string | undefined, content: () => string): boolean {
    const h = heldBack(this.book, revision, content);
    if (!h) return false;
    if (!h.same && revision !== undefined) {
      const at = new Date().toISOString();
      const reason = `this host's files are those of rejected revision ${h.rejection.revision}: ${h.rejection.reason}`;
      this.save(withRejection(this.book, { ...h.rejection, revision, reason, at }));
      this.o.emit({ type: 'revision-rejected', at, revision, reason });
    }
    return true;
  }

  /** what status says: the rejected revisions, and the revision under check with its deadline */
  state(): {
    rejected?: RejectedRevision[];
    verifying?: { revision: string; deadline: string };
  } {
    const c = this.check;
    return {
      ...(this.book.rejected.length
        ? {
            rejected: this.book.rejected.map(({ revision, reason, at }) => ({
              revision,
              reason,
              at,
            })),
          }
        : {}),
      ...(c
        ? {
            verifying: {
              revision: c.revision,
              deadline: new Date(c.started + c.plan.withinMs).toISOString(),
            },
          }
        : {}),
    };
  }

  /**
   * A run converged `source` at `revision` (undefined outside a checkout), changing `changes`
   * objects; `upBefore`: the tunnels up before it. Starts the check of a new revision, or takes
   * the revision as good.
   */
  converged(o: {
    revision: string | undefined;
    source: Source;
    changes: number;
    upBefore: ReadonlySet<string>;
  }): void {
    if (this.closed || o.revision === undefined) return;
    if (this.check?.revision === o.revision) return;
    const lastGood = this.good?.revision ?? this.book.lastGood;
    if (
      !needsVerify({
        revision: o.revision,
        lastGood,
        canRevert: this.good !== undefined,
        changes: o.changes,
        checking: this.book.checking,
      })
    ) {
      // a run of the good revision while another was checked: that one is gone (reverted by hand)
      this.stop();
      this.good = { revision: o.revision, source: o.source };
      if (this.book.lastGood !== o.revision || this.book.checking !== undefined)
        this.save(done(this.book, o.revision));
      return;
    }
    this.stop();
    const url = gitRemoteUrlOf(o.source.file);
    const plan = verifyPlan(verifyOf(o.source.prepared.config.fleet), {
      tunnels: Object.keys(o.source.prepared.config.tunnels),
      upBefore: o.upBefore,
      remote: url === undefined ? undefined : remoteEndpoint(url),
    });
    const check: Check = {
      revision: o.revision,
      source: o.source,
      content: sourcesHash([o.source.file, ...o.source.prepared.sources]),
      plan,
      started: this.now(),
      reached: new Set(),
      cancel: () => {},
    };
    this.check = check;
    if (this.book.checking !== o.revision) this.save({ ...this.book, checking: o.revision });
    this.schedule(check, 0);
  }

  close(): void {
    this.closed = true;
    this.stop();
  }

  private stop(): void {
    this.check?.cancel();
    this.check = undefined;
  }

  private schedule(c: Check, ms: number): void {
    c.cancel = this.timer(ms, () => void this.look(c));
  }

  /** one look at the host: pass, fail or look again */
  private async look(c: Check): Promise<void> {
    if (this.check !== c) return;
    const up = this.o.up();
    // the targets are tried once the tunnels are up: their answer then comes through them
    if (c.plan.tunnels.every((t) => up.has(t))) await this.tryReach(c);
    if (this.check !== c) return;
    const j = judge(c.plan, { elapsedMs: this.now() - c.started, up, reached: c.reached });
    if (j.verdict === 'wait') return this.schedule(c, POLL_MS);
    this.check = undefined;
    if (j.verdict === 'pass') {
      this.good = { revision: c.revision, source: c.source };
      this.save(done(this.book, c.revision));
      return;
    }
    await this.reject(c.revision, j.reason, c.content);
  }

  private async tryReach(c: Check): Promise<void> {
    const left = c.plan.reach.filter((r) => r.port !== 0 && !c.reached.has(r.label));
    if (!left.length) return;
    const remaining = Math.max(200, c.started + c.plan.withinMs - this.now());
    const timeout = Math.min(CONNECT_TIMEOUT_MS, remaining);
    const answers = await Promise.all(left.map((r) => this.connect(r.host, r.port, timeout)));
    left.forEach((r, i) => answers[i] && c.reached.add(r.label));
  }

  private async reject(revision: string, reason: string, content: string): Promise<void> {
    const rejection: RejectedRevision = { revision, reason, at: new Date().toISOString(), content };
    const { checking: _, ...book } = this.book;
    this.save(withRejection(book, rejection));
    const good = this.good;
    let failed: string | undefined;
    if (good) {
      try {
        await this.o.revert(good);
      } catch (e) {
        failed = `the revert of ${revision} to ${good.revision} failed: ${toAwgError(e).message} (the loop retries toward it)`;
      }
    }
    // said once the host is back (the event's time); the rejection's time is the check's verdict
    const at = new Date().toISOString();
    this.o.emit({
      type: 'revision-rejected',
      at,
      revision,
      reason,
      ...(good ? { revertedTo: good.revision } : {}),
    });
    if (failed) this.o.emit({ type: 'error', at, kind: 'verification', message: failed });
  }

  private save(book: RolloutRecord): void {
    this.book = book;
    try {
      this.o.state.set(ROLLOUT_STATE_KEY, book);
    } catch (e) {
      this.o.emit({
        type: 'error',
        at: new Date().toISOString(),
        kind: 'driver',
        message: `the rollout record could not be saved: ${toAwgError(e).message}`,
      });
    }
  }
}

/** the record once `revision` is the last good one: no check under way */
function done(book: RolloutRecord, revision: string): RolloutRecord {
  const { checking: _, ...rest } = book;
  return { ...rest, lastGood: revision };
}
