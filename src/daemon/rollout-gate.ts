/**
 * The rollout gate (docs/fleet.md "The rollout model"): before the daemon takes a new revision
 * of the checkout it follows, may it apply it now? It reads the NEW revision's
 * `fleet.waves`/`fleet.halt` (a commit declares how it rolls out), the commit (committer
 * date; an `Awg-Rollout: immediate` trailer, honoured only when the commit verifies against
 * `--allowed-signers`, the same `git verify-commit` as `awg sync`) and decides with
 * rollout-waves.ts. A held revision leaves the last good one running; the gate says why in the
 * config state ("waiting for wave N at T"), once as a `rollout` event, and wakes the loop when
 * the wave is due (a timer, not only a file change). This host's first sight of a revision
 * (a stale commit's waves count from it) is kept in the rollout record across restarts.
 *
 * Fail closed: a commit git cannot read holds a revision that has waves (it is retried); a
 * trailer on an unverified commit is ignored (waves apply).
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { HostSelection } from '../config/overlay.js';
import {
  readCommit as gitReadCommit,
  verifyCommit as gitVerifyCommit,
  type CommitInfo,
} from '../util/git-commit.js';
import type { RolloutPlace } from '../pipeline/observation.js';
import type { Timer } from './confirm.js';
import type { ConfigState, DaemonEvent } from './core.js';
import { decide, describeDecision, type RolloutDecision } from './rollout-waves.js';

export type RolloutState = NonNullable<ConfigState['rollout']>;

export interface RolloutGateOptions {
  host: HostSelection;
  /** SSH allowed signers (`awg daemon --allowed-signers`): the trailer needs a verified commit */
  allowedSigners?: string | undefined;
  emit: (e: DaemonEvent) => void;
  /** run the loop again (the wave is due, or a commit is to be read again) */
  wake: () => void;
  /**
   * the first sightings kept across restarts (the rollout record, revision-watch.ts): `get`
   * the recorded one of a revision (undefined: none, or unusable), `set` a new one
   */
  sightings?: Sightings | undefined;
  // ---- tests
  now?: (() => number) | undefined;
  timer?: Timer | undefined;
  readCommit?: ((dir: string, rev: string) => Promise<CommitInfo | undefined>) | undefined;
  verifyCommit?:
    | ((dir: string, rev: string, signers: string) => Promise<{ ok: boolean; why?: string }>)
    | undefined;
}

export interface Sightings {
  get: (revision: string, now: number) => number | undefined;
  set: (revision: string, at: number) => void;
}

/** a new revision the follower is about to take */
export interface Candidate {
  /** the config file (in the checkout) */
  file: string;
  config: Config;
  revision: string;
}

/** longest a timer waits before the gate looks again (setTimeout's limit is ~24.8 days) */
const MAX_WAIT_MS = 6 * 3600_000;
/** a commit git could not read: look again after */
const RETRY_MS = 60_000;

const defaultTimer: Timer = (ms, fn) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return () => clearTimeout(t);
};

export class RolloutGate {
  /** host clock when each revision was first seen (only the newest few kept) */
  private readonly seen = new Map<string, number>();
  private held: RolloutState | undefined;
  private cancel: (() => void) | undefined;
  private readonly now: () => number;
  private readonly timer: Timer;

  constructor(private readonly o: RolloutGateOptions) {
    this.now = o.now ?? Date.now;
    this.timer = o.timer ?? defaultTimer;
  }

  /** what status says while a revision is held; undefined when none is */
  get state(): RolloutState | undefined {
    return this.held;
  }

  /** the config state with what the gate holds (status) */
  stateOf(c: ConfigState | undefined): ConfigState | undefined {
    return c && this.held && c.checkoutRevision === this.held.revision
      ? { ...c, rollout: this.held }
      : c;
  }

  /** may `c` be applied now? false: keep the last good revision (the gate wakes the loop later) */
  async admit(c: Candidate): Promise<boolean> {
    const fleet = c.config.fleet;
    if (!fleet?.waves && !fleet?.halt) return this.release();
    const firstSeen = this.firstSeen(c.revision);
    const dir = dirname(c.file);
    const halted =
      fleet.halt === true ||
      (typeof fleet.halt === 'object' && existsSync(resolve(dir, fleet.halt.file)));
    let commit: CommitInfo | undefined;
    if (!halted) {
      commit = await (this.o.readCommit ?? gitReadCommit)(dir, c.revision);
      if (!commit)
        return this.hold(
          c.revision,
          {
            state: 'waiting',
            message: `cannot read commit ${c.revision.slice(0, 12)} with git: its committer date decides the waves; the last good revision keeps running (retried)`,
          },
          RETRY_MS,
        );
    }
    const immediate = commit ? await this.immediate(dir, commit) : false;
    const d = decide({
      waves: fleet.waves,
      halted,
      commit: { committedAt: commit?.committedAt ?? firstSeen, immediate },
      host: this.o.host,
      firstSeen,
      now: this.now(),
    });
    if (d.apply) return this.release(c.revision, d);
    return this.hold(
      c.revision,
      stateOf(d),
      d.why === 'waiting' ? d.dueAt - this.now() : undefined,
    );
  }

