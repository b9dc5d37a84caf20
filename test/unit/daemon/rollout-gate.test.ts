/**
 * The rollout gate (src/daemon/rollout-gate.ts) with a simulated clock and timer, the
 * follower's one call point before a new revision (config-follower.ts `admit`), and the
 * commit reads it relies on (util/git-commit.ts) against a real git with an SSH-signed commit.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { ConfigFollower, type ReadResult } from '../../../src/daemon/config-follower.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { RolloutGate, type Candidate, type Sightings } from '../../../src/daemon/rollout-gate.js';
import { hostSlot } from '../../../src/daemon/rollout-waves.js';
import type { Prepared } from '../../../src/pipeline/prepare.js';
import {
  parseCommit,
  readCommit,
  trailersOf,
  verifyCommit,
  type CommitInfo,
} from '../../../src/util/git-commit.js';

const MIN = 60_000;
const T0 = Date.parse('2026-11-27T12:00:00Z');
const REV = 'b'.repeat(40);
const late = Array.from({ length: 200 }, (_, i) => `h${i}`).find((n) => hostSlot(n) >= 10)!;
const config = (fleet: unknown) => Config.parse({ version: 1, fleet });
const STANDARD = {
  waves: [
    { labels: { ring: 'canary' } },
    { percent: 10, after: '15m' },
    { percent: 100, after: '1h' },
  ],
};

describe('rollout gate', () => {
  let now: number;
  let events: DaemonEvent[];
  let wakes: number;
  let timers: { ms: number; fn: () => void; cancelled: boolean }[];
  let commit: CommitInfo | undefined;
  let verified: boolean;
  let dir: string;

  const gate = (
    o: { labels?: Record<string, string>; signers?: string; sightings?: Sightings } = {},
  ) =>
    new RolloutGate({
      ...(o.sightings ? { sightings: o.sightings } : {}),
      host: { host: late, labels: o.labels ?? {}, os: 'linux' },
      ...(o.signers ? { allowedSigners: o.signers } : {}),
      emit: (e) => events.push(e),
      wake: () => wakes++,
      now: () => now,
      timer: (ms, fn) => {
        const t = { ms, fn, cancelled: false };
        timers.push(t);
        return () => (t.cancelled = true);
      },
      readCommit: async () => commit,
      verifyCommit: async () => (verified ? { ok: true } : { ok: false, why: 'no signature' }),
    });
  const cand = (fleet: unknown): Candidate => ({
    file: join(dir, 'awg.yaml'),
    config: config(fleet),
    revision: REV,
  });
  const live = () => timers.filter((t) => !t.cancelled);

  beforeEach(() => {
    now = T0;
    events = [];
    wakes = 0;
    timers = [];
    commit = { revision: REV, committedAt: T0, message: 'x\n', trailers: {} };
    verified = false;
    dir = mkdtempSync(join(tmpdir(), 'awg-gate-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('no fleet section: admits', async () => {
    expect(await gate().admit(cand(undefined))).toBe(true);
    expect(events).toEqual([]);
  });

  it('holds until the wave is due, says so once, wakes the loop then, and admits', async () => {
    const g = gate();
    expect(await g.admit(cand(STANDARD))).toBe(false);
    expect(g.state).toMatchObject({
      revision: REV,
      state: 'waiting',
      wave: 3,
      dueAt: '2026-11-27T13:00:00.000Z',
      message: 'waiting for wave 3 (wave-3) at 2026-11-27T13:00:00.000Z',
    });
    expect(events).toMatchObject([{ type: 'rollout', state: 'waiting', wave: 3 }]);
    expect(live().map((t) => t.ms)).toEqual([60 * MIN]);
    // a reload in between (drift timer) says nothing new
    now += 10 * MIN;
    expect(await g.admit(cand(STANDARD))).toBe(false);
    expect(events).toHaveLength(1);
    expect(live().map((t) => t.ms)).toEqual([50 * MIN]);
    now = T0 + 60 * MIN;
    live()[0]!.fn();
    expect(wakes).toBe(1);
    expect(await g.admit(cand(STANDARD))).toBe(true);
    expect(g.state).toBeUndefined();
    expect(events.at(-1)).toMatchObject({ type: 'rollout', state: 'applying', wave: 3 });
  });

  it('a canary applies at once, without an event', async () => {
    expect(await gate({ labels: { ring: 'canary' } }).admit(cand(STANDARD))).toBe(true);
    expect(events).toEqual([]);
  });

  it('Awg-Rollout: immediate only on a verified commit', async () => {
    commit = { ...commit!, trailers: { 'awg-rollout': ['immediate'] } };
    // no --allowed-signers: the trailer is ignored, with an error event once
    expect(await gate().admit(cand(STANDARD))).toBe(false);
    expect(events[0]).toMatchObject({ type: 'error', kind: 'permission' });
    events = [];
    expect(await gate({ signers: '/etc/awg/allowed_signers' }).admit(cand(STANDARD))).toBe(false);
    verified = true;
    expect(await gate({ signers: '/etc/awg/allowed_signers' }).admit(cand(STANDARD))).toBe(true);
  });

  it('halt (true, or a file that exists) holds with no timer; halt wins over the trailer', async () => {
    commit = { ...commit!, trailers: { 'awg-rollout': ['immediate'] } };
    verified = true;
    const g = gate({ signers: '/s' });
    expect(await g.admit(cand({ ...STANDARD, halt: true }))).toBe(false);
    expect(g.state).toMatchObject({ state: 'halted', wave: 3 });
    expect(live()).toEqual([]);
    const byFile = { ...STANDARD, halt: { file: 'HALT' } };
    expect(await gate({ signers: '/s' }).admit(cand(byFile))).toBe(true);
    writeFileSync(join(dir, 'HALT'), '');
    expect(await gate({ signers: '/s' }).admit(cand(byFile))).toBe(false);
  });

  it('a commit git cannot read holds a revision with waves and retries (fail closed)', async () => {
    commit = undefined;
    const g = gate();
    expect(await g.admit(cand(STANDARD))).toBe(false);
    expect(g.state?.message).toMatch(/cannot read commit/);
    expect(live().map((t) => t.ms)).toEqual([60_000]);
  });

  it('a commit date ahead of this host counts from the first sighting', async () => {
    commit = { ...commit!, committedAt: T0 + 5 * MIN };
    const g = gate();
    expect(await g.admit(cand({ waves: [{ percent: 100, after: '15m' }] }))).toBe(false);
    expect(g.state?.dueAt).toBe(new Date(T0 + 15 * MIN).toISOString());
  });

  it('a commit pushed days after its date: its waves count from 10 min before this host saw it, kept across a restart', async () => {
    const book = new Map<string, number>();
    const writes: [string, number][] = [];
    const sightings: Sightings = {
      get: (r, at) => {
        const t = book.get(r);
        return t !== undefined && t <= at ? t : undefined;
      },
      set: (r, t) => (writes.push([r, t]), book.set(r, t)),
    };
    const seen = T0 + 3 * 24 * 60 * MIN;
    now = seen;
    const g = gate({ sightings });
    expect(await g.admit(cand(STANDARD))).toBe(false);
    const due = new Date(seen + 50 * MIN).toISOString();
    expect(g.state).toMatchObject({ state: 'waiting', wave: 3, dueAt: due });
    expect(g.state?.message).toMatch(/counted from .* before this host first saw the commit/);
    expect(writes).toEqual([[REV, seen]]);
    // asked again: the sighting is remembered, not written again
    now += 5 * MIN;
    await g.admit(cand(STANDARD));
    expect(writes).toHaveLength(1);
    // a new gate (a restart) 20 min later: the recorded sighting, the same due time
    now = seen + 20 * MIN;
    const again = gate({ sightings });
    expect(await again.admit(cand(STANDARD))).toBe(false);
    expect(again.state?.dueAt).toBe(due);
    expect(live().at(-1)!.ms).toBe(30 * MIN);
    expect(writes).toHaveLength(1);
    // a sighting the record cannot give (none, damaged, after now): from now, and recorded
    book.clear();
    const fresh = gate({ sightings });
    expect(await fresh.admit(cand(STANDARD))).toBe(false);
    expect(fresh.state?.dueAt).toBe(new Date(now + 50 * MIN).toISOString());
    expect(writes.at(-1)).toEqual([REV, now]);
  });

  it('a fresh commit (seen within 10 min of its date) counts from its date: no sighting in the message', async () => {
    now = T0 + 9 * MIN;
    const g = gate({ sightings: { get: () => undefined, set: () => {} } });
    expect(await g.admit(cand(STANDARD))).toBe(false);
    expect(g.state?.message).toBe('waiting for wave 3 (wave-3) at 2026-11-27T13:00:00.000Z');
  });
});

describe('the follower asks the gate before taking a new revision', () => {
  let dir: string;
  let file: string;
  const head = (sha: string) => writeFileSync(join(dir, '.git', 'HEAD'), `${sha}\n`);
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-gate-follow-'));
    file = join(dir, 'awg.yaml');
    mkdirSync(join(dir, '.git'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('first config and unchanged files pass; a new commit with new files waits for admit', async () => {
    const asked: string[] = [];
    let open = false;
    const c = new ConfigFollower({
      file,
      read: async (f): Promise<ReadResult> => ({
        ok: true,
        prepared: { file: f, sources: [f], text: readFileSync(f, 'utf8') } as unknown as Prepared,
      }),
      emit: () => {},
      watch: () => {},
      admit: async ({ revision }) => (asked.push(revision), open),
    });
    head('a'.repeat(40));
    writeFileSync(file, 'one');
    expect((await c.reload()).source).toBeDefined();
    expect(asked).toEqual([]);
    // another commit that leaves this host's files alone: no gate
    head('c'.repeat(40));
    await c.reload();
    expect(asked).toEqual([]);
    expect(c.state({ lastPlanChanges: 0 })?.revision).toBe('c'.repeat(40));
    // a new commit with new files: held, the last good keeps running
    head(REV);
    writeFileSync(file, 'two');
    const held = await c.reload();
    expect(asked).toEqual([REV]);
    expect((held.source?.prepared as unknown as { text: string }).text).toBe('one');
    expect(c.state({ lastPlanChanges: 0 })).toMatchObject({
      revision: 'c'.repeat(40),
      checkoutRevision: REV,
      valid: true,
    });
    open = true;
    const taken = await c.reload();
    expect((taken.source?.prepared as unknown as { text: string }).text).toBe('two');
    expect(c.state({ lastPlanChanges: 0 })?.revision).toBe(REV);
  });
});

describe('commit reads (real git)', () => {
  let dir: string;
  const git = (args: string[], env: Record<string, string> = {}) =>
    execFileSync('git', ['-C', dir, ...args], {
      env: { ...process.env, ...env, GIT_CONFIG_NOSYSTEM: '1', HOME: dir },
      encoding: 'utf8',
    }).trim();
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-gitc-'));
    git(['init', '-q']);
    git(['config', 'user.email', 'ops@example.org']);
    git(['config', 'user.name', 'ops']);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the committer date and trailers; verifies an SSH signature against allowed signers', async () => {
    const key = join(dir, 'key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ops', '-f', key]);
    const pub = readFileSync(`${key}.pub`, 'utf8').trim().split(' ');
    const signers = join(dir, 'allowed_signers');
    writeFileSync(signers, `ops@example.org ${pub[0]} ${pub[1]}\n`);
    writeFileSync(join(dir, 'awg.yaml'), 'version: 1\n');
    git(['add', 'awg.yaml']);
    const date = { GIT_COMMITTER_DATE: '2026-11-27T12:00:00Z' };
    git(['commit', '-q', '-m', 'unsigned\n\nAwg-Rollout: immediate'], date);
    const unsigned = git(['rev-parse', 'HEAD']);
    git(['config', 'gpg.format', 'ssh']);
    git(['config', 'user.signingkey', key]);
    git(['commit', '-q', '-S', '--allow-empty', '-m', 'fix\n\nAwg-Rollout: immediate'], date);
    const signed = git(['rev-parse', 'HEAD']);

    const c = await readCommit(dir, signed);
    expect(c).toMatchObject({ committedAt: T0, trailers: { 'awg-rollout': ['immediate'] } });
    expect(await verifyCommit(dir, signed, signers)).toEqual({ ok: true });
    expect((await verifyCommit(dir, unsigned, signers)).ok).toBe(false);
    expect(await readCommit(dir, 'not-a-sha')).toBeUndefined();
  });

  it('trailers: only a last paragraph made of Key: value lines', () => {
    expect(
      trailersOf('subject\n\nbody text\n\nAwg-Rollout: immediate\nSigned-off-by: x\n'),
    ).toEqual({ 'awg-rollout': ['immediate'], 'signed-off-by': ['x'] });
    expect(trailersOf('Awg-Rollout: immediate\n')).toEqual({});
    expect(trailersOf('s\n\nAwg-Rollout: immediate\nnot a trailer\n')).toEqual({});
    expect(parseCommit(REV, 'tree x\n\nno committer')).toBeUndefined();
  });
});

describe('the rollout in the observation record', () => {
  it('is what the config state says, and crosses the wire', async () => {
    const { rolloutPlaceOf } = await import('../../../src/daemon/rollout-gate.js');
    const { observationFromWire, observationToWire } =
      await import('../../../src/daemon/wire/observation.js');
    const { makeObservationRecord } = await import('../../../src/pipeline/observation.js');
    const rollout = rolloutPlaceOf({
      revision: 'a'.repeat(40),
      checkoutRevision: REV,
      valid: true,
      lastPlanChanges: 0,
      rollout: { revision: REV, state: 'waiting', wave: 2, dueAt: 'T', message: 'm' },
    });
    expect(rollout).toEqual({
      checkoutRevision: REV,
      held: { revision: REV, state: 'waiting', wave: 2, dueAt: 'T' },
    });
    expect(rolloutPlaceOf({ valid: true, lastPlanChanges: 0 })).toBeUndefined();
    const r = {
      ...makeObservationRecord({ resources: [], foreign: [] }, { host: 'h' }),
      rollout: rollout!,
    };
    expect(observationFromWire(observationToWire(r))).toEqual(r);
  });
});
