/**
 * The daemon core over fake drivers (no root): start converges, apply with a confirm
 * timeout reverts unless confirmed, an invalid config keeps the last good state, terminal
 * errors block the loop, down, stop with and without the kill switch, diff, status.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { createFakeDriverSet, type FakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { AppliedStore } from '../../../src/pipeline/applied.js';
import { plan } from '../../../src/reconciler/plan.js';
import { RecordingExec } from '../../helpers/exec.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';
import { MemoryReporter, type Reporter } from '../../../src/util/reporter.js';

function config(opts: { allowed?: string[]; killSwitch?: boolean } = {}): string {
  return oneTunnelConfig({
    allowedIPs: (opts.allowed ?? ['10.200.50.0/24']).join(', '),
    rule: false,
    killSwitch: opts.killSwitch ?? false,
  });
}

const routeDsts = (d: FakeDriverSet) =>
  [...d.route.objects.values()]
    .filter((r) => r.type === 'unicast')
    .map((r) => r.dst)
    .sort();
const allIds = (d: FakeDriverSet) =>
  Object.values(d)
    .flatMap((f) => [...f.objects.keys()])
    .sort();

describe('daemon core', () => {
  let dir: string;
  let file: string;
  let d: FakeDriverSet;
  let daemon: Daemon;
  let events: DaemonEvent[];
  let timers: { ms: number; fn: () => void; cancelled: boolean }[];

  function make(
    opts: { configPath?: string; state?: MemoryStateStore; reporter?: Reporter } = {},
  ): Daemon {
    timers = [];
    const x = new Daemon({
      configPath: opts.configPath ?? file,
      drivers: d,
      exec: new RecordingExec(),
      state: opts.state ?? new MemoryStateStore(),
      ...(opts.reporter ? { reporter: opts.reporter } : {}),
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      timer: (ms, fn) => {
        const t = { ms, fn, cancelled: false };
        timers.push(t);
        return () => (t.cancelled = true);
      },
    });
    events = [];
    x.subscribe((e) => events.push(e));
    return x;
  }

  async function until(pred: (e: DaemonEvent) => boolean, from = 0): Promise<DaemonEvent> {
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    for (;;) {
      const hit = events.slice(from).find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-core-'));
    file = join(dir, 'awg.yaml');
    writeFileSync(file, config());
    d = createFakeDriverSet();
  });
  afterEach(async () => {
    await daemon?.stop({ teardown: false });
    rmSync(dir, { recursive: true, force: true });
  });

  it('awg exec needs no daemon on Linux (cgroups): routeExec is unsupported and registers nothing', async () => {
    daemon = make();
    await expect(daemon.routeExec(process.pid, { tunnel: 'work' }, () => {})).rejects.toMatchObject(
      {
        kind: 'unsupported',
        message: expect.stringMatching(
          /on Linux awg exec places itself in a cgroup and needs no daemon$/,
        ),
      },
    );
  });

  it('converges on start; status reports it; a second run changes nothing', async () => {
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    expect(events.find((e) => e.type === 'reconcile-finished')).toMatchObject({
      reason: 'start',
      outcome: 'converged',
    });
    expect(routeDsts(d)).toEqual(['10.200.50.0/24']);
    const st = await daemon.status();
    expect(st.state).toBe('converged');
    expect(st.objects.map((o) => o.id)).toContain('link/awg-vpn');
    expect(st.tunnels.map((t) => t.name)).toEqual(['vpn']);
    const n = events.length;
    daemon.wake('api');
    const again = await until((e) => e.type === 'reconcile-finished', n);
    expect(again).toMatchObject({
      outcome: 'unchanged',
      summary: { create: 0, update: 0, delete: 0 },
    });
  });

  // Before: accepted, applied, and a window of 2^32-1 s opened; setTimeout fires at once past
  // 2^31-1 ms, so the apply was reverted immediately behind the caller's back.
  it.each([2 ** 32 - 1, 86_401, -5, 1.5])(
    'a confirm timeout of %s s is refused before anything is read or applied',
    async (sec) => {
      daemon = make();
      await daemon.start();
      await until((e) => e.type === 'reconcile-finished');
      const fileB = join(dir, 'b.yaml');
      writeFileSync(fileB, config({ allowed: ['10.200.50.0/24', '10.200.51.0/24'] }));
      await expect(
        daemon.apply({ configPath: fileB, confirmTimeoutSec: sec }),
      ).rejects.toMatchObject({
        kind: 'invalid-config',
        message: expect.stringContaining('expected whole seconds from 1 to 86400'),
      });
      expect(routeDsts(d)).toEqual(['10.200.50.0/24']);
      expect(events.some((e) => e.type === 'confirm-pending')).toBe(false);
    },
  );

  it('apply with a confirm timeout reverts to the previous state unless confirmed', async () => {
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    const fileB = join(dir, 'b.yaml');
    writeFileSync(fileB, config({ allowed: ['10.200.50.0/24', '10.200.51.0/24'] }));

    const r = await daemon.apply({ configPath: fileB, confirmTimeoutSec: 30 });
    expect(r.outcome).toBe('converged');
    expect(r.confirmDeadline).toBeDefined();
    expect(routeDsts(d)).toEqual(['10.200.50.0/24', '10.200.51.0/24']);
    expect(events.some((e) => e.type === 'confirm-pending')).toBe(true);
    expect((await daemon.status()).confirmDeadline).toBe(r.confirmDeadline);
    expect(timers.at(-1)!.ms).toBe(30_000);

    const n = events.length;
    timers.at(-1)!.fn();
    await until((e) => e.type === 'reverted', n);
    expect(routeDsts(d)).toEqual(['10.200.50.0/24']);
    expect((await daemon.status()).configPath).toBe(file);

    // confirmed in time: the timer is cancelled and nothing reverts
    const r2 = await daemon.apply({ configPath: fileB, confirmTimeoutSec: 30 });
    expect(r2.outcome).toBe('converged');
    expect(await daemon.confirm()).toEqual({ confirmed: true });
    expect(timers.at(-1)!.cancelled).toBe(true);
    expect(await daemon.confirm()).toEqual({ confirmed: false });
    expect(routeDsts(d)).toEqual(['10.200.50.0/24', '10.200.51.0/24']);
  });

  it('apply of an invalid file changes nothing and reports invalid-config; dry run plans only', async () => {
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\ntunnels: 7\n');
    const r = await daemon.apply({ configPath: bad });
    expect(r.error?.kind).toBe('invalid-config');
    const fileB = join(dir, 'b.yaml');
    writeFileSync(fileB, config({ allowed: ['10.200.52.0/24'] }));
    const dry = await daemon.apply({ configPath: fileB, dryRun: true });
    expect(dry.outcome).toBe('planned');
    expect(dry.plan.changes.length).toBeGreaterThan(0);
    const diff = await daemon.diff({ configPath: fileB });
    expect(diff.changes).toBe(true);
    expect(routeDsts(d)).toEqual(['10.200.50.0/24']);
    expect((await daemon.diff({ configPath: file })).changes).toBe(false);
  });

  it('Diffs of a file queued behind a run share one observation; one that comes after it started observes anew', async () => {
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    const fileB = join(dir, 'b.yaml');
    writeFileSync(fileB, config({ allowed: ['10.200.52.0/24'] }));
    const observe = d.route.observe.bind(d.route);
    let observed = 0;
    let holding = false;
    let release = () => {};
    const hold = new Promise<void>((r) => (release = r));
    d.route.observe = async (scope) => {
      observed++;
      if (holding) await hold;
      return observe(scope);
    };
    await daemon.diff({ configPath: file });
    const perDiff = observed;
    expect(perDiff).toBeGreaterThan(0);

    holding = true;
    observed = 0;
    const running = daemon.diff({ configPath: fileB });
    // until B's diff observes (it reads its config file first); no deadline of its own: 100
    // tries of 1 ms each could run out first on a loaded machine; the test's timeout bounds it
    while (observed === 0) await new Promise((r) => setTimeout(r, 1));
    expect(observed).toBe(perDiff);
    // queued behind the running one: five of A join one; B's own started before, so B queues anew
    const storm = Array.from({ length: 5 }, () => daemon.diff({ configPath: file }));
    const againB = daemon.diff({ configPath: fileB });
    expect(new Set(storm).size).toBe(1);
    expect(againB).not.toBe(running);
    release();
    const [a, ...rest] = await Promise.all(storm);
    expect(rest.every((x) => x === a)).toBe(true);
    expect(a!.changes).toBe(false);
    expect((await running).changes).toBe(true);
    expect((await againB).changes).toBe(true);
    expect(observed).toBe(3 * perDiff);
    // nothing is cached: a Diff after they ended observes again
    await daemon.diff({ configPath: file });
    expect(observed).toBe(4 * perDiff);
  });

  it('an invalid config on reload keeps the last good state and reports it once', async () => {
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    const before = allIds(d);
    writeFileSync(file, 'version: 1\ntunnels: [oops\n');
    const n = events.length;
    daemon.wake('config');
    await until((e) => e.type === 'reconcile-finished', n);
    expect(events.slice(n).find((e) => e.type === 'config-changed')).toMatchObject({
      valid: false,
    });
    expect(events.slice(n).some((e) => e.type === 'error' && e.kind === 'invalid-config')).toBe(
      true,
    );
    expect(allIds(d)).toEqual(before);
    const m = events.length;
    daemon.wake('config');
    await until((e) => e.type === 'reconcile-finished', m);
    expect(
      events.slice(m).filter((e) => e.type === 'config-changed' || e.type === 'error'),
    ).toEqual([]);
    writeFileSync(file, config({ allowed: ['10.200.53.0/24'] }));
    const o = events.length;
    daemon.wake('config');
    await until((e) => e.type === 'reconcile-finished', o);
    expect(events.slice(o).find((e) => e.type === 'config-changed')).toMatchObject({ valid: true });
    expect(routeDsts(d)).toEqual(['10.200.53.0/24']);
  });

  it('a terminal error (conflict) blocks the loop until the config changes', async () => {
    d.link.foreign.push({
      kind: 'link',
      id: 'link/awg-vpn',
      relation: 'conflict',
      description: 'a TUN without our marker',
    });
    daemon = make();
    await daemon.start();
    const e = await until((x) => x.type === 'reconcile-finished');
    expect(e).toMatchObject({ outcome: 'failed', error: { kind: 'conflict' } });
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (daemon.loopState() !== 'blocked') await new Promise((r) => setTimeout(r, 2));
    expect(daemon.loopState()).toBe('blocked');
    const n = events.length;
    daemon.wake('network');
    daemon.wake('drift-timer');
    await new Promise((r) => setTimeout(r, 20));
    expect(events.slice(n).filter((x) => x.type === 'reconcile-started')).toEqual([]);
    d.link.foreign.length = 0;
    daemon.wake('config');
    await until((x) => x.type === 'reconcile-finished' && x.outcome === 'converged', n);
    expect((await daemon.status()).state).toBe('converged');
  });

  it('a retryable error backs off (the loop waits in backoff)', async () => {
    d.route.failOn(1);
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (daemon.loopState() !== 'backoff') await new Promise((r) => setTimeout(r, 2));
    expect(daemon.loopState()).toBe('backoff');
    expect((await daemon.status()).lastReconcile?.outcome).toBe('rolled-back');
  });

  it('observation: what it observes of its applied record, with that record, its claims and the facts of the config it runs', async () => {
    const state = new MemoryStateStore();
    daemon = make({ state });
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    const applied = new AppliedStore(state).load()!;
    const r = await daemon.observation();
    expect(r).toMatchObject({
      kind: 'awg-observation',
      version: 1,
      lastApplied: applied.resources,
      claims: applied.claims,
      facts: { cgroupNftPrefix: '' },
    });
    expect(r.observed.resources.map((o) => o.id).sort()).toEqual(
      applied.resources.map((o) => o.id).sort(),
    );
    // what a plan against the record says of the running config: nothing to do
    const drift = plan({ resources: applied.resources, warnings: [] }, r.observed, {
      lastApplied: r.lastApplied!,
    }).changes.filter((c) => c.action !== 'noop');
    expect(drift).toEqual([]);
    await daemon.down();
    const after = await daemon.observation();
    expect(after.observed.resources).toEqual([]);
    expect(after).not.toHaveProperty('lastApplied');
    expect(after).not.toHaveProperty('claims');
    expect(after).not.toHaveProperty('facts');
  });

  it('down removes everything and idles; listProcesses is empty', async () => {
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    const r = await daemon.down();
    expect(r.removed.length).toBeGreaterThan(0);
    expect(allIds(d)).toEqual([]);
    expect((await daemon.status()).state).toBe('down');
    expect(await daemon.listProcesses()).toEqual([]);
  });

  it('stop leaves the host as down would; with the kill switch the firewall stays', async () => {
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    await daemon.stop();
    expect(allIds(d)).toEqual([]);

    writeFileSync(file, config({ killSwitch: true }));
    d = createFakeDriverSet();
    daemon = make();
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    expect(d.firewall.objects.size).toBe(1);
    const r = await daemon.stop();
    expect(r.keptFirewall).toBe(true);
    expect([...d.firewall.objects.keys()]).toEqual(['firewall/inet/awg']);
    expect(d.link.objects.size + d.route.objects.size + d.engine.objects.size).toBe(0);
  });

  // Before: a restarted daemon (a package upgrade, `systemctl restart`) reported every object
  // its own stop had removed as drift ("deleted outside awg", repaired).
  it('a restart restores what the stop removed without calling it drift; real drift is still drift', async () => {
    writeFileSync(file, config({ killSwitch: true }));
    const state = new MemoryStateStore();
    daemon = make({ state });
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished');
    const before = allIds(d);
    await daemon.stop();
    expect([...d.firewall.objects.keys()]).toEqual(['firewall/inet/awg']);

    const infos: string[] = [];
    daemon = make({
      state,
      reporter: { report: (e) => void (e.type === 'info' && infos.push(e.message)) },
    });
    await daemon.start();
    expect(await until((e) => e.type === 'reconcile-finished')).toMatchObject({
      reason: 'start',
      outcome: 'converged',
    });
    expect(allIds(d)).toEqual(before);
    expect(events.filter((e) => e.type === 'drift')).toEqual([]);
    expect(infos).toContainEqual(
      expect.stringMatching(/^restored \d+ object\(s\) the daemon removed when it last stopped$/),
    );

    // the mark is gone with the next save: an object deleted outside awg now is drift again
    const route = [...d.route.objects.keys()][0]!;
    d.route.objects.delete(route);
    const n = events.length;
    daemon.wake('api');
    await until((e) => e.type === 'reconcile-finished', n);
    expect(events.slice(n).find((e) => e.type === 'drift')).toMatchObject({
      ids: [route],
      repaired: true,
    });
  });

  it('no config: idles in state down, waiting for the file (config-wait.test.ts)', async () => {
    const rep = new MemoryReporter();
    daemon = make({ configPath: join(dir, 'absent.yaml'), reporter: rep });
    await daemon.start();
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (!rep.events.some((e) => e.type === 'info')) await new Promise((r) => setTimeout(r, 2));
    expect(rep.events.find((e) => e.type === 'info')).toMatchObject({
      message: expect.stringMatching(/^waiting for the config .*absent\.yaml/),
    });
    expect((await daemon.status()).state).toBe('down');
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    expect(allIds(d)).toEqual([]);
  });
});
