/**
 * A daemon whose config file does not exist yet (the packaged unit's /etc/awg/config.yaml
 * before the user writes it) waits for it: it says once what it waits for, reports `down`,
 * applies nothing, follows the file when it appears (its directory made after the start
 * too) and, stopped while waiting, leaves the host as it found it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { waitingMessage } from '../../../src/daemon/config-follower.js';
import { createFakeDriverSet, type FakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { loadPlatform } from '../../../src/resources/registry.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { RecordingExec } from '../../helpers/exec.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';

describe('daemon: waiting for a config file that does not exist yet', () => {
  let dir: string;
  let d: FakeDriverSet;
  let daemon: Daemon | undefined;
  let events: DaemonEvent[];
  let waiters: (() => void)[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-wait-'));
    d = createFakeDriverSet();
    events = [];
    waiters = [];
  });
  afterEach(async () => {
    await daemon?.stop({ teardown: false });
    daemon = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** a MemoryReporter that wakes the test's waiters too */
  function reporter(): MemoryReporter {
    const r = new MemoryReporter();
    const report = r.report.bind(r);
    r.report = (e) => {
      report(e);
      for (const w of waiters.splice(0)) w();
    };
    return r;
  }

  /** resolves once `pred` holds (checked at every event and report) */
  function when(pred: () => boolean): Promise<void> {
    return new Promise((res) => {
      const look = () => (pred() ? res() : void waiters.push(look));
      look();
    });
  }

  async function make(file: string, reporter: MemoryReporter, state = new MemoryStateStore()) {
    const x = new Daemon({
      configPath: file,
      drivers: d,
      exec: new RecordingExec(),
      state,
      reporter,
      facts: { cgroupNftPrefix: '' },
      // the config watch only: no rtnetlink monitor in a unit test
      platform: (({ watchNetwork: _, ...p }) => p)(await loadPlatform('linux')),
      wakes: { settleMs: 20 },
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
    });
    x.subscribe((e) => {
      events.push(e);
      for (const w of waiters.splice(0)) w();
    });
    return x;
  }

  /** resolves at the first event (from `from` on) that `pred` accepts */
  function until(pred: (e: DaemonEvent) => boolean, from = 0): Promise<DaemonEvent> {
    return new Promise((res) => {
      const look = () => {
        const hit = events.slice(from).find(pred);
        if (hit) res(hit);
        else waiters.push(look);
      };
      look();
    });
  }

  it('says once what it waits for, applies nothing, then follows the file (and its directory) when they appear', async () => {
    const file = join(dir, 'etc', 'awg', 'config.yaml');
    const rep = reporter();
    daemon = await make(file, rep);
    await daemon.start();
    const infos = () => rep.events.filter((e) => e.type === 'info').map((e) => e.message);
    await when(() => infos().length > 0);
    expect(infos()).toEqual([waitingMessage(file, undefined)]);
    expect(infos()[0]).toMatch(/^waiting for the config .*config\.yaml: it does not exist yet/);
    const st = await daemon.status();
    expect(st.state).toBe('down');
    expect(st.config).toMatchObject({
      valid: false,
      error: `${file} does not exist yet: the daemon applies it when it appears`,
    });
    expect(events.some((e) => e.type === 'error')).toBe(false);
    // no run: nothing to reconcile toward yet
    expect(events.filter((e) => e.type.startsWith('reconcile'))).toEqual([]);

    // the directory first (the watch moves one level down), then the file
    const from = events.length;
    mkdirSync(join(dir, 'etc', 'awg'), { recursive: true });
    writeFileSync(file, oneTunnelConfig({ rule: false }));
    const done = await until(
      (e) => e.type === 'reconcile-finished' && e.reason === 'config' && e.outcome === 'converged',
      from,
    );
    expect(done).toMatchObject({
      summary: expect.objectContaining({ create: expect.any(Number) }),
    });
    expect([...d.link.objects.keys()]).toEqual(['link/awg-vpn']);
    const after = await daemon.status();
    expect(after.state).toBe('converged');
    expect(after.config).toMatchObject({ valid: true });
  });

  it('stopped while waiting it removes nothing, even what an earlier run left (a kill switch from boot stays)', async () => {
    // what a daemon of an earlier boot left: a converged config, then its file went away
    const old = join(dir, 'old.yaml');
    writeFileSync(old, oneTunnelConfig({ rule: false, killSwitch: true }));
    const state = new MemoryStateStore();
    const first = await make(old, reporter(), state);
    await first.start();
    await until((e) => e.type === 'reconcile-finished' && e.outcome === 'converged');
    await first.stop({ teardown: false });
    const before = Object.values(d)
      .flatMap((f) => [...f.objects.keys()])
      .sort();
    expect(before.filter((id) => id.startsWith('firewall/'))).toHaveLength(1);

    events = [];
    const rep = reporter();
    const file = join(dir, 'config.yaml');
    daemon = await make(file, rep, state);
    await daemon.start();
    await when(() => rep.events.some((e) => e.type === 'info'));
    expect(rep.events.filter((e) => e.type === 'info').map((e) => e.message)).toEqual([
      waitingMessage(file, old),
    ]);
    expect(waitingMessage(file, old)).toContain(`\`awg apply -f ${old}\` runs it now`);
    const r = await daemon.stop();
    daemon = undefined;
    expect(r).toEqual({ removed: [], keptFirewall: false });
    expect(
      Object.values(d)
        .flatMap((f) => [...f.objects.keys()])
        .sort(),
    ).toEqual(before);
  });
});
