/**
 * The last good revision across a daemon restart (last-good.ts), with fake drivers, a real git
 * checkout and a simulated clock: a daemon restarted while the rollout gate holds HEAD back
 * (its wave not due) or while HEAD is a rejected revision runs a copy of the last good
 * revision materialised from git, and takes HEAD when the gate admits it. A last good revision
 * git cannot give back is said loudly, and HEAD runs (the host comes up).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { LastGoodDir, materialise, readBlobs } from '../../../src/daemon/last-good.js';
import { ROLLOUT_STATE_KEY } from '../../../src/daemon/revision-gate.js';
import { hostSlot } from '../../../src/daemon/rollout-waves.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { loadPlatform } from '../../../src/resources/registry.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { RecordingExec } from '../../helpers/exec.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';
import { eventWait, gitCheckout } from './rollout-rig.js';

const T0 = Date.parse('2026-11-27T12:00:00Z');
const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const WAVES = `fleet:
  waves:
    - { labels: { ring: canary } }
    - { percent: 100, after: 1h }
`;
const HOST = Array.from({ length: 50 }, (_, i) => `web-${i}`).find((n) => hostSlot(n) >= 10)!;

describe('daemon: the last good revision across a restart', () => {
  let dir: string;
  let stateDir: string;
  let daemon: Daemon | undefined;
  let events: DaemonEvent[];
  let waiters: (() => void)[];
  let now: number;
  let timers: { ms: number; fn: () => void }[];
  let looks: (() => void)[];
  let state: MemoryStateStore;
  let drivers: ReturnType<typeof createFakeDriverSet>;

  const { git, commit } = gitCheckout(() => dir, T0);
  const until = eventWait(
    () => events,
    () => waiters,
  );
  async function startDaemon(): Promise<Daemon> {
    const d = new Daemon({
      configPath: join(dir, 'awg.yaml'),
      selection: { host: HOST, labels: {}, os: 'linux' },
      drivers,
      exec: new RecordingExec(),
      state,
      reporter: new MemoryReporter(),
      facts: { cgroupNftPrefix: '' },
      platform: (({ watchNetwork: _, ...p }) => p)(await loadPlatform('linux')),
      wakes: { settleMs: 20 },
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      verify: {
        now: () => now,
        timer: (_ms, fn) => {
          looks.push(fn);
          return () => void looks.splice(looks.indexOf(fn), 1);
        },
        connect: async () => false,
      },
      rollout: {
        now: () => now,
        timer: (ms, fn) => {
          const t = { ms, fn };
          timers.push(t);
          return () => void timers.splice(timers.indexOf(t), 1);
        },
      },
    });
    d.subscribe((e) => {
      events.push(e);
      for (const w of waiters.splice(0)) w();
    });
    daemon = d;
    await d.start();
    return d;
  }
  async function restart(): Promise<number> {
    await daemon?.stop({ teardown: false });
    daemon = undefined;
    const from = events.length;
    await startDaemon();
    return from;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-restart-'));
    stateDir = mkdtempSync(join(tmpdir(), 'awg-restart-state-'));
    git(['init', '-q', '-b', 'main']);
    git(['config', 'user.email', 'ops@example.org']);
    git(['config', 'user.name', 'ops']);
    events = [];
    waiters = [];
    now = T0 + MIN;
    timers = [];
    looks = [];
    state = new MemoryStateStore();
    drivers = createFakeDriverSet();
  });
  afterEach(async () => {
    await daemon?.stop({ teardown: false });
    daemon = undefined;
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('restarted while HEAD waits for its wave: runs the last good revision, then HEAD when due', async () => {
    const first = commit(oneTunnelConfig({ rule: false }) + WAVES, 'first');
    const d1 = await startDaemon();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    expect((await d1.status()).config?.revision).toBe(first);
    // the record in the state directory names the last good revision
    expect(state.get(ROLLOUT_STATE_KEY)).toMatchObject({ lastGood: first });

    // the checkout moves while the daemon is down (awg sync pulled)
    const second = commit(
      oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }) + WAVES,
      'narrower',
    );
    const from = await restart();
    const held = await until((e) => e.type === 'rollout', from);
    expect(held).toMatchObject({ revision: second, state: 'waiting', wave: 2 });
    const run = await until((e) => e.type === 'reconcile-finished', from);
    // the host runs what it ran before the restart: nothing changes
    expect(run).toMatchObject({ outcome: 'unchanged', summary: { config: 0 } });
    const st = await daemon!.status();
    expect(st.config).toMatchObject({
      revision: first,
      checkoutRevision: second,
      valid: true,
      rollout: { revision: second, state: 'waiting', wave: 2 },
    });
    expect(events.slice(from).filter((e) => e.type === 'error')).toEqual([]);

    // the wave comes due: HEAD is taken
    const due = events.length;
    now = T0 + 60 * MIN;
    timers.at(-1)!.fn();
    await until((e) => e.type === 'rollout' && e.state === 'applying', due);
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged', due);
    const after = await daemon!.status();
    expect(after.config?.revision).toBe(second);
    expect(after.config?.rollout).toBeUndefined();
    // the last good revision is held to go back to: HEAD is checked after its apply
    expect(after.config?.verifying?.revision).toBe(second);
  });

  it('a commit pushed days after its date: its waves count from the first sighting, kept across a restart', async () => {
    const first = commit(oneTunnelConfig({ rule: false }) + WAVES, 'first');
    await startDaemon();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');

    // the commit is dated T0 (the rig's date) and reaches the host three days later
    const seen = T0 + 3 * DAY;
    now = seen;
    const from = events.length;
    const second = commit(
      oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }) + WAVES,
      'made long ago',
    );
    daemon!.wake('config');
    const dueAt = new Date(seen - 10 * MIN + 60 * MIN).toISOString();
    expect(await until((e) => e.type === 'rollout', from)).toMatchObject({
      revision: second,
      state: 'waiting',
      wave: 2,
      dueAt,
    });
    expect(state.get(ROLLOUT_STATE_KEY)).toMatchObject({
      lastGood: first,
      seen: { revision: second, at: new Date(seen).toISOString() },
    });

    // restarted 20 min later: the recorded sighting, the same due time (not 50 min from now)
    now = seen + 20 * MIN;
    const again = await restart();
    expect(await until((e) => e.type === 'rollout', again)).toMatchObject({
      revision: second,
      state: 'waiting',
      dueAt,
    });
    const run = await until((e) => e.type === 'reconcile-finished', again);
    expect(run).toMatchObject({ outcome: 'unchanged', summary: { config: 0 } });
    const st = await daemon!.status();
    expect(st.config).toMatchObject({
      revision: first,
      checkoutRevision: second,
      rollout: { revision: second, state: 'waiting', wave: 2, dueAt },
    });
    expect(st.config?.rollout?.message).toMatch(/counted from .* first saw the commit/);
    expect(timers.at(-1)!.ms).toBe(30 * MIN);
    expect(events.slice(again).filter((e) => e.type === 'error')).toEqual([]);

    // due: applied on the timer
    const due = events.length;
    now = Date.parse(dueAt);
    timers.at(-1)!.fn();
    await until((e) => e.type === 'rollout' && e.state === 'applying', due);
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged', due);
    expect((await daemon!.status()).config?.revision).toBe(second);
  });

  it('a damaged or hostile sighting in the record: the revision counts as unseen, the rest of the record holds', async () => {
    const first = commit(oneTunnelConfig({ rule: false }) + WAVES, 'first');
    await startDaemon();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    const second = commit(
      oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }) + WAVES,
      'made long ago',
    );
    const bad: unknown[] = [
      { revision: second, at: 'yesterday' },
      // before the restart's clock would make the wave due at once; after it, it is refused
      { revision: second, at: new Date(T0 + 30 * DAY).toISOString() },
      { revision: second.repeat(1000), at: new Date(T0).toISOString() },
      'junk',
    ];
    for (const seen of bad) {
      await daemon?.stop({ teardown: false });
      daemon = undefined;
      now += DAY;
      state.set(ROLLOUT_STATE_KEY, { lastGood: first, rejected: [], seen });
      const from = events.length;
      await startDaemon();
      expect(await until((e) => e.type === 'rollout', from)).toMatchObject({
        revision: second,
        state: 'waiting',
        dueAt: new Date(now + 50 * MIN).toISOString(),
      });
      const run = await until((e) => e.type === 'reconcile-finished', from);
      expect(run).toMatchObject({ outcome: 'unchanged', summary: { config: 0 } });
      expect((await daemon!.status()).config?.revision).toBe(first);
      // replaced by this start's sighting
      expect(state.get(ROLLOUT_STATE_KEY)).toEqual({
        lastGood: first,
        rejected: [],
        seen: { revision: second, at: new Date(now).toISOString() },
      });
    }
  });

  it('restarted while the rollout is halted: runs the last good revision', async () => {
    const first = commit(oneTunnelConfig({ rule: false }) + WAVES, 'first');
    await startDaemon();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    const second = commit(
      oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }) + WAVES + '  halt: true\n',
      'halted',
    );
    const from = await restart();
    expect(await until((e) => e.type === 'rollout', from)).toMatchObject({
      revision: second,
      state: 'halted',
    });
    const run = await until((e) => e.type === 'reconcile-finished', from);
    expect(run).toMatchObject({ outcome: 'unchanged', summary: { config: 0 } });
    expect((await daemon!.status()).config).toMatchObject({
      revision: first,
      checkoutRevision: second,
      rollout: { revision: second, state: 'halted' },
    });
  });

  it('restarted with a rejected revision at HEAD: runs the last good revision', async () => {
    const first = commit(oneTunnelConfig({ rule: false }), 'first');
    await startDaemon();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    const second = commit(oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }), 'bad');
    state.set(ROLLOUT_STATE_KEY, {
      lastGood: first,
      rejected: [
        { revision: second, reason: 'tunnel(s) vpn not up', at: new Date(T0).toISOString() },
      ],
    });
    const from = await restart();
    const run = await until((e) => e.type === 'reconcile-finished', from);
    expect(run).toMatchObject({ outcome: 'unchanged', summary: { config: 0 } });
    const st = await daemon!.status();
    expect(st.config).toMatchObject({ revision: first, checkoutRevision: second, valid: true });
    expect(st.config?.rejected?.map((r) => r.revision)).toEqual([second]);
  });

  it('restarted with HEAD admitted: HEAD runs and is checked, the last good revision to go back to', async () => {
    const first = commit(oneTunnelConfig({ rule: false }), 'first');
    await startDaemon();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    const second = commit(oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }), 'next');
    const from = await restart();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged', from);
    const st = await daemon!.status();
    expect(st.config?.revision).toBe(second);
    expect(st.config?.verifying?.revision).toBe(second);
    expect(events.slice(from).filter((e) => e.type === 'error')).toEqual([]);
    expect(state.get(ROLLOUT_STATE_KEY)).toMatchObject({ lastGood: first });

    // the check fails (the repository's remote cannot be read): back to the last good revision
    const failAt = events.length;
    now += 2 * MIN;
    for (const look of looks.splice(0)) look();
    const rejected = await until((e) => e.type === 'revision-rejected', failAt);
    expect(rejected).toMatchObject({ revision: second, revertedTo: first });
    const back = await daemon!.status();
    expect(back.config?.revision).toBe(first);
    expect(back.config?.rejected?.map((r) => r.revision)).toEqual([second]);
  });

  it('restarted before the check of HEAD ended, HEAD already in place: checked again, not taken as good', async () => {
    const first = commit(oneTunnelConfig({ rule: false }), 'first');
    await startDaemon();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    const second = commit(oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }), 'next');
    let from = await restart();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged', from);
    expect(state.get(ROLLOUT_STATE_KEY)).toMatchObject({ lastGood: first, checking: second });

    // the daemon goes down during the check (a revision that kills it, a reboot)
    from = await restart();
    const run = await until((e) => e.type === 'reconcile-finished', from);
    expect(run).toMatchObject({ outcome: 'unchanged' }); // HEAD is in place: nothing to change
    const st = await daemon!.status();
    expect(st.config?.revision).toBe(second);
    expect(st.config?.verifying?.revision).toBe(second);
    expect(state.get(ROLLOUT_STATE_KEY)).toMatchObject({ lastGood: first, checking: second });

    const failAt = events.length;
    now += 2 * MIN;
    for (const look of looks.splice(0)) look();
    expect(await until((e) => e.type === 'revision-rejected', failAt)).toMatchObject({
      revision: second,
      revertedTo: first,
    });
    expect((await daemon!.status()).config?.revision).toBe(first);
    expect(state.get(ROLLOUT_STATE_KEY)).not.toHaveProperty('checking');
  });

  it('a last good revision git cannot give back: an error, and HEAD runs', async () => {
    commit(oneTunnelConfig({ rule: false }) + WAVES, 'first');
    await startDaemon();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    const second = commit(
      oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }) + WAVES,
      'narrower',
    );
    state.set(ROLLOUT_STATE_KEY, { lastGood: 'f'.repeat(40), rejected: [] });
    const from = await restart();
    const err = await until((e) => e.type === 'error', from);
    expect(err).toMatchObject({ kind: 'verification' });
    expect((err as { message: string }).message).toMatch(/cannot be materialised/);
    const run = await until(
      (e) => e.type === 'reconcile-finished' && e.outcome === 'converged',
      from,
    );
    expect(run).toBeDefined();
    expect((await daemon!.status()).config?.revision).toBe(second);
  });

  it('materialise: the tree of a commit, relative and untracked files resolving', () => {
    writeFileSync(join(dir, '.gitignore'), 'secret.key\n');
    writeFileSync(join(dir, 'secret.key'), 'KEY\n', { mode: 0o600 });
    execFileSync('mkdir', ['-p', join(dir, 'hosts')]);
    writeFileSync(join(dir, 'hosts', 'a.yaml'), 'old\n');
    git(['add', '.gitignore', 'hosts/a.yaml']);
    const rev = commit('config: 1\n', 'one');
    writeFileSync(join(dir, 'hosts', 'a.yaml'), 'new\n');
    commit('config: 2\n', 'two');
    const into = join(stateDir, 'last-good');
    const file = materialise(join(dir, 'awg.yaml'), rev, into);
    expect(file).toBe(join(into, 'awg.yaml'));
    expect(readFileSync(file, 'utf8')).toBe('config: 1\n');
    expect(readFileSync(join(into, 'hosts', 'a.yaml'), 'utf8')).toBe('old\n');
    expect(readFileSync(join(into, 'secret.key'), 'utf8')).toBe('KEY\n');
    expect(() => materialise(join(dir, 'awg.yaml'), 'e'.repeat(40), into)).toThrow();
  });

  it('materialise reads every blob through one git process; output that does not parse is refused', () => {
    const a = 'a'.repeat(40);
    const b = 'b'.repeat(40);
    const out = Buffer.from(`${a} blob 3\nx\ny\n${b} blob 0\n\n`);
    expect(readBlobs(out, [a, b]).map((x) => x.toString())).toEqual(['x\ny', '']);
    expect(() => readBlobs(Buffer.from(`${a} missing\n`), [a])).toThrow(/where blob/);
    expect(() => readBlobs(Buffer.from(`${a} blob 9\nxy\n`), [a])).toThrow(/cut short/);
    expect(() => readBlobs(out, [b, a])).toThrow(/where blob/);
    expect(() => readBlobs(Buffer.from(`${a} blob 1\nx\n`), [a, b])).toThrow(/no header/);
  });

  it('with the state in memory the copy goes to a private temp directory of its own, removed on close', () => {
    const memory = new LastGoodDir(':memory:');
    const made = memory.path();
    expect(memory.path()).toBe(made);
    expect(made).toMatch(/awg-last-good-/);
    expect(statSync(made).mode & 0o777).toBe(0o700);
    const other = new LastGoodDir(':memory:');
    expect(other.path()).not.toBe(made);
    memory.close();
    other.close();
    expect(existsSync(made)).toBe(false);
    expect(new LastGoodDir('/var/lib/awg').path()).toBe('/var/lib/awg/last-good');
  });
});
