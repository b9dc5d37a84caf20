/**
 * The daemon core's Top (src/daemon/daemon.ts over top-feed.ts), on fake drivers and a fake
 * kernel reader: the documents name the rules and tunnels of the config the daemon follows,
 * the reader is closed when the last subscriber leaves, and stopping the daemon ends the calls.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DaemonEvent, TopDocument } from '../../../src/daemon/core.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { AwgError } from '../../../src/errors.js';
import { allocate } from '../../../src/model/alloc.js';
import { loadConfigText } from '../../../src/config/load.js';
import { FakeTrafficSource, steadySource } from '../../../src/procs/top/source.fake.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';
import { RecordingExec } from '../../helpers/exec.js';

const dirs: string[] = [];
let daemon: Daemon | undefined;
afterEach(async () => {
  await daemon?.stop({ teardown: false });
  daemon = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function waitFor(pred: () => boolean, _what: string): Promise<void> {
  // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
  while (!pred()) await new Promise((r) => setTimeout(r, 5));
}

describe('daemon core: Top', () => {
  it("documents name the followed config's rules and tunnels; the reader closes with the last subscriber; stop ends the calls", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-core-top-'));
    dirs.push(dir);
    const file = join(dir, 'awg.yaml');
    const yaml = oneTunnelConfig({ allowedIPs: '10.200.50.0/24' });
    writeFileSync(file, yaml);
    const mark = allocate(loadConfigText(yaml, file).config!).tunnels.get('vpn')!.fwmark;
    const sources: FakeTrafficSource[] = [];
    const events: DaemonEvent[] = [];
    daemon = new Daemon({
      configPath: file,
      drivers: createFakeDriverSet(),
      exec: new RecordingExec(),
      state: new MemoryStateStore(),
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      placement: false,
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      trafficSource: () => {
        const s = steadySource([
          { pid: 42, name: 'app-web', cgroup: '/awg/web', mark, up: 100, down: 200 },
        ]);
        sources.push(s);
        return s;
      },
    });
    daemon.subscribe((e) => events.push(e));
    await daemon.start();
    await waitFor(() => events.some((e) => e.type === 'reconcile-finished'), 'a run');

    const docs: TopDocument[] = [];
    const ends: (AwgError | undefined)[] = [];
    const off = daemon.top(
      { intervalMs: 100, connections: false },
      (d) => docs.push(d),
      (e) => ends.push(e),
    );
    await waitFor(() => docs.length >= 2, 'two documents');
    expect(sources).toHaveLength(1);
    expect(docs[0]!.processes).toEqual([
      expect.objectContaining({ pid: 42, name: 'app-web', rule: 'web', upload: 100 }),
    ]);
    expect(docs[0]!.rules.map((r) => [r.name, r.target, r.processes])).toEqual([['web', 'vpn', 1]]);
    expect(docs[0]!.tunnels.map((t) => t.name)).toEqual(['vpn']);
    off();
    expect(sources[0]!.closed).toBe(true);

    const again: TopDocument[] = [];
    daemon.top(
      { intervalMs: 100, connections: true },
      (d) => again.push(d),
      (e) => ends.push(e),
    );
    await waitFor(() => again.length >= 1, 'a document for the next subscriber');
    expect(again[0]!.connections).toHaveLength(1);
    await daemon.stop({ teardown: false });
    daemon = undefined;
    expect(ends).toEqual([undefined]);
    expect(sources[1]!.closed).toBe(true);
  });
});