  close(): void {
    this.cancel?.();
    this.cancel = undefined;
  }

  /** the trailer counts only on a commit verified against the allowed signers */
  private async immediate(dir: string, commit: CommitInfo): Promise<boolean> {
    const asked = (commit.trailers['awg-rollout'] ?? []).some(
      (v) => v.toLowerCase() === 'immediate',
    );
    if (!asked) return false;
    const signers = this.o.allowedSigners;
    const v = signers
      ? await (this.o.verifyCommit ?? gitVerifyCommit)(dir, commit.revision, signers)
      : { ok: false, why: 'the daemon has no --allowed-signers' };
    if (v.ok) return true;
    if (!this.seen.has(`warned:${commit.revision}`)) {
      this.seen.set(`warned:${commit.revision}`, 0);
      this.o.emit({
        type: 'error',
        at: new Date(this.now()).toISOString(),
        kind: 'permission',
        message: `commit ${commit.revision.slice(0, 12)} asks for Awg-Rollout: immediate but is not verified (${v.why ?? 'not signed by an allowed signer'}): its waves apply`,
      });
    }
    return false;
  }

  /** when this host first saw `revision`: remembered, else recorded before a restart, else now */
  private firstSeen(revision: string): number {
    let t = this.seen.get(revision);
    if (t === undefined) {
      const now = this.now();
      t = this.o.sightings?.get(revision, now);
      if (t === undefined) {
        t = now;
        this.o.sightings?.set(revision, t);
      }
      this.seen.set(revision, t);
      // a fleet moves forward: the sightings of a few revisions are enough
      while (this.seen.size > 16) this.seen.delete(this.seen.keys().next().value!);
    }
    return t;
  }

  private release(revision?: string, d?: RolloutDecision): true {
    this.close();
    if (this.held && revision) {
      this.o.emit({
        type: 'rollout',
        at: new Date(this.now()).toISOString(),
        revision,
        state: 'applying',
        ...(d?.apply && d.wave ? { wave: d.wave } : {}),
        message: d ? describeDecision(d) : 'applying',
      });
    }
    this.held = undefined;
    return true;
  }

  private hold(revision: string, s: Omit<RolloutState, 'revision'>, recheckMs?: number): false {
    const next: RolloutState = { revision, ...s };
    const same =
      this.held?.revision === revision &&
      this.held.state === next.state &&
      this.held.wave === next.wave &&
      this.held.dueAt === next.dueAt;
    this.held = next;
    if (!same)
      this.o.emit({
        type: 'rollout',
        at: new Date(this.now()).toISOString(),
        revision,
        state: next.state,
        ...(next.wave !== undefined ? { wave: next.wave } : {}),
        ...(next.dueAt !== undefined ? { dueAt: next.dueAt } : {}),
        message: next.message,
      });
    this.close();
    if (recheckMs !== undefined)
      this.cancel = this.timer(Math.min(Math.max(recheckMs, 0), MAX_WAIT_MS), () => {
        this.cancel = undefined;
        this.o.wake();
      });
    return false;
  }
}

/** the daemon's gate: its host (`--host`, else this machine's name), signers and clock */
export function rolloutGateFor(
  opts: {
    selection?: HostSelection | undefined;
    allowedSigners?: string | undefined;
    rollout?: Pick<RolloutGateOptions, 'now' | 'timer' | 'readCommit' | 'verifyCommit'> | undefined;
  },
  emit: (e: DaemonEvent) => void,
  wake: () => void,
  sightings?: Sightings,
): RolloutGate {
  return new RolloutGate({
    host: opts.selection ?? { host: hostname(), labels: {}, os: '' },
    allowedSigners: opts.allowedSigners,
    emit,
    wake,
    sightings,
    ...opts.rollout,
  });
}

/** what the observation record says of the rollout (`awg fleet status`); none outside a checkout */
export function rolloutPlaceOf(c: ConfigState | undefined): RolloutPlace | undefined {
  const h = c?.rollout;
  if (!c || (c.checkoutRevision === undefined && !h)) return undefined;
  return {
    ...(c.checkoutRevision !== undefined ? { checkoutRevision: c.checkoutRevision } : {}),
    ...(h
      ? {
          held: {
            revision: h.revision,
            state: h.state,
            ...(h.wave !== undefined ? { wave: h.wave } : {}),
            ...(h.dueAt !== undefined ? { dueAt: h.dueAt } : {}),
          },
        }
      : {}),
  };
}

function stateOf(d: Extract<RolloutDecision, { apply: false }>): Omit<RolloutState, 'revision'> {
  return {
    state: d.why,
    ...(d.wave !== undefined ? { wave: d.wave } : {}),
    ...(d.waveName !== undefined ? { waveName: d.waveName } : {}),
    ...(d.why === 'waiting' ? { dueAt: new Date(d.dueAt).toISOString() } : {}),
    message: describeDecision(d),
  };
}
