/**
 * The rollout gate wired into the daemon (fake drivers, a real git checkout, a simulated clock
 * and timer): a new commit whose wave is not due leaves the last good revision running and
 * says so in the status and the events; the gate's timer wakes the loop when the wave is due
 * and the revision is applied then — no file changes in between.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
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
const WAVES = `fleet:
  waves:
    - { labels: { ring: canary } }
    - { percent: 100, after: 1h }
`;
// a host outside any 10 % (any name lands in the second wave here: no canary label)
const HOST = Array.from({ length: 50 }, (_, i) => `web-${i}`).find((n) => hostSlot(n) >= 10)!;

describe('daemon: the rollout gate before a new revision', () => {
  let dir: string;
  let daemon: Daemon | undefined;
  let events: DaemonEvent[];
  let waiters: (() => void)[];
  let now: number;
  let timers: { ms: number; fn: () => void }[];

  const { git, commit } = gitCheckout(() => dir, T0);
  const until = eventWait(
    () => events,
    () => waiters,
  );

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-rollout-'));
    git(['init', '-q', '-b', 'main']);
    git(['config', 'user.email', 'ops@example.org']);
    git(['config', 'user.name', 'ops']);
    events = [];
    waiters = [];
    now = T0 + MIN;
    timers = [];
  });
  afterEach(async () => {
    await daemon?.stop({ teardown: false });
    daemon = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds a commit until its wave is due, then applies it on the timer', async () => {
    const first = commit(oneTunnelConfig({ rule: false }) + WAVES, 'first');
    const d = createFakeDriverSet();
    daemon = new Daemon({
      configPath: join(dir, 'awg.yaml'),
      selection: { host: HOST, labels: {}, os: 'linux' },
      drivers: d,
      exec: new RecordingExec(),
      state: new MemoryStateStore(),
      reporter: new MemoryReporter(),
      facts: { cgroupNftPrefix: '' },
      platform: (({ watchNetwork: _, ...p }) => p)(await loadPlatform('linux')),
      wakes: { settleMs: 20 },
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      rollout: {
        now: () => now,
        timer: (ms, fn) => {
          const t = { ms, fn };
          timers.push(t);
          return () => void timers.splice(timers.indexOf(t), 1);
        },
      },
    });
    daemon.subscribe((e) => {
      events.push(e);
      for (const w of waiters.splice(0)) w();
    });
    await daemon.start();
    // the first config runs whatever its waves say: there is nothing else to run
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    expect((await daemon.status()).config?.revision).toBe(first);

    const from = events.length;
    const second = commit(
      oneTunnelConfig({ rule: false, allowedIPs: '10.0.0.0/8' }) + WAVES,
      'narrower',
    );
    // what the checkout's watch does (its re-arm after the first run is not awaited here)
    daemon.wake('config');
    const held = await until((e) => e.type === 'rollout', from);
    expect(held).toMatchObject({
      revision: second,
      state: 'waiting',
      wave: 2,
      dueAt: new Date(T0 + 60 * MIN).toISOString(),
    });
    // the run while held reconciles toward the first revision: no config change
    const heldRun = await until((e) => e.type === 'reconcile-finished', from);
    expect(heldRun).toMatchObject({ outcome: 'unchanged', summary: { config: 0 } });
    const st = await daemon.status();
    expect(st.config).toMatchObject({
      revision: first,
      checkoutRevision: second,
      valid: true,
      rollout: { revision: second, state: 'waiting', wave: 2 },
    });
    expect(timers.map((t) => t.ms)).toEqual([59 * MIN]);

    // the wave comes due: the timer wakes the loop, which applies the commit
    const due = events.length;
    now = T0 + 60 * MIN;
    timers[0]!.fn();
    await until((e) => e.type === 'rollout' && e.state === 'applying', due);
    const done = await until(
      (e) => e.type === 'reconcile-finished' && e.outcome === 'converged',
      due,
    );
    expect(done).toMatchObject({
      summary: expect.objectContaining({ config: expect.any(Number) }),
    });
    const after = await daemon.status();
    expect(after.config?.revision).toBe(second);
    expect(after.config?.rollout).toBeUndefined();
  });
});
