/**
 * The rollout gate's decisions (docs/fleet.md, "Rollouts"), pure: which converged revision
 * needs the check after its apply, what the check asks (tunnels up, targets that must answer),
 * whether an observation passes, fails or waits, and the book of rejected revisions a host
 * keeps in its state directory. revision-watch.ts observes and acts on them.
 *
 * A revision is rejected when, within `fleet.verify.within` of converging, the tunnels it
 * names are not all up or a reach target does not answer. A rejected revision is never applied
 * again on this host: while the checkout's HEAD is at it, the last good revision runs; a newer
 * commit at HEAD is applied (and checked) as any other.
 */
import { parseDuration } from '../config/duration.js';
import { tcpTarget, type FleetVerify } from '../config/schema-fleet.js';
import type { RemoteEndpoint } from '../util/git-remote.js';
import { isObject } from '../util/shape.js';

/** a revision a host refused after applying it */
export interface RejectedRevision {
  revision: string;
  /** what the check found (names and targets; no secrets) */
  reason: string;
  /** when it was rejected (ISO 8601) */
  at: string;
  /**
   * the hash of this host's files at that revision (config-follower.ts sourcesHash): a newer
   * commit that leaves them so is held back as well. Kept in the state directory only.
   */
  content?: string;
}

/** what the state directory keeps across restarts (key ROLLOUT_STATE_KEY) */
export interface RolloutRecord {
  /** the last revision that passed its check (or needed none) */
  lastGood?: string;
  /** the revision whose check was under way: a restart before its verdict checks it again */
  checking?: string;
  /** newest last */
  rejected: RejectedRevision[];
  /**
   * when this host first saw the newest revision the rollout gate was asked about (its waves
   * count from it for a commit older than that: rollout-waves.ts rolloutStart). One revision
   * only: the next one replaces it. Checked on its own (sightingOf): a damaged one is dropped.
   */
  seen?: Sighting;
}

/** this host's first sight of a revision (host clock) */
export interface Sighting {
  revision: string;
  /** ISO 8601, as `new Date(ms).toISOString()` writes it */
  at: string;
}

export const ROLLOUT_STATE_KEY = 'rollout';
/** rejected revisions kept; older ones are forgotten (they are behind HEAD for good anyway) */
export const MAX_REJECTED = 20;

export function isRolloutRecord(r: unknown): r is RolloutRecord {
  return (
    isObject(r) &&
    (r.lastGood === undefined || typeof r.lastGood === 'string') &&
    (r.checking === undefined || typeof r.checking === 'string') &&
    Array.isArray(r.rejected) &&
    r.rejected.every(
      (x) =>
        isObject(x) &&
        typeof x.revision === 'string' &&
        typeof x.reason === 'string' &&
        typeof x.at === 'string' &&
        (x.content === undefined || typeof x.content === 'string'),
    )
  );
}

const REVISION = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * The record's sighting when it is one: a full commit id and a time written as
 * toISOString writes it, not after `now` (a clock set back, or a hostile record: the
 * revision counts as unseen — from now, the later start). Undefined otherwise.
 */
export function sightingOf(r: unknown, now: number): { revision: string; at: number } | undefined {
  if (!isObject(r) || typeof r.revision !== 'string' || typeof r.at !== 'string') return undefined;
  if (!REVISION.test(r.revision) || r.at.length !== 24) return undefined;
  const at = Date.parse(r.at);
  if (!Number.isFinite(at) || new Date(at).toISOString() !== r.at || at > now) return undefined;
  return { revision: r.revision, at };
}

/** the rejection of `revision`, when it was rejected */
export function rejectionOf(
  book: RolloutRecord,
  revision: string | undefined,
): RejectedRevision | undefined {
  return revision === undefined ? undefined : book.rejected.find((r) => r.revision === revision);
}

/**
 * Is the checkout at `revision` held back? Its own rejection, else (`content`: the hash of
 * this host's files now, computed only when asked) the rejection of another revision whose
 * files for this host were the same: a commit for other hosts does not bring a rejected
 * change back.
 */
export function heldBack(
  book: RolloutRecord,
  revision: string | undefined,
  content: () => string,
): { rejection: RejectedRevision; same: boolean } | undefined {
  const own = rejectionOf(book, revision);
  if (own) return { rejection: own, same: true };
  if (revision === undefined || !book.rejected.some((r) => r.content !== undefined))
    return undefined;
  const hash = content();
  const like = book.rejected.find((r) => r.content === hash);
  return like ? { rejection: like, same: false } : undefined;
}

