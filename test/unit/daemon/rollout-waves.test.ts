/**
 * The rollout decision (src/daemon/rollout-waves.ts) and the waves' schema
 * (src/config/schema-fleet-rollout.ts): one wave per host, cumulative percent waves, the
 * trailer, halt, and clock skew between hosts and the committer both ways.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HostSelection } from '../../../src/config/overlay.js';
import { Waves, type Wave } from '../../../src/config/schema-fleet-rollout.js';
import {
  decide,
  describeDecision,
  hostSlot,
  rolloutStart,
  SIGHTING_TOLERANCE_MS,
  waveIndexOf,
  type DecideInput,
} from '../../../src/daemon/rollout-waves.js';

const MIN = 60_000;
const T0 = Date.parse('2026-11-27T12:00:00Z');
const host = (name: string, labels: Record<string, string> = {}): HostSelection => ({
  host: name,
  labels,
  os: 'linux',
});
const waves = (w: unknown): Wave[] => Waves.parse(w);
const STANDARD = waves([
  { labels: { ring: 'canary' } },
  { percent: 10, after: '15m' },
  { percent: 100, after: '1h' },
]);
const input = (over: Partial<DecideInput>): DecideInput => ({
  waves: STANDARD,
  halted: false,
  commit: { committedAt: T0, immediate: false },
  host: host('laptop-1'),
  firstSeen: T0,
  now: T0,
  ...over,
});

describe('hostSlot', () => {
  it('is stable, in [0, 100), case-insensitive', () => {
    expect(hostSlot('laptop-1')).toBe(hostSlot('laptop-1'));
    expect(hostSlot('Laptop-1')).toBe(hostSlot('laptop-1'));
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 64 }), (h) => {
        const s = hostSlot(h);
        return s >= 0 && s < 100;
      }),
    );
  });
  it('spreads hosts: about 10 % of 2000 names fall below 10', () => {
    const below = Array.from({ length: 2000 }, (_, i) => hostSlot(`host-${i}`)).filter(
      (s) => s < 10,
    ).length;
    expect(below).toBeGreaterThan(140);
    expect(below).toBeLessThan(260);
  });
});

describe('waves schema', () => {
  it('fills after with 0s and accepts the standard rollout', () => {
    expect(STANDARD[0]!.after).toBe('0s');
  });
  const refused = (w: unknown) => Waves.safeParse(w).success;
  it('refuses waves out of order, shrinking percents, a last wave that leaves hosts out', () => {
    expect(
      refused([
        { after: '1h', percent: 10 },
        { after: '15m', percent: 100 },
      ]),
    ).toBe(false);
    expect(refused([{ percent: 50 }, { percent: 10 }, { percent: 100 }])).toBe(false);
    expect(refused([{ labels: { ring: 'canary' } }, { percent: 50 }])).toBe(false);
    expect(refused([{ labels: { ring: 'canary' }, percent: 5 }, {}])).toBe(false);
    expect(refused([])).toBe(false);
    expect(refused([{ hosts: ['web-*'] }, { after: '10m' }])).toBe(true);
  });
});

/** random valid waves: selectors, then cumulative percents, the last taking all */
const arbWaves = fc
  .tuple(
    fc.array(
      fc.oneof(
        fc.record({ labels: fc.constant({ ring: 'canary' }) }),
        fc.record({ hosts: fc.constant(['db-*']) }),
        fc.record({ percent: fc.double({ min: 0.5, max: 100, noNaN: true }) }),
      ),
      { maxLength: 6 },
    ),
    fc.array(fc.integer({ min: 0, max: 120 }), { minLength: 7, maxLength: 7 }),
  )
  .map(([sel, gaps]) => {
    let p = 0;
    let after = 0;
    const out = [...sel, { percent: 100 }].map((w, i) => {
      after += gaps[i]!;
      if ('percent' in w) {
        p = Math.max(p, w.percent);
        return { percent: p, after: `${after}m` };
      }
      return { ...w, after: `${after}m` };
    });
    return waves(out);
  });
const arbHost = fc.record({
  host: fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), fc.constant('db-1')),
  labels: fc.oneof(fc.constant({}), fc.constant({ ring: 'canary' })),
  os: fc.constant('linux'),
});

