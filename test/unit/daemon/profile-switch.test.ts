/**
 * The obfuscation profile policy (daemon/profile-switch.ts) on a fake clock: down for
 * `handshake`/`no-data` → the next profile, wrapping, at most once per hold; other reasons
 * switch nothing; the working profile remembered per network (the default gateway) and taken
 * again on that network by a new switcher (a daemon restart).
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import type { DownReason, Rating } from '../../../src/daemon/health-rating.js';
import {
  holdMs,
  MAX_NETWORKS,
  PROFILE_HISTORY,
  PROFILES_STATE_KEY,
  ProfileSwitcher,
  sameNetwork,
  type NetworkId,
} from '../../../src/daemon/profile-switch.js';
import { MemoryStateStore } from '../../../src/util/state.js';

function cfg(profiles: string[] | undefined, downAfter = 5) {
  return Config.parse({
    version: 1,
    tunnels: {
      t: {
        type: 'amneziawg',
        privateKey: { file: 't.key' },
        addresses: ['10.0.0.2/32'],
        peers: [
          {
            publicKey: 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=',
            allowedIPs: ['10.0.0.0/24'],
          },
        ],
        downAfter,
        ...(profiles
          ? { profiles: profiles.map((name, i) => ({ name, jc: i + 1, jmin: 10, jmax: 20 })) }
          : {}),
      },
    },
  });
}
const down = (reason: DownReason): Rating => ({
  state: 'down',
  reason,
  sinceMs: 0,
  lastUpMs: 0,
});
const UP: Rating = { state: 'up', sinceMs: 0, lastUpMs: 0 };
const HOME: NetworkId = { gateway: '192.168.1.1', interface: 'wlan0', mac: '00:11:22:33:44:55' };
const CAFE: NetworkId = { gateway: '10.1.0.1', interface: 'wlan0' };

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('obfuscation profile switching', () => {
  it('starts with the first profile; down for handshake or no-data moves to the next, wrapping, once per hold', () => {
    const c = cfg(['a', 'b', 'c']);
    const k = clock();
    const s = new ProfileSwitcher(undefined, k.now);
    expect(s.activeOf(c, 't')).toBe('a');
    expect(s.rate(c, 't', down('handshake'))).toMatchObject({
      tunnel: 't',
      from: 'a',
      to: 'b',
      reason: 'handshake',
    });
    expect(s.profiles.get('t')).toBe('b');
    // still down: nothing until the hold (the detection bound) passed
    const hold = holdMs(5);
    expect(hold).toBe(12_000); // the no-data one-way bound is longer than downAfter 5 s
    k.advance(hold - 1);
    expect(s.rate(c, 't', down('handshake'))).toBeUndefined();
    k.advance(1);
    expect(s.rate(c, 't', down('no-data'))).toMatchObject({
      from: 'b',
      to: 'c',
      reason: 'no-data',
    });
    k.advance(hold);
    expect(s.rate(c, 't', down('handshake'))).toMatchObject({ from: 'c', to: 'a' });
    expect(s.history.map((h) => `${h.from}>${h.to}`)).toEqual(['a>b', 'b>c', 'c>a']);
    expect(holdMs(30)).toBe(30_000);
  });

  it('up keeps the profile; the next down switches at once', () => {
    const c = cfg(['a', 'b']);
    const k = clock();
    const s = new ProfileSwitcher(undefined, k.now);
    s.rate(c, 't', down('no-data'));
    expect(s.rate(c, 't', UP)).toBeUndefined();
    k.advance(1000);
    expect(s.activeOf(c, 't')).toBe('b');
    expect(s.rate(c, 't', down('handshake'))).toMatchObject({ from: 'b', to: 'a' });
  });

  it('other reasons, connecting, a single profile or no profiles switch nothing', () => {
    const k = clock();
    const s = new ProfileSwitcher(undefined, k.now);
    const c = cfg(['a', 'b']);
    expect(s.rate(c, 't', down('stopped'))).toBeUndefined();
    expect(s.rate(c, 't', down('probe-failed'))).toBeUndefined();
    expect(s.rate(c, 't', { state: 'connecting', sinceMs: 0, lastUpMs: 0 })).toBeUndefined();
    expect(s.rate(c, 't', undefined)).toBeUndefined();
    expect(s.rate(cfg(['a']), 't', down('handshake'))).toBeUndefined();
    expect(s.rate(cfg(undefined), 't', down('handshake'))).toBeUndefined();
    expect(s.activeOf(cfg(undefined), 't')).toBeUndefined();
    expect(s.history).toEqual([]);
  });

  it('the working profile is remembered per network; a new switcher (restart) on that network starts with it', () => {
    const c = cfg(['a', 'b', 'c']);
    const state = new MemoryStateStore();
    const k = clock();
    const s = new ProfileSwitcher(state, k.now);
    expect(s.setNetwork(HOME, c)).toEqual([]);
    s.rate(c, 't', down('handshake'));
    // not remembered while down
    expect(state.get(PROFILES_STATE_KEY)).toBeUndefined();
    s.rate(c, 't', UP);
    expect(state.get(PROFILES_STATE_KEY)).toMatchObject({
      version: 1,
      networks: [{ ...HOME, tunnels: { t: 'b' } }],
    });
    // another network: nothing remembered there, the tunnel keeps its profile; c works there
    expect(s.setNetwork(CAFE, c)).toEqual([]);
    k.advance(1);
    s.rate(c, 't', down('no-data'));
    s.rate(c, 't', UP);
    expect(s.activeOf(c, 't')).toBe('c');
    // back home: b again
    expect(s.setNetwork(HOME, c)).toMatchObject([{ from: 'c', to: 'b', reason: 'network' }]);

    // a restart at the cafe starts with c; at home (the MAC not yet in the neighbour table) with b
    const r = new ProfileSwitcher(state, k.now);
    expect(r.activeOf(c, 't')).toBe('a');
    expect(r.setNetwork({ ...CAFE, mac: 'aa:bb:cc:dd:ee:ff' }, c)).toMatchObject([
      { from: 'a', to: 'c' },
    ]);
    expect(r.profiles.get('t')).toBe('c');
    const h = new ProfileSwitcher(state, k.now);
    h.setNetwork({ gateway: HOME.gateway, interface: HOME.interface }, c);
    expect(h.activeOf(c, 't')).toBe('b');
    // the same gateway address behind another router (another MAC) is another network
    const o = new ProfileSwitcher(state, k.now);
    o.setNetwork({ ...HOME, mac: '66:66:66:66:66:66' }, c);
    expect(o.activeOf(c, 't')).toBe('a');
  });

  it('a remembered profile the config no longer has is ignored; prune forgets removed profiles', () => {
    const state = new MemoryStateStore();
    state.set(PROFILES_STATE_KEY, {
      version: 1,
      networks: [{ ...HOME, at: 'x', tunnels: { t: 'gone' } }],
    });
    const c = cfg(['a', 'b']);
    const s = new ProfileSwitcher(state);
    expect(s.setNetwork(HOME, c)).toEqual([]);
    expect(s.activeOf(c, 't')).toBe('a');
    s.rate(c, 't', down('handshake'));
    expect(s.profiles.get('t')).toBe('b');
    s.prune(cfg(['a', 'c']));
    expect(s.profiles.has('t')).toBe(false);
  });

  it('a record of another shape is set aside; networks and history are bounded', () => {
    const state = new MemoryStateStore();
    state.set(PROFILES_STATE_KEY, { version: 1, networks: 'nope' });
    const c = cfg(['a', 'b']);
    const k = clock();
    const s = new ProfileSwitcher(state, k.now);
    s.setNetwork(HOME, c);
    expect(state.corrupt.map((x) => x.key)).toEqual([PROFILES_STATE_KEY]);
    for (let i = 0; i < MAX_NETWORKS + 3; i++) {
      s.setNetwork({ gateway: `10.0.${i}.1`, interface: 'eth0' }, c);
      s.rate(c, 't', UP);
    }
    const rec = state.get<{ networks: NetworkId[] }>(PROFILES_STATE_KEY)!;
    expect(rec.networks).toHaveLength(MAX_NETWORKS);
    // the most recent first
    expect(rec.networks[0]!.gateway).toBe(`10.0.${MAX_NETWORKS + 2}.1`);
    for (let i = 0; i < PROFILE_HISTORY + 5; i++) {
      k.advance(holdMs(5));
      s.rate(c, 't', down('handshake'));
    }
    expect(s.history).toHaveLength(PROFILE_HISTORY);
  });

  it('a MAC on one side only does not tell two networks apart', () => {
    expect(sameNetwork(HOME, { gateway: HOME.gateway, interface: 'wlan0' })).toBe(true);
    expect(sameNetwork(HOME, { ...HOME, interface: 'eth0' })).toBe(false);
    expect(sameNetwork(HOME, { ...HOME, mac: '66:66:66:66:66:66' })).toBe(false);
  });
});
