/** The rollout gate's decisions (src/daemon/revision-gate.ts): table tests, no clock. */
import { describe, expect, it } from 'vitest';
import { FleetVerify } from '../../../src/config/schema-fleet.js';
import {
  heldBack,
  isRolloutRecord,
  judge,
  MAX_REJECTED,
  needsVerify,
  rejectionOf,
  sightingOf,
  verifyPlan,
  withRejection,
  type RolloutRecord,
} from '../../../src/daemon/revision-gate.js';

const v = (x: unknown) => FleetVerify.parse(x);
const net = { kind: 'network', host: 'git.example.org', port: 22 } as const;

describe('needsVerify', () => {
  const base = { revision: 'b', lastGood: 'a', canRevert: true, changes: 3 };
  it.each([
    ['a new revision that changed the host', base, true],
    ['outside a checkout', { ...base, revision: undefined }, false],
    ['the first revision since start (the baseline)', { ...base, lastGood: undefined }, false],
    ['nothing held to go back to', { ...base, canRevert: false }, false],
    ['the good revision again', { ...base, revision: 'a' }, false],
    ["a commit that changed nothing here (another host's overlay)", { ...base, changes: 0 }, false],
  ])('%s', (_, o, want) => expect(needsVerify(o)).toBe(want));
});

describe('verifyPlan', () => {
  it('defaults: within 60s, the tunnels up before, the git remote', () => {
    const p = verifyPlan(v(undefined), {
      tunnels: ['vpn', 'new', 'flaky'],
      upBefore: new Set(['vpn', 'gone']),
      remote: net,
    });
    expect(p).toEqual({
      withinMs: 60_000,
      tunnels: ['vpn'],
      reach: [{ label: 'git', host: 'git.example.org', port: 22 }],
      skipped: [],
    });
  });
  it('a list of tunnels is required whatever was up before; tcp targets; a local remote is skipped', () => {
    const p = verifyPlan(
      v({
        within: '10s',
        tunnels: ['a', 'b', 'a'],
        reach: ['git', 'tcp:[fd00::1]:443', 'tcp:10.0.0.1:9418'],
      }),
      { tunnels: ['a', 'b'], upBefore: new Set(), remote: { kind: 'local' } },
    );
    expect(p.withinMs).toBe(10_000);
    expect(p.tunnels).toEqual(['a', 'b']);
    expect(p.reach).toEqual([
      { label: 'tcp:[fd00::1]:443', host: 'fd00::1', port: 443 },
      { label: 'tcp:10.0.0.1:9418', host: '10.0.0.1', port: 9418 },
    ]);
    expect(p.skipped).toEqual(['git (a local remote)']);
  });
  it('a remote that cannot be read is a target that cannot answer', () => {
    const p = verifyPlan(v({ within: '5s' }), {
      tunnels: [],
      upBefore: new Set(),
      remote: undefined,
    });
    expect(p.reach).toEqual([{ label: 'git', host: '', port: 0 }]);
    expect(judge(p, { elapsedMs: 5000, up: new Set(), reached: new Set() })).toEqual({
      verdict: 'fail',
      reason: "git: the checkout's remote could not be read within 5s of the apply",
    });
  });
  it('reach: [] and no tunnels up before: nothing to check (passes at once)', () => {
    const p = verifyPlan(v({ reach: [] }), { tunnels: ['a'], upBefore: new Set(), remote: net });
    expect(judge(p, { elapsedMs: 0, up: new Set(), reached: new Set() })).toEqual({
      verdict: 'pass',
    });
  });
});

describe('judge', () => {
  const plan = verifyPlan(v({ within: '10s', reach: ['git', 'tcp:10.1.2.3:80'] }), {
    tunnels: ['vpn', 'office'],
    upBefore: new Set(['vpn', 'office']),
    remote: { kind: 'network', host: '10.9.9.9', port: 9418 },
  });
  const all = new Set(['git', 'tcp:10.1.2.3:80']);
  it.each([
    ['everything up and answered: pass', 0, ['vpn', 'office'], [...all], { verdict: 'pass' }],
    ['before the bound: wait', 9999, ['vpn'], [], { verdict: 'wait' }],
    [
      'at the bound: fail, naming what is missing',
      10_000,
      ['office'],
      ['tcp:10.1.2.3:80'],
      {
        verdict: 'fail',
        reason: 'tunnel(s) vpn not up; git (10.9.9.9:9418) not reached within 10s of the apply',
      },
    ],
    [
      'a pass after the bound still passes',
      50_000,
      ['vpn', 'office'],
      [...all],
      { verdict: 'pass' },
    ],
  ])('%s', (_, elapsedMs, up, reached, want) =>
    expect(judge(plan, { elapsedMs, up: new Set(up), reached: new Set(reached) })).toEqual(want),
  );
});

