/**
 * The daemon switches fallbacks on tunnel health (fake drivers, a fake engine host whose
 * peer stats the test controls): an unanswered handshake older than downAfter → a `tunnel
 * down` event, the loop runs, the firewall's allow-direct rule accepts unmarked and the block
 * rule drops; the daemon probes the down tunnel; a handshake → `up` and both mark again.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Daemon, type DaemonOptions } from '../../../src/daemon/daemon.js';
import { loadPlatform } from '../../../src/resources/registry.js';
import type { NetworkWatchOptions } from '../../../src/resources/monitor/types.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import type {
  EngineChange,
  EngineStats,
  InprocEngineHost,
} from '../../../src/resources/engine/inproc.js';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { RecordingExec } from '../../helpers/exec.js';
import { wgKeyPair } from '../../helpers/awg.js';

const me = wgKeyPair();
const peer = wgKeyPair();

const CONFIG = `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.1/24]
    downAfter: 3
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [0.0.0.0/0]
rules:
  - name: ad
    match: { name: app-ad }
    target: vpn
    fallback: allow-direct
  - name: bl
    match: { name: app-bl }
    target: vpn
`;

function fakeHost(driver: InprocEngineHost['driver']) {
  const listeners = new Set<(c: EngineChange) => void>();
  const probes: string[] = [];
  const kicks: number[] = [];
  let peerStats = {
    publicKey: peer.publicKey,
    endpoint: '10.200.9.2:51820',
    lastHandshakeMs: 0,
    rxBytes: 0,
    txBytes: 0,
    handshakePendingMs: 0,
    hasSession: false,
  };
  const host: InprocEngineHost = {
    driver,
    adopt: async () => [],
    stats: (): EngineStats[] => [
      { tunnel: 'vpn', type: 'wireguard', link: 'awg-vpn', up: true, peers: [peerStats] },
    ],
    proxyStats: () => [],
    onChange: (l) => (listeners.add(l), () => listeners.delete(l)),
    probe: (t) => void probes.push(t),
    kick: () => void kicks.push(Date.now()),
    closeAll: async () => {},
    tunnels: () => ['vpn'],
  };
  return {
    host,
    probes,
    kicks,
    set(p: Partial<typeof peerStats>, change: EngineChange) {
      peerStats = { ...peerStats, ...p };
      for (const l of listeners) l(change);
    },
  };
}

let dir = '';
let daemon: Daemon | undefined;
afterEach(async () => {
  await daemon?.stop({ teardown: false });
  daemon = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** a daemon on CONFIG with fake drivers and the fake engine host; its events, and a wait for one */
function fakeDaemon(extra: Partial<DaemonOptions> = {}) {
  dir = mkdtempSync(join(tmpdir(), 'awg-health-'));
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, CONFIG);
  const d = createFakeDriverSet();
  const f = fakeHost(d.engine as unknown as InprocEngineHost['driver']);
  const events: DaemonEvent[] = [];
  daemon = new Daemon({
    configPath: file,
    drivers: d,
    engines: f.host,
    exec: new RecordingExec(),
    state: new MemoryStateStore(),
    facts: { cgroupNftPrefix: '' },
    wakes: false,
    placement: false,
    healthIntervalMs: 0,
    loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
    ...extra,
  });
  daemon.subscribe((e) => events.push(e));
  const until = async (pred: (e: DaemonEvent) => boolean, from: number) => {
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    for (;;) {
      const hit = events.slice(from).find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  return { d, f, daemon, events, until };
}

describe('daemon: fallbacks follow tunnel health', () => {
  it('down after downAfter switches allow-direct to direct and block to drop; a handshake switches back', async () => {
    const { d, f, daemon, events, until } = fakeDaemon();
    const ruleset = () => ([...d.firewall.objects.values()][0] as { ruleset: string }).ruleset;
    const verdicts = () =>
      Object.fromEntries(
        ['ad', 'bl'].map((n) => {
          const l =
            ruleset()
              .split('\n')
              .find((x) => x.includes(`comment "app/${n}"`)) ?? '';
          return [
            n,
            l.includes('meta mark set')
              ? 'mark'
              : / drop /.test(l)
                ? 'drop'
                : l.includes('accept')
                  ? 'direct'
                  : '?',
          ];
        }),
      );
    await daemon.start();
    await until((e) => e.type === 'reconcile-finished', 0);
    expect(verdicts()).toEqual({ ad: 'mark', bl: 'mark' });

    // pending, but not for downAfter yet: still connecting, nothing switches
    f.set(
      { handshakePendingMs: 2_000 },
      { type: 'handshake-failed', tunnel: 'vpn', peer: peer.publicKey },
    );
    expect(events.filter((e) => e.type === 'tunnel')).toEqual([]);
    expect(f.probes).toContain('vpn');

    let mark = events.length;
    f.set(
      { handshakePendingMs: 3_000 },
      { type: 'handshake-failed', tunnel: 'vpn', peer: peer.publicKey },
    );
    expect(await until((e) => e.type === 'tunnel', mark)).toMatchObject({
      tunnel: 'vpn',
      state: 'down',
      error: 'no handshake answered for 3s',
    });
    await until((e) => e.type === 'reconcile-finished' && e.reason === 'engine', mark);
    expect(verdicts()).toEqual({ ad: 'direct', bl: 'drop' });
    const st = await daemon.status();
    expect(st.tunnels[0]).toMatchObject({ name: 'vpn', health: 'down', up: false });

    mark = events.length;
    f.set(
      { handshakePendingMs: 0, lastHandshakeMs: Date.now(), hasSession: true },
      { type: 'handshake', tunnel: 'vpn', peer: peer.publicKey, initiator: true },
    );
    expect(await until((e) => e.type === 'tunnel', mark)).toMatchObject({
      tunnel: 'vpn',
      state: 'up',
    });
    await until((e) => e.type === 'reconcile-finished' && e.reason === 'engine', mark);
    expect(verdicts()).toEqual({ ad: 'mark', bl: 'mark' });
  });
});

describe('daemon: network wakes', () => {
  it('an underlay change re-handshakes the engines; a change to our nft table only re-observes', async () => {
    let watch: NetworkWatchOptions | undefined;
    const { f, daemon, events, until } = fakeDaemon({
      platform: {
        ...(await loadPlatform()),
        watchNetwork: async (o) => ((watch = o), { close: () => {} }),
      },
      wakes: { watchConfig: false },
    });
    const finished = (from: number) => until((e) => e.type === 'reconcile-finished', from);
    await daemon.start();
    await finished(0);
    // past the echo window of the start's run
    await new Promise((r) => setTimeout(r, 800));

    let from = events.length;
    watch!.onChange('nftables: deltable inet awg', 'firewall');
    await finished(from);
    expect(events.slice(from)).toContainEqual(
      expect.objectContaining({ type: 'network-changed', detail: 'nftables: deltable inet awg' }),
    );
    expect(f.kicks).toEqual([]);

    from = events.length;
    watch!.onChange('newroute 0.0.0.0/0 table 254');
    await finished(from);
    expect(f.kicks).toHaveLength(1);
  });
});
