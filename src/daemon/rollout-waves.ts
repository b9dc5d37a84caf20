/**
 * The rollout decision, pure (docs/fleet.md "The rollout model"): may this host apply a new
 * revision now, and if not, until when does it wait? Inputs are the new revision's
 * `fleet.waves`/`fleet.halt` (schema-fleet-rollout.ts), the commit (committer date, a
 * verified `Awg-Rollout: immediate` trailer), this host (name, labels) and two clock
 * readings of the host: when it first saw the revision and now. The daemon's gate
 * (rollout-gate.ts) gathers them and acts on the answer.
 *
 * Clocks. Hosts' clocks and the committer's may disagree by minutes. The start of a rollout
 * is the committer date, held between two bounds of this host's first sight of the commit:
 * - never later than the sighting: a commit "from the future" never holds a wave back beyond
 *   its own `after` (a canary wave, `after: 0`, applies at once);
 * - never earlier than the sighting minus SIGHTING_TOLERANCE_MS: a commit made long ago and
 *   pushed late still rolls out in waves, counted from when this host saw it (a fresh commit,
 *   seen within the tolerance of its date, counts from its date as it always did).
 * A host whose clock is fast sees a wave due early by its skew, a slow one late by its skew:
 * waves stay in order between two hosts as long as consecutive waves' `after` differ by more
 * than the skew between them (the canary wave needs no time at all). Nothing here depends on
 * another host.
 */
import { createHash } from 'node:crypto';
import { matches, type HostSelection } from '../config/overlay.js';
import { parseDuration } from '../config/duration.js';
import type { Wave } from '../config/schema-fleet-rollout.js';

/** what is known of the commit of the new revision */
export interface RolloutCommit {
  /** committer date, ms since the epoch */
  committedAt: number;
  /** `Awg-Rollout: immediate` in a commit verified against the allowed signers */
  immediate: boolean;
}

export type RolloutDecision =
  /** apply now: no waves, the verified trailer, or this host's wave (1-based) is due */
  | { apply: true; why: 'no-waves' | 'immediate' | 'due'; wave?: number; dueAt?: number }
  /**
   * keep the last good revision until `dueAt` (ms), then decide again; `seenFrom`: the start
   * when the commit is older than its sighting allows (isStale), else absent
   */
  | {
      apply: false;
      why: 'waiting';
      wave: number;
      waveName: string;
      dueAt: number;
      seenFrom?: number;
    }
  /** `fleet.halt`: keep the last good revision until a newer commit lifts it */
  | { apply: false; why: 'halted'; wave?: number; waveName?: string };

/**
 * A host's slot in [0, 100): a stable hash of its name (the host overlays are selected for).
 * The same name gives the same slot on every host and in every revision.
 */
export function hostSlot(host: string): number {
  const h = createHash('sha256').update('awg-rollout-slot\0').update(host.toLowerCase()).digest();
  // 32 bits → [0, 100) with a resolution far below any percent written
  return (h.readUInt32BE(0) / 2 ** 32) * 100;
}

/**
 * The index (0-based) of the host's wave: the first wave that selects it. Every host has
 * one when the last wave takes everyone left (the schema requires it); -1 otherwise.
 */
export function waveIndexOf(waves: readonly Wave[], host: HostSelection): number {
  const slot = hostSlot(host.host);
  return waves.findIndex((w) => {
    if (w.percent !== undefined) return slot < w.percent;
    return matches(
      {
        ...(w.hosts ? { hosts: w.hosts } : {}),
        ...(w.labels ? { labels: w.labels } : {}),
      },
      host,
    );
  });
}

export const waveName = (waves: readonly Wave[], i: number): string =>
  waves[i]?.name ?? `wave-${i + 1}`;

/**
 * The clock skew the rollout model assumes between any two clocks involved (a host's, the
 * committer's): ±5 min (docs/fleet.md "Clock skew").
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * How long after its committer date a host may first see a commit and still count its waves
 * from that date: twice the skew. It covers a host clock ahead of the committer's by the whole
 * skew plus up to that much again for the push and the pull (`awg sync` every minute). It
 * is also the most a stale commit's waves are brought forward relative to this host's sight
 * of it: with waves whose `after` differ by more than twice the skew (what keeps fresh
 * commits' waves in order, docs/fleet.md), a stale commit's waves keep their order too.
 */
export const SIGHTING_TOLERANCE_MS = 2 * MAX_CLOCK_SKEW_MS;

/**
 * When the rollout counts from (host clock, ms): the committer date, but never later than
 * this host's first sight of the commit (a date in the future) and never earlier than that
 * sight minus SIGHTING_TOLERANCE_MS (a commit pushed long after it was made). Never earlier
 * than min(committedAt, firstSeen), the rule before the lower bound came.
 */
export function rolloutStart(committedAt: number, firstSeen: number): number {
  return Math.max(Math.min(committedAt, firstSeen), firstSeen - SIGHTING_TOLERANCE_MS);
}

/** is the commit older than its sighting allows (its waves count from the sighting)? */
export const isStale = (committedAt: number, firstSeen: number): boolean =>
  committedAt < firstSeen - SIGHTING_TOLERANCE_MS;

export interface DecideInput {
  waves?: readonly Wave[] | undefined;
  halted: boolean;
  commit: RolloutCommit;
  host: HostSelection;
  /** host clock (ms) when this host first saw the revision */
  firstSeen: number;
  /** host clock (ms) */
  now: number;
}

export function decide(i: DecideInput): RolloutDecision {
  const waves = i.waves ?? [];
  const idx = waves.length ? waveIndexOf(waves, i.host) : -1;
  const named = idx >= 0 ? { wave: idx + 1, waveName: waveName(waves, idx) } : {};
  // a brake wins over everything, the trailer included
  if (i.halted) return { apply: false, why: 'halted', ...named };
  if (i.commit.immediate) return { apply: true, why: 'immediate' };
  if (!waves.length) return { apply: true, why: 'no-waves' };
  // no wave selects the host (a config the schema would refuse): it waits for the last wave
  const k = idx >= 0 ? idx : waves.length - 1;
  const start = rolloutStart(i.commit.committedAt, i.firstSeen);
  const dueAt = start + (parseDuration(waves[k]!.after) ?? 0);
  if (i.now >= dueAt) return { apply: true, why: 'due', wave: k + 1, dueAt };
  return {
    apply: false,
    why: 'waiting',
    wave: k + 1,
    waveName: waveName(waves, k),
    dueAt,
    ...(isStale(i.commit.committedAt, i.firstSeen) ? { seenFrom: start } : {}),
  };
}

/**
 * "waiting for wave 2 (wave-2) at 2026-11-27T18:00:00.000Z" (", counted from …" for a stale
 * commit) / "halted (fleet.halt)"
 */
export function describeDecision(d: RolloutDecision): string {
  if (d.apply)
    return d.why === 'immediate'
      ? 'applied at once (Awg-Rollout: immediate)'
      : d.why === 'due'
        ? `wave ${d.wave} is due`
        : 'no waves';
  if (d.why === 'halted')
    return `halted (fleet.halt): the last good revision keeps running${d.wave ? ` (this host is in wave ${d.wave})` : ''}`;
  const at = `waiting for wave ${d.wave} (${d.waveName}) at ${new Date(d.dueAt).toISOString()}`;
  return d.seenFrom === undefined
    ? at
    : `${at}, counted from ${new Date(d.seenFrom).toISOString()} (${SIGHTING_TOLERANCE_MS / 60_000} min before this host first saw the commit: its committer date is older)`;
}
