/**
 * The daemon's events go through its event log (event-log.ts): ids `<run>.<seq>`, the position
 * a fresh subscriber starts at, resuming after an id, and a gap for another run's id (fake
 * drivers, no root).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';
import { RecordingExec } from '../../helpers/exec.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function make(): Daemon {
  const dir = mkdtempSync(join(tmpdir(), 'awg-devents-'));
  const file = join(dir, 'awg.yaml');
  writeFileSync(
    file,
    oneTunnelConfig({ allowedIPs: '10.200.50.0/24', rule: false, killSwitch: false }),
  );
  const d = new Daemon({
    configPath: file,
    drivers: createFakeDriverSet(),
    exec: new RecordingExec(),
    state: new MemoryStateStore(),
    facts: { cgroupNftPrefix: '' },
    wakes: false,
    trafficIntervalMs: 0,
    loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
  });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => d.stop({ teardown: false }));
  return d;
}

async function until(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise((r) => setTimeout(r, 2));
}

it('events carry ids of one run; a subscriber resumes after one, or gets a gap first', async () => {
  const daemon = make();
  const start = daemon.lastEventId();
  const [run, seq] = start.split('.');
  expect(run).toMatch(/^[0-9a-f]{8}$/);
  expect(seq).toBe('0');
  const got: { e: DaemonEvent; id: string }[] = [];
  const off = daemon.subscribe((e, id) => got.push({ e, id }));
  await daemon.start();
  await until(() => got.some((g) => g.e.type === 'reconcile-finished'));
  off();
  expect(got.map((g) => g.id)).toEqual(got.map((_, i) => `${run}.${i + 1}`));
  expect(daemon.lastEventId()).toBe(got.at(-1)!.id);

  // resume after the first: the rest, replayed
  const again: string[] = [];
  daemon.subscribe((_e, id) => again.push(id), { after: got[0]!.id })();
  expect(again).toEqual(got.slice(1).map((g) => g.id));

  // an id of another run (before a restart): a gap, then what the log holds
  const other: DaemonEvent[] = [];
  daemon.subscribe((e) => other.push(e), { after: 'deadbeef.3' })();
  expect(other[0]).toMatchObject({ type: 'gap', after: 'deadbeef.3' });
  expect(other.slice(1)).toEqual(got.map((g) => g.e));
});