describe('waveIndexOf', () => {
  it('gives every host exactly one wave: the first that selects it', () => {
    fc.assert(
      fc.property(arbWaves, arbHost, (w, h) => {
        const i = waveIndexOf(w, h);
        expect(i).toBeGreaterThanOrEqual(0);
        expect(i).toBeLessThan(w.length);
      }),
    );
  });
  it('percent waves are cumulative: a host below p is in a wave no later than the p wave', () => {
    fc.assert(
      fc.property(arbWaves, arbHost, (w, h) => {
        const i = waveIndexOf(w, h);
        const slot = hostSlot(h.host);
        const firstPercent = w.findIndex((x) => x.percent !== undefined && slot < x.percent);
        expect(firstPercent).toBeGreaterThanOrEqual(0);
        expect(i).toBeLessThanOrEqual(firstPercent);
      }),
    );
  });
  it('raising a percent never moves a host to a later wave (monotone)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 50, noNaN: true }),
        fc.double({ min: 0, max: 50, noNaN: true }),
        arbHost,
        (p, extra, h) => {
          const a = waveIndexOf(waves([{ percent: p }, { percent: 100, after: '1h' }]), h);
          const b = waveIndexOf(waves([{ percent: p + extra }, { percent: 100, after: '1h' }]), h);
          expect(b).toBeLessThanOrEqual(a);
        },
      ),
    );
  });
  it('canaries by label, the rest by slot', () => {
    expect(waveIndexOf(STANDARD, host('x', { ring: 'canary' }))).toBe(0);
    const early = Array.from({ length: 200 }, (_, i) => `h${i}`).find((n) => hostSlot(n) < 10)!;
    const late = Array.from({ length: 200 }, (_, i) => `h${i}`).find((n) => hostSlot(n) >= 10)!;
    expect(waveIndexOf(STANDARD, host(early))).toBe(1);
    expect(waveIndexOf(STANDARD, host(late))).toBe(2);
  });
});

