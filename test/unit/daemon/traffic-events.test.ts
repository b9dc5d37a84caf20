/**
 * The daemon's `traffic` event: polled only while someone subscribes, sent only when a
 * counter moved, carrying the rules' firewall counters (fake drivers; the nft counters are
 * canned JSON that the test changes). No timing assertion: the test waits for events.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import type { InprocEngineHost } from '../../../src/resources/engine/inproc.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { RecordingExec } from '../../helpers/exec.js';
import { oneTunnelConfig } from '../../helpers/daemon-config.js';

const CONFIG = oneTunnelConfig();
const counters = (tx: number, rx: number) =>
  JSON.stringify({
    nftables: [
      {
        rule: {
          family: 'inet',
          table: 'awg',
          chain: 'route_out',
          comment: 'app/web',
          expr: [{ counter: { packets: 1, bytes: tx } }],
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'awg',
          chain: 'count_in',
          comment: 'app-in/web',
          expr: [{ counter: { packets: 1, bytes: rx } }],
        },
      },
    ],
  });

describe('daemon: traffic events', () => {
  let dir = '';
  let daemon: Daemon | undefined;
  afterEach(async () => {
    await daemon?.stop({ teardown: false });
    rmSync(dir, { recursive: true, force: true });
  });

  it('a subscriber gets the rule counters when they move, not again while they stand still', async () => {
    dir = mkdtempSync(join(tmpdir(), 'awg-traffic-'));
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, CONFIG);
    const d = createFakeDriverSet();
    const host: InprocEngineHost = {
      driver: d.engine as unknown as InprocEngineHost['driver'],
      adopt: async () => [],
      stats: () => [{ tunnel: 'vpn', type: 'wireguard', link: 'awg-vpn', up: true, peers: [] }],
      proxyStats: () => [],
      onChange: () => () => {},
      probe: () => {},
      kick: () => {},
      closeAll: async () => {},
      tunnels: () => ['vpn'],
    };
    const exec = new RecordingExec({ 'nft -t -j list ruleset inet': counters(100, 200) });
    let nftReads = 0;
    const read = exec.read.bind(exec);
    exec.read = (cmd, args) => (cmd === 'nft' && nftReads++, read(cmd, args));
    daemon = new Daemon({
      configPath: file,
      drivers: d,
      engines: host,
      exec,
      state: new MemoryStateStore(),
      facts: { cgroupNftPrefix: '' },
      wakes: false,
      placement: false,
      healthIntervalMs: 0,
      trafficIntervalMs: 5,
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
    });
    const events: DaemonEvent[] = [];
    const traffic = () =>
      events.filter((e): e is Extract<DaemonEvent, { type: 'traffic' }> => e.type === 'traffic');
    const until = async (pred: () => boolean) => {
      // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
      while (!pred()) await new Promise((r) => setTimeout(r, 2));
    };
    await daemon.start();
    const unsub = daemon.subscribe((e) => events.push(e));
    await until(() => events.some((e) => e.type === 'reconcile-finished'));
    await until(() => traffic().some((e) => e.rules.length > 0));
    expect(traffic().at(-1)!.rules).toEqual([
      {
        name: 'web',
        target: 'vpn',
        route: 'vpn',
        txPackets: 1,
        txBytes: 100,
        rxPackets: 1,
        rxBytes: 200,
      },
    ]);
    // standing still: later ticks (counted by their reads) send nothing
    const seen = traffic().length;
    const readsThen = nftReads;
    await until(() => nftReads >= readsThen + 3);
    expect(traffic().length).toBe(seen);
    // moved: one more event with the new values
    exec.reads['nft -t -j list ruleset inet'] = counters(150, 260);
    await until(() => traffic().some((e) => e.rules[0]?.txBytes === 150));
    expect(traffic().at(-1)!.rules[0]).toMatchObject({ txBytes: 150, rxBytes: 260 });
    // nobody listening: no more polling (one tick may be under way when the last one leaves)
    unsub();
    await new Promise((r) => setTimeout(r, 10));
    const readsAtUnsub = nftReads;
    await new Promise((r) => setTimeout(r, 50));
    expect(nftReads).toBe(readsAtUnsub);
  });
});
