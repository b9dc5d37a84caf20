/**
 * Runtime limits through the daemon core over fake drivers and a table of processes (no root):
 * a limit is applied by a run before Limit answers (its cgroup, its shaper class), a run that
 * fails takes it back, clear and the process's exit remove it with a run, status and
 * ListProcesses show it, down ends it, and without an applied config there is nothing to
 * shape with.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { DaemonEvent, TopDocument } from '../../../src/daemon/core.js';
import { steadySource } from '../../../src/procs/top/source.fake.js';
import type { ShaperSpec } from '../../../src/model/resources.js';
import { createFakeDriverSet, type FakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { RecordingExec } from '../../helpers/exec.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';
import { FakeLimitSystem } from '../../helpers/limit-system.js';

const classes = (d: FakeDriverSet) =>
  [...d.shaper.objects.values()].flatMap((s: ShaperSpec) =>
    s.classes.map((k) => `${s.device}/${s.direction}:${k.name}@${k.rate}`),
  );

describe('daemon core: runtime limits', () => {
  let dir: string;
  let file: string;
  let d: FakeDriverSet;
  let sys: FakeLimitSystem;
  let daemon: Daemon;
  let events: DaemonEvent[];

  function make(configPath: string | null = file): Daemon {
    const x = new Daemon({
      ...(configPath ? { configPath } : {}),
      drivers: d,
      exec: new RecordingExec(),
      state: new MemoryStateStore(),
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      placement: false,
      limitSystem: sys,
      processes: {
        list: () => [
          {
            pid: 1300,
            ppid: 1,
            name: 'restic',
            path: '/usr/bin/restic',
            cgroup: `/${sys.cgroup(1300)}`,
            route: 'direct',
          },
          {
            pid: 1400,
            ppid: 1,
            name: 'curl',
            path: '/usr/bin/curl',
            cgroup: `/${sys.cgroup(1400)}`,
            route: 'vpn',
          },
        ],
      },
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      trafficSource: () =>
        steadySource([
          { pid: 1400, name: 'curl', cgroup: '/awg/web', up: 100, down: 200 },
          { pid: 1300, name: 'restic', up: 100, down: 200 },
          { pid: 1401, name: 'curl', up: 100, down: 200 },
        ]),
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
  const finished = (e: DaemonEvent) => e.type === 'reconcile-finished';

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-core-limits-'));
    file = join(dir, 'awg.yaml');
    writeFileSync(file, oneTunnelConfig({ allowedIPs: '10.200.50.0/24' }));
    d = createFakeDriverSet();
    sys = new FakeLimitSystem([
      {
        pid: 1300,
        ppid: 1,
        uid: 0,
        exe: '/usr/bin/restic',
        comm: 'restic',
        cgroup: 'system.slice/backup.service',
        start: '130',
      },
      {
        pid: 1400,
        ppid: 1,
        uid: 1000,
        exe: '/usr/bin/curl',
        comm: 'curl',
        cgroup: 'awg/web',
        start: '140',
      },
    ]);
  });
  afterEach(async () => {
    await daemon?.stop({ teardown: false });
    rmSync(dir, { recursive: true, force: true });
  });

  it('Limit answers once a run applied it: its cgroup and its class; status and processes show it; clear takes them away', async () => {
    daemon = make();
    await daemon.start();
    await until(finished);
    expect(classes(d)).toEqual([]);
    const n = events.length;
    const r = await daemon.limit(
      { pid: 1400, upload: 2_000_000, download: 1_000_000 },
      { uid: 1000, root: false },
    );
    expect(r).toMatchObject({
      changed: true,
      limit: { pid: 1400, group: 'awg/web/_limit-1400', processes: 1 },
    });
    expect(sys.cgroup(1400)).toBe('awg/web/_limit-1400');
    expect(d.cgroup.objects.has('cgroup/awg/web/_limit-1400')).toBe(true);
    expect(classes(d)).toEqual(
      expect.arrayContaining([
        'awg-vpn/egress:pid/1400@2000000',
        'awg-vpn/ingress:pid/1400@1000000',
      ]),
    );
    expect(events.slice(n).map((e) => e.type)).toEqual([
      'limit',
      'reconcile-started',
      'reconcile-finished',
    ]);
    expect(events.slice(n).find(finished)).toMatchObject({ reason: 'api', outcome: 'converged' });
    expect((await daemon.status()).limits?.map((l) => l.pid)).toEqual([1400]);
    expect(await daemon.listLimits()).toEqual((await daemon.status()).limits);
    const ps = await daemon.listProcesses();
    expect(ps.find((p) => p.pid === 1400)?.limit).toEqual({
      pid: 1400,
      upload: 2_000_000,
      download: 1_000_000,
    });
    expect(ps.find((p) => p.pid === 1300)?.limit).toBeUndefined();
    // the same again: no run
    const m = events.length;
    expect(
      (await daemon.limit({ pid: 1400, upload: 2_000_000, download: 1_000_000 })).changed,
    ).toBe(false);
    expect(events.length).toBe(m);
    await daemon.limit({ pid: 1400, clear: true }, { uid: 1000, root: false });
    expect(sys.cgroup(1400)).toBe('awg/web');
    expect(classes(d)).toEqual([]);
    expect(d.cgroup.objects.has('cgroup/awg/web/_limit-1400')).toBe(false);
    expect(await daemon.listLimits()).toEqual([]);
    expect((await daemon.status()).limits).toBeUndefined();
  });

  it('a run that fails takes the limit back: the process returns, no limit is held, the error says so', async () => {
    daemon = make();
    await daemon.start();
    await until(finished);
    d.shaper.failOn(d.shaper.applyCalls + 1);
    const e = await daemon.limit({ pid: 1300, download: 1_000_000 }).then(
      () => undefined,
      (x: unknown) => x as { kind: string; message: string },
    );
    expect(e?.message).toMatch(
      /^the limit of process 1300 is not set: the run that applies it ended /,
    );
    expect(sys.cgroup(1300)).toBe('system.slice/backup.service');
    expect(await daemon.listLimits()).toEqual([]);
    expect(
      events.filter((x) => x.type === 'limit').map((x) => x.type === 'limit' && x.action),
    ).toEqual(['added', 'removed']);
  });

  it('more limits than classes: refused by the model before anything is applied', async () => {
    for (let i = 0; i < 33; i++)
      sys.add({
        pid: 3000 + i,
        ppid: 1,
        uid: 0,
        exe: '/usr/bin/x',
        comm: 'x',
        cgroup: 'awg/web',
        start: String(300 + i),
      });
    daemon = make();
    await daemon.start();
    await until(finished);
    for (let i = 0; i < 32; i++) await daemon.limit({ pid: 3000 + i, download: 1_000_000 });
    const applies = d.shaper.applyCalls;
    const e = await daemon.limit({ pid: 3032, download: 1_000_000 }).then(
      () => undefined,
      (x: unknown) => x as { kind: string; message: string },
    );
    expect(e?.kind).toBe('invalid-config');
    expect(e?.message).toContain('at most 32 limits can be in force at once');
    expect(sys.cgroup(3032)).toBe('awg/web');
    expect(d.shaper.applyCalls).toBe(applies);
    expect(await daemon.listLimits()).toHaveLength(32);
  });

  it('the process and its children exit: the cgroup’s watch wakes a run that removes the limit and its class', async () => {
    daemon = make();
    await daemon.start();
    await until(finished);
    await daemon.limit({ pid: 1300, download: 1_000_000 });
    expect(sys.cgroup(1300)).toBe('awg/_limit-1300');
    const n = events.length;
    sys.exit(1300);
    sys.watched.get('awg/_limit-1300')!();
    await until((e) => e.type === 'limit' && e.action === 'removed', n);
    const run = await until((e) => finished(e) && e.reason === 'limit', n);
    expect(run).toMatchObject({ outcome: 'converged' });
    expect(classes(d)).toEqual([]);
    expect(sys.exists('awg/_limit-1300')).toBe(false);
  });

  it('awg top: the limited process and the children in its cgroup carry the limit; the others none', async () => {
    daemon = make();
    await daemon.start();
    await until(finished);
    await daemon.limit({ pid: 1400, download: 1_000_000 });
    // a child forked after the limit: born in its cgroup
    sys.add({
      pid: 1401,
      ppid: 1400,
      uid: 1000,
      exe: '/usr/bin/curl',
      comm: 'curl',
      cgroup: 'awg/web/_limit-1400',
      start: '141',
    });
    const docs: TopDocument[] = [];
    const off = daemon.top(
      { intervalMs: 50, connections: false },
      (d) => docs.push(d),
      () => {},
    );
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (docs.length < 1) await new Promise((r) => setTimeout(r, 5));
    off();
    const rows = docs[0]!.processes;
    expect(rows.find((p) => p.pid === 1400)?.limit).toEqual({ download: 1_000_000 });
    expect(rows.find((p) => p.pid === 1401)?.limit).toEqual({ download: 1_000_000 });
    expect(rows.find((p) => p.pid === 1300)?.limit).toBeUndefined();
  });

  it('down ends every limit', async () => {
    daemon = make();
    await daemon.start();
    await until(finished);
    await daemon.limit({ pid: 1400, download: 1_000_000 });
    await daemon.down();
    expect(await daemon.listLimits()).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'limit', action: 'removed', reason: 'down' });
    expect(classes(d)).toEqual([]);
  });

  it('without an applied config there is nothing to shape with', async () => {
    daemon = make(null);
    await daemon.start();
    await expect(daemon.limit({ pid: 1400, download: 1_000_000 })).rejects.toMatchObject({
      kind: 'invalid-config',
      message: expect.stringContaining('no config is applied'),
    });
    expect(sys.cgroup(1400)).toBe('awg/web');
  });
});