/** the book with `r` rejected (once; the newest MAX_REJECTED kept) */
export function withRejection(book: RolloutRecord, r: RejectedRevision): RolloutRecord {
  const rest = book.rejected.filter((x) => x.revision !== r.revision);
  return { ...book, rejected: [...rest, r].slice(-MAX_REJECTED) };
}

/**
 * Does the converged run of `revision` need the check? Not outside a checkout, not for the
 * first revision this daemon converges (nothing to go back to: it becomes the baseline), not
 * for the good one again, and not when the run changed nothing on the host (a commit that
 * touched only other hosts' files cannot break this one).
 */
export function needsVerify(o: {
  revision: string | undefined;
  lastGood: string | undefined;
  /** a good config of the last good revision is held to revert to */
  canRevert: boolean;
  changes: number;
  /** the revision whose check a restart cut short (the record's `checking`) */
  checking?: string | undefined;
}): boolean {
  if (o.revision === undefined || o.lastGood === undefined || !o.canRevert) return false;
  if (o.revision === o.lastGood) return false;
  // a run that changes nothing takes its revision as good — unless that revision's check was
  // cut short by a restart (a revision that kills the daemon, a reboot): it is checked again
  return o.changes > 0 || o.revision === o.checking;
}

/** a target that must answer a TCP connect */
export interface ReachCheck {
  /** as the config names it: `git` or `tcp:host:port` */
  label: string;
  host: string;
  port: number;
}

export interface VerifyPlan {
  withinMs: number;
  /** tunnels that must be up */
  tunnels: string[];
  reach: ReachCheck[];
  /** what is not checked, and why (a local remote): said in the status of a pass */
  skipped: string[];
}

/**
 * What the check of a new revision asks. `tunnels: all`: the tunnels of the new config that
 * were up before the apply (a tunnel new in it, or down before, is not required). `git`: the
 * remote's host and port; a local remote needs no network, and a remote that cannot be read
 * is a failure of its own (the check cannot show the repository is reachable).
 */
export function verifyPlan(
  v: FleetVerify,
  o: {
    tunnels: readonly string[];
    upBefore: ReadonlySet<string>;
    remote: RemoteEndpoint | undefined;
  },
): VerifyPlan {
  const tunnels =
    v.tunnels === 'all'
      ? o.tunnels.filter((t) => o.upBefore.has(t))
      : v.tunnels.filter((t, i, a) => a.indexOf(t) === i);
  const reach: ReachCheck[] = [];
  const skipped: string[] = [];
  for (const r of new Set(v.reach)) {
    if (r === 'git') {
      if (o.remote?.kind === 'local') skipped.push('git (a local remote)');
      else if (o.remote) reach.push({ label: 'git', host: o.remote.host, port: o.remote.port });
      // an unreadable remote: a target that cannot answer (judge names it)
      else reach.push({ label: 'git', host: '', port: 0 });
      continue;
    }
    const t = tcpTarget(r);
    if (t) reach.push({ label: r, ...t });
  }
  return { withinMs: parseDuration(v.within) ?? 60_000, tunnels, reach, skipped };
}

export type Judgement =
  { verdict: 'pass' } | { verdict: 'wait' } | { verdict: 'fail'; reason: string };

/**
 * One look at the host after the apply: pass once every tunnel is up and every target
 * answered (an answer counts from when it came: a target need not answer at the same look);
 * fail when `within` has passed without it; else wait.
 */
export function judge(
  plan: VerifyPlan,
  o: { elapsedMs: number; up: ReadonlySet<string>; reached: ReadonlySet<string> },
): Judgement {
  const down = plan.tunnels.filter((t) => !o.up.has(t));
  const silent = plan.reach.filter((r) => !o.reached.has(r.label));
  if (!down.length && !silent.length) return { verdict: 'pass' };
  if (o.elapsedMs < plan.withinMs) return { verdict: 'wait' };
  const within = `within ${Math.round(plan.withinMs / 1000)}s of the apply`;
  const parts = [
    ...(down.length ? [`tunnel(s) ${down.join(', ')} not up`] : []),
    ...silent.map((r) =>
      r.port === 0
        ? `${r.label}: the checkout's remote could not be read`
        : `${r.label} (${hostPort(r)}) not reached`,
    ),
  ];
  return { verdict: 'fail', reason: `${parts.join('; ')} ${within}` };
}

const hostPort = (r: ReachCheck) =>
  r.host.includes(':') ? `[${r.host}]:${r.port}` : `${r.host}:${r.port}`;
