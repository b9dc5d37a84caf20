/**
 * Obfuscation profiles in the daemon's tunnels (tunnels.ts + profile-switch.ts) with a fake
 * engine host: a tunnel down for `handshake` moves to the next profile (a `profile` event and
 * a wake), the config read gets the active profile, status sees it, the working profile is
 * remembered for the network the read's facts show and a new daemon (restart) on that network
 * starts with it. The gateway's MAC from /proc/net/arp's text.
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import type { DaemonEvent, WakeReason } from '../../../src/daemon/core.js';
import { macInArp } from '../../../src/daemon/neighbours.js';
import { networkOf, Tunnels } from '../../../src/daemon/tunnels.js';
import type { HostFacts } from '../../../src/model/desired.js';
import type { InprocEngineHost } from '../../../src/resources/engine/inproc.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { renderDaemonStatus } from '../../../src/cli/commands/status.js';
import { formatEvent } from '../../../src/cli/foreground.js';
import { sampleStatus } from './server-fake-core.js';

const KEY = 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=';
const CONFIG = Config.parse({
  version: 1,
  tunnels: {
    t: {
      type: 'amneziawg',
      privateKey: { file: 't.key' },
      addresses: ['10.0.0.2/32'],
      peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', allowedIPs: ['10.0.0.0/24'] }],
      downAfter: 3,
      obfuscation: { jc: 3, jmin: 40, jmax: 40 },
      profiles: [{ name: 'a' }, { name: 'b', jmin: 60, jmax: 60 }],
    },
  },
});
const FACTS = {
  cgroupNftPrefix: '',
  defaultRouteV4: { gateway: '192.168.7.1', interface: 'eth0' },
} as HostFacts;

function make(state: MemoryStateStore) {
  const peer = { handshakePendingMs: 0, lastHandshakeMs: 0 };
  const host = {
    stats: () => [
      {
        tunnel: 't',
        up: true,
        peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', rxBytes: 0, txBytes: 0, ...peer }],
      },
    ],
    proxyStats: () => [],
    probe: () => {},
    onChange: () => () => {},
  } as unknown as InprocEngineHost;
  const events: DaemonEvent[] = [];
  const wakes: WakeReason[] = [];
  const t = new Tunnels({
    engines: host,
    host: { reporter: new MemoryReporter(), state },
    emit: (e) => events.push(e),
    wake: (r) => wakes.push(r),
    config: () => CONFIG,
    running: () => false,
  });
  return { t, peer, events, wakes };
}

describe('tunnels: obfuscation profiles', () => {
  it('down for handshake: the next profile, an event and a wake; the read gets it; up: remembered; a restart there starts with it', () => {
    const state = new MemoryStateStore();
    const { t, peer, events, wakes } = make(state);
    const read = t.readOptions();
    expect(read.profiles(CONFIG, FACTS)).toEqual(new Map());
    // every initiation unanswered for downAfter (3 s)
    peer.handshakePendingMs = 3_000;
    t.tick();
    expect(events.filter((e) => e.type === 'profile')).toMatchObject([
      { type: 'profile', tunnel: 't', from: 'a', to: 'b', reason: 'handshake' },
    ]);
    expect(wakes).toContain('engine');
    expect(read.profiles(CONFIG, FACTS)).toEqual(new Map([['t', 'b']]));
    // a read of another config (an API diff) does not reset the followed tunnels' profiles
    read.profiles(Config.parse({ version: 1, tunnels: {} }), FACTS);
    expect(read.profiles(CONFIG, FACTS)).toEqual(new Map([['t', 'b']]));
    expect(t.health.profiles?.view('t')).toMatchObject({
      active: 'b',
      switches: [{ from: 'a', to: 'b', reason: 'handshake' }],
    });
    // still down: held (no second switch within the detection bound)
    t.tick();
    expect(events.filter((e) => e.type === 'profile')).toHaveLength(1);
    // b answers: up, remembered for this network
    peer.handshakePendingMs = 0;
    peer.lastHandshakeMs = Date.now();
    t.tick();
    expect(t.health.stateOf('t')).toBe('up');
    expect(state.get('profiles')).toMatchObject({
      networks: [{ gateway: '192.168.7.1', interface: 'eth0', tunnels: { t: 'b' } }],
    });

    // the restart: the first read on this network starts with b
    const r = make(state);
    expect(r.t.readOptions().profiles(CONFIG, FACTS)).toEqual(new Map([['t', 'b']]));
    expect(r.events).toMatchObject([{ type: 'profile', from: 'a', to: 'b', reason: 'network' }]);
    // another network: nothing remembered there, b stays
    const other = { ...FACTS, defaultRouteV4: { gateway: '10.9.0.1', interface: 'wlan0' } };
    expect(r.t.readOptions().profiles(CONFIG, other)).toEqual(new Map([['t', 'b']]));
  });

  it("the network: the default route's gateway and interface (v4 first), the gateway's MAC when known", () => {
    expect(networkOf(FACTS, () => 'aa:bb:cc:dd:ee:ff')).toEqual({
      gateway: '192.168.7.1',
      interface: 'eth0',
      mac: 'aa:bb:cc:dd:ee:ff',
    });
    expect(
      networkOf({ defaultRouteV6: { gateway: 'fe80::1', interface: 'eth1' } }, () => undefined),
    ).toEqual({
      gateway: 'fe80::1',
      interface: 'eth1',
    });
    expect(networkOf({})).toBeUndefined();
    const arp = `IP address       HW type     Flags       HW address            Mask     Device
192.168.7.1      0x1         0x2         AA:BB:CC:DD:EE:FF     *        eth0
192.168.7.9      0x1         0x0         00:00:00:00:00:00     *        eth0
10.0.0.1         0x1         0x2         11:22:33:44:55:66     *        wlan0
`;
    expect(macInArp(arp, '192.168.7.1', 'eth0')).toBe('aa:bb:cc:dd:ee:ff');
    expect(macInArp(arp, '192.168.7.1', 'wlan0')).toBeUndefined();
    expect(macInArp(arp, '192.168.7.9', 'eth0')).toBeUndefined();
  });
});

describe('obfuscation profiles shown', () => {
  it('awg status: the active profile and its switches under the tunnel; the event as a line', () => {
    expect(renderDaemonStatus(sampleStatus())).toContain(
      '  obfuscation profile b, switches: 2026-11-22T04:59:00.000Z a → b (handshake)\n',
    );
    expect(
      formatEvent({
        type: 'profile',
        at: '2026-11-22T05:00:00.000Z',
        tunnel: 't',
        from: 'a',
        to: 'b',
        reason: 'no-data',
      }),
    ).toBe('tunnel t obfuscation profile a → b (down: no-data)');
  });
});