describe('decide', () => {
  const late = Array.from({ length: 200 }, (_, i) => `h${i}`).find((n) => hostSlot(n) >= 10)!;
  it('no waves: apply', () => {
    expect(decide(input({ waves: undefined }))).toEqual({ apply: true, why: 'no-waves' });
  });
  it('a canary applies at once; the rest wait for their wave and then apply', () => {
    expect(decide(input({ host: host('c', { ring: 'canary' }) }))).toMatchObject({
      apply: true,
      why: 'due',
      wave: 1,
    });
    const w = decide(input({ host: host(late), now: T0 + 59 * MIN }));
    expect(w).toEqual({
      apply: false,
      why: 'waiting',
      wave: 3,
      waveName: 'wave-3',
      dueAt: T0 + 60 * MIN,
    });
    expect(describeDecision(w)).toBe('waiting for wave 3 (wave-3) at 2026-11-27T13:00:00.000Z');
    expect(decide(input({ host: host(late), now: T0 + 60 * MIN }))).toMatchObject({
      apply: true,
      wave: 3,
    });
  });
  it('the verified trailer skips the waves; halt wins over it', () => {
    const commit = { committedAt: T0, immediate: true };
    expect(decide(input({ host: host(late), commit }))).toEqual({ apply: true, why: 'immediate' });
    expect(decide(input({ host: host(late), commit, halted: true }))).toMatchObject({
      apply: false,
      why: 'halted',
      wave: 3,
    });
    expect(decide(input({ host: host('c', { ring: 'canary' }), halted: true }))).toMatchObject({
      apply: false,
      why: 'halted',
    });
  });

  describe('clock skew (±5 min between hosts and the committer)', () => {
    const SKEW = 5 * MIN;
    it('a commit date in the future counts as the first sighting: the canary applies at once', () => {
      // the committer's clock is 5 min ahead of this host's (or this host 5 min behind)
      const d = decide(
        input({
          host: host('c', { ring: 'canary' }),
          commit: { committedAt: T0 + SKEW, immediate: false },
        }),
      );
      expect(d).toMatchObject({ apply: true, wave: 1 });
      expect(rolloutStart(T0 + SKEW, T0)).toBe(T0);
    });
    it('a host clock ahead sees its wave due early by the skew; behind, the commit looks future-dated and counts from the sighting: on time', () => {
      const truth = T0 + 60 * MIN; // true due time of wave 3
      for (const skew of [-SKEW, 0, SKEW]) {
        // the host's clock reads true + skew; it saw the commit when it was made
        const at = (trueT: number) =>
          decide(input({ host: host(late), firstSeen: T0 + skew, now: trueT + skew }));
        const due = truth - Math.max(skew, 0);
        expect(at(due - 1).apply).toBe(false);
        expect(at(due).apply).toBe(true);
      }
    });
    it('a later wave never applies before its after minus the skews: order holds when gaps exceed twice the skew', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: -SKEW, max: SKEW }),
          fc.integer({ min: -SKEW, max: SKEW }),
          fc.integer({ min: 0, max: 120 * MIN }),
          fc.integer({ min: 0, max: 2 * MIN }),
          (committer, skew, trueNow, seenDelay) => {
            // the committer's clock is off by `committer`, this host's by `skew`; the host sees
            // the commit `seenDelay` after it was made (its sync interval)
            const d = decide({
              waves: waves([{ labels: { ring: 'canary' } }, { percent: 100, after: '15m' }]),
              halted: false,
              commit: { committedAt: T0 + committer, immediate: false },
              host: host(late),
              firstSeen: T0 + seenDelay + skew,
              now: T0 + Math.max(trueNow, seenDelay) + skew,
            });
            // the canary wave is due at once everywhere: the second never precedes it by more
            // than two skews
            if (d.apply)
              expect(Math.max(trueNow, seenDelay)).toBeGreaterThanOrEqual(15 * MIN - 2 * SKEW);
          },
        ),
      );
    });
    it('a host behind never waits more than its wave plus its own skew', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: -SKEW, max: SKEW }),
          fc.integer({ min: -SKEW, max: SKEW }),
          (committer, skew) => {
            const commit = { committedAt: T0 + committer, immediate: false };
            // the host first sees the commit at true time T0 (host clock T0 + skew)
            const d = decide(
              input({
                host: host(late),
                commit,
                firstSeen: T0 + skew,
                now: T0 + 60 * MIN + 2 * SKEW + skew,
              }),
            );
            expect(d.apply).toBe(true);
          },
        ),
      );
    });
  });

  describe('a commit seen long after its date (pushed late): its waves count from the sighting', () => {
    const TOL = SIGHTING_TOLERANCE_MS;
    /** the rule before the sighting's lower bound: the committer date, or the sighting when earlier */
    const before = (committedAt: number, firstSeen: number) => Math.min(committedAt, firstSeen);
    it('the tolerance is twice the ±5 min skew the waves are laid out for', () => {
      expect(TOL).toBe(10 * MIN);
    });
    it('a commit made three days ago and first seen now: the canary at once, the rest staged from the sighting', () => {
      const seen = T0 + 3 * 24 * 60 * MIN;
      const commit = { committedAt: T0, immediate: false };
      const canary = decide(
        input({ host: host('c', { ring: 'canary' }), commit, firstSeen: seen, now: seen }),
      );
      expect(canary).toMatchObject({ apply: true, why: 'due', wave: 1 });
      const w = decide(input({ host: host(late), commit, firstSeen: seen, now: seen }));
      expect(w).toEqual({
        apply: false,
        why: 'waiting',
        wave: 3,
        waveName: 'wave-3',
        dueAt: seen - TOL + 60 * MIN,
        seenFrom: seen - TOL,
      });
      expect(describeDecision(w)).toBe(
        `waiting for wave 3 (wave-3) at ${new Date(seen + 50 * MIN).toISOString()}, counted from ${new Date(seen - TOL).toISOString()} (10 min before this host first saw the commit: its committer date is older)`,
      );
      // the 15 min wave 5 min after the sighting, the hour's 50 min after
      const early = Array.from({ length: 200 }, (_, i) => `h${i}`).find((n) => hostSlot(n) < 10)!;
      const at = (now: number) =>
        decide(input({ host: host(early), commit, firstSeen: seen, now })).apply;
      expect(at(seen + 5 * MIN - 1)).toBe(false);
      expect(at(seen + 5 * MIN)).toBe(true);
      expect(rolloutStart(T0, seen)).toBe(seen - TOL);
    });
    it('a host that first sees it later (it was offline) counts from its own sighting', () => {
      const commit = { committedAt: T0, immediate: false };
      const a = decide(
        input({ host: host(late), commit, firstSeen: T0 + 2 * MIN, now: T0 + 2 * MIN }),
      );
      const b = decide(
        input({ host: host(late), commit, firstSeen: T0 + 300 * MIN, now: T0 + 300 * MIN }),
      );
      expect(a).toMatchObject({ apply: false, dueAt: T0 + 60 * MIN });
      expect(a).not.toHaveProperty('seenFrom');
      expect(b).toMatchObject({ apply: false, dueAt: T0 + 300 * MIN - TOL + 60 * MIN });
    });
    it('the trailer, halt and a future date behave as before for a stale commit', () => {
      const seen = T0 + 24 * 60 * MIN;
      expect(
        decide(
          input({
            host: host(late),
            commit: { committedAt: T0, immediate: true },
            firstSeen: seen,
            now: seen,
          }),
        ),
      ).toEqual({ apply: true, why: 'immediate' });
      expect(
        decide(
          input({
            host: host(late),
            commit: { committedAt: T0, immediate: true },
            firstSeen: seen,
            now: seen,
            halted: true,
          }),
        ),
      ).toMatchObject({ apply: false, why: 'halted', wave: 3 });
      expect(rolloutStart(seen + 60 * MIN, seen)).toBe(seen);
    });
    it('random dates, sightings, skews and waves: never due earlier than before; unchanged within the tolerance; staged from the sighting beyond it', () => {
      const DAY = 24 * 60 * MIN;
      fc.assert(
        fc.property(
          arbWaves,
          arbHost,
          fc.integer({ min: -DAY, max: DAY }),
          fc.integer({ min: -30 * DAY, max: DAY }),
          fc.integer({ min: -5 * MIN, max: 5 * MIN }),
          fc.integer({ min: 0, max: 3 * DAY }),
          (w, h, committed, seenAfter, skew, later) => {
            // committer date T0 + committed; the host (its clock off by `skew`) first saw the
            // commit `seenAfter` after T0 and looks `later` after that
            const committedAt = T0 + committed;
            const firstSeen = T0 + seenAfter + skew;
            const now = firstSeen + later;
            const commit = { committedAt, immediate: false };
            const d = decide({ waves: w, halted: false, commit, host: h, firstSeen, now });
            const k = waveIndexOf(w, h);
            const after = (Number.parseInt(w[k]!.after, 10) || 0) * MIN;
            const old = before(committedAt, firstSeen) + after;
            const due = d.apply ? d.dueAt! : (d as { dueAt: number }).dueAt;
            expect(due).toBeGreaterThanOrEqual(old);
            // applied now only when the old rule applied it too
            if (d.apply) expect(now).toBeGreaterThanOrEqual(old);
            if (committedAt >= firstSeen - TOL) {
              // fresh (or dated ahead): exactly as before
              expect(due).toBe(old);
              if (!d.apply) expect(d).not.toHaveProperty('seenFrom');
            } else {
              // stale: staged from the sighting, never more than the tolerance earlier
              expect(due).toBe(firstSeen - TOL + after);
              if (!d.apply) expect(d).toMatchObject({ seenFrom: firstSeen - TOL });
            }
          },
        ),
      );
    });
    it('a stale commit keeps its waves in order between hosts seeing it a sync interval apart when gaps exceed the tolerance', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 2 * MIN }),
          fc.integer({ min: 0, max: 2 * MIN }),
          fc.integer({ min: 0, max: 120 * MIN }),
          (seenA, seenB, trueNow) => {
            // both hosts' clocks are off by anything: a stale commit's start is their own
            // sighting, on their own clock; the canary applies at its sighting (seenA)
            const stale = { committedAt: T0 - 7 * 24 * 60 * MIN, immediate: false };
            const second = waves([
              { labels: { ring: 'canary' } },
              { percent: 100, after: `${10 + 2 + 1}m` },
            ]);
            const d = decide({
              waves: second,
              halted: false,
              commit: stale,
              host: host(late),
              firstSeen: T0 + seenB,
              now: T0 + Math.max(trueNow, seenB),
            });
            // the second wave comes more than a minute (a health check) after the canary took it
            if (d.apply) expect(Math.max(trueNow, seenB) - seenA).toBeGreaterThanOrEqual(MIN);
          },
        ),
      );
    });
  });
});