describe('the book of rejected revisions', () => {
  const r = (revision: string) => ({ revision, reason: 'x', at: '2026-11-27T00:00:00Z' });
  it('records once, keeps the newest MAX_REJECTED, and finds a rejection by revision', () => {
    let book: RolloutRecord = { lastGood: 'a', rejected: [] };
    book = withRejection(book, r('b'));
    book = withRejection(book, { ...r('b'), reason: 'again' });
    expect(book.rejected).toEqual([{ ...r('b'), reason: 'again' }]);
    for (let i = 0; i < MAX_REJECTED + 5; i++) book = withRejection(book, r(`c${i}`));
    expect(book.rejected).toHaveLength(MAX_REJECTED);
    expect(rejectionOf(book, 'b')).toBeUndefined();
    expect(rejectionOf(book, `c${MAX_REJECTED + 4}`)?.revision).toBe(`c${MAX_REJECTED + 4}`);
    expect(rejectionOf(book, undefined)).toBeUndefined();
    expect(book.lastGood).toBe('a');
  });
  it('held back: the rejected revision itself, or a newer one whose files here are the same', () => {
    const book: RolloutRecord = { rejected: [{ ...r('b'), content: 'h-b' }, r('c')] };
    let asked = 0;
    const content = (h: string) => () => (asked++, h);
    expect(heldBack(book, 'b', content('x'))).toEqual({
      rejection: { ...r('b'), content: 'h-b' },
      same: true,
    });
    expect(asked).toBe(0);
    expect(heldBack(book, 'd', content('h-b'))?.rejection.revision).toBe('b');
    expect(heldBack(book, 'd', content('h-b'))?.same).toBe(false);
    expect(heldBack(book, 'd', content('h-d'))).toBeUndefined();
    expect(heldBack({ rejected: [r('c')] }, 'd', content('h-b'))).toBeUndefined();
    expect(heldBack(book, undefined, content('h-b'))).toBeUndefined();
  });

  it('checks the shape of a record read back', () => {
    expect(isRolloutRecord({ rejected: [] })).toBe(true);
    expect(isRolloutRecord({ lastGood: 'a', rejected: [r('b')] })).toBe(true);
    expect(isRolloutRecord({ lastGood: 1, rejected: [] })).toBe(false);
    expect(isRolloutRecord({ rejected: [{ revision: 'b' }] })).toBe(false);
    expect(isRolloutRecord({ rejected: [{ ...r('b'), content: 'h' }] })).toBe(true);
    expect(isRolloutRecord({ rejected: [{ ...r('b'), content: 1 }] })).toBe(false);
    expect(isRolloutRecord(null)).toBe(false);
  });

  it('a sighting read back: a full commit id and a canonical time not after now, else none', () => {
    const now = Date.parse('2026-11-27T12:00:00.000Z');
    const rev = 'a'.repeat(40);
    const at = '2026-11-27T11:00:00.000Z';
    expect(sightingOf({ revision: rev, at }, now)).toEqual({ revision: rev, at: now - 3600_000 });
    expect(sightingOf({ revision: 'b'.repeat(64), at }, now)?.revision).toBe('b'.repeat(64));
    expect(sightingOf({ revision: rev, at: '2026-11-27T12:00:00.000Z' }, now)).toBeDefined();
    const refused: unknown[] = [
      undefined,
      null,
      'x',
      [rev, at],
      { revision: rev },
      { revision: rev, at: now },
      { revision: rev, at: 'yesterday' },
      { revision: rev, at: '2026-11-27T11:00:00Z' }, // not as toISOString writes it
      { revision: rev, at: '2026-11-27T12:00:00.001Z' }, // after now (a clock set back)
      { revision: rev, at: '+275760-09-13T00:00:00.000Z' },
      { revision: 'A'.repeat(40), at },
      { revision: 'a'.repeat(39), at },
      { revision: 'a'.repeat(1 << 20), at },
      { revision: `${rev}\n`, at },
    ];
    for (const r of refused) expect(sightingOf(r, now)).toBeUndefined();
    // a damaged sighting leaves the rest of the record usable
    expect(isRolloutRecord({ lastGood: 'a', rejected: [], seen: 'junk' })).toBe(true);
  });
});
