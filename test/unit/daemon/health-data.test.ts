/**
 * Health that sees data (docs/architecture.md, "Tunnel health"): the data-path bound
 * (data-path.ts), an external engine's byte counters read as messages, the rating's
 * hysteresis (health-rating.ts) and the monitor that combines them — on a fake clock.
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import {
  ByteWatch,
  controlSizes,
  DATA_PROBE_AFTER_MS,
  KEEPALIVE_STALE_MS,
  NO_DATA_MS,
  NO_DATA_ONE_WAY_MS,
  NO_DATA_RETRY_MS,
  peerNoData,
  sumOf,
} from '../../../src/daemon/data-path.js';
import { RECOVER_HOLD_MS, TunnelRating } from '../../../src/daemon/health-rating.js';
import {
  HealthMonitor,
  probeSource,
  type HealthEngines,
} from '../../../src/daemon/tunnel-health.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const cfg = Config.parse({
  version: 1,
  tunnels: {
    a: {
      type: 'wireguard',
      privateKey: KEY,
      addresses: ['10.9.0.2/32'],
      peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', allowedIPs: ['0.0.0.0/0'] }],
    },
  },
  rules: [],
});

describe('peerNoData', () => {
  const now = 1_000_000;
  it('a fresh session with data unanswered past the bound is dead; one-way flows get the keepalive timeout', () => {
    const s = { lastHandshakeMs: now - 5_000, dataUnansweredMs: 0, lastRxKeepalive: false };
    expect(peerNoData(s, now)).toBe(false);
    expect(peerNoData({ ...s, dataUnansweredMs: NO_DATA_MS - 1 }, now)).toBe(false);
    expect(peerNoData({ ...s, dataUnansweredMs: NO_DATA_MS }, now)).toBe(true);
    expect(NO_DATA_MS).toBeLessThan(10_000);
    const oneWay = { ...s, lastRxKeepalive: true };
    expect(peerNoData({ ...oneWay, dataUnansweredMs: 10_500 }, now)).toBe(false);
    expect(peerNoData({ ...oneWay, dataUnansweredMs: NO_DATA_ONE_WAY_MS }, now)).toBe(true);
  });
  it('no session, or one older than REJECT_AFTER_TIME: the handshake rating decides', () => {
    const s = { lastHandshakeMs: 0, dataUnansweredMs: 60_000, lastRxKeepalive: false };
    expect(peerNoData(s, now)).toBe(false);
    expect(peerNoData({ ...s, lastHandshakeMs: now - 180_000 }, now)).toBe(false);
    expect(peerNoData({ ...s, lastHandshakeMs: now - 179_000 }, now)).toBe(true);
  });
});

describe('ByteWatch (external engines: byte counters read as messages)', () => {
  const z = controlSizes();
  it('sums of control message sizes are control traffic', () => {
    expect(sumOf(0, [z.init])).toBe(true);
    expect(sumOf(92 + 148, [z.init, z.response])).toBe(true);
    expect(sumOf(92 * 2 + 64, [z.init, z.response, z.cookie])).toBe(true);
    expect(sumOf(32 + 80, [z.init, z.response, z.cookie])).toBe(false);
    expect(controlSizes({ s1: 10, s2: 20 }).init).toBe(158);
  });
  it('data sent, only handshake responses back: unanswered grows; a keepalive back answers', () => {
    const w = new ByteWatch(z);
    let t = 0;
    expect(w.sample(0, 0, t).dataUnansweredMs).toBe(0);
    // our persistent keepalives alone are not data sent
    expect(w.sample(0, 32, (t += 1000)).dataUnansweredMs).toBe(0);
    // data out (ping), nothing back: it may have left right after the previous reading
    expect(w.sample(0, 32 + 112, (t += 1000)).dataUnansweredMs).toBe(1000);
    // a rekey answered: responses only
    expect(w.sample(92, 32 + 112 + 148 + 112, (t += 4000)).dataUnansweredMs).toBe(5000);
    expect(w.sample(92, 32 + 112 + 148 + 224, (t += 4000)).dataUnansweredMs).toBe(9000);
    // a keepalive this soon may have been armed before the series: it does not answer
    expect(w.sample(92 + 32, 32 + 112 + 148 + 224, (t += 1000)).dataUnansweredMs).toBe(10000);
    // data back answers
    expect(w.sample(92 + 32 + 112, 32 + 112 + 148 + 224, (t += 1000))).toEqual({
      dataUnansweredMs: 0,
      lastRxKeepalive: false,
    });
  });
  it('a keepalive answers once the series is older than KEEPALIVE_STALE_MS (a one-way flow)', () => {
    const w = new ByteWatch(z);
    w.sample(0, 0, 0);
    expect(w.sample(0, 112, 1000).dataUnansweredMs).toBe(1000);
    expect(w.sample(32, 224, KEEPALIVE_STALE_MS - 1).dataUnansweredMs).toBe(KEEPALIVE_STALE_MS - 1);
    expect(w.sample(64, 224, KEEPALIVE_STALE_MS)).toEqual({
      dataUnansweredMs: 0,
      lastRxKeepalive: true,
    });
  });
  it('nothing sent for NO_DATA_RETRY_MS after an unanswered series: tried again', () => {
    const w = new ByteWatch(z);
    w.sample(0, 0, 0);
    expect(w.sample(0, 144, 1000).dataUnansweredMs).toBe(1000);
    expect(w.sample(0, 144, 1000 + NO_DATA_RETRY_MS - 1).dataUnansweredMs).toBeGreaterThan(0);
    expect(w.sample(0, 144, 1000 + NO_DATA_RETRY_MS).dataUnansweredMs).toBe(0);
  });
});

describe('TunnelRating: hysteresis, reasons, one change per change', () => {
  const input = (o: Partial<Parameters<TunnelRating['next']>[0]> = {}) => ({
    base: 'up' as const,
    noData: false,
    probeFailed: false,
    ...o,
  });
  it('no-data goes down at once, comes back after the hold, with since and last-up times', () => {
    const r = new TunnelRating();
    expect(r.next(input(), 0).changed).toBe(true);
    expect(r.next(input(), 1000).changed).toBe(false);
    const d = r.next(input({ noData: true }), 2000);
    expect(d).toEqual({
      changed: true,
      rating: { state: 'down', reason: 'no-data', sinceMs: 2000, lastUpMs: 1000 },
    });
    expect(r.next(input(), 3000).rating.state).toBe('down');
    expect(r.next(input(), 3000 + RECOVER_HOLD_MS - 1).rating.state).toBe('down');
    const u = r.next(input(), 3000 + RECOVER_HOLD_MS);
    expect(u.changed).toBe(true);
    expect(u.rating).toMatchObject({ state: 'up', sinceMs: 3000 + RECOVER_HOLD_MS });
  });
  it('flapping input while down: one down, one up', () => {
    const r = new TunnelRating();
    let changes = 0;
    const seq = [false, true, false, true, false, true, false, false, false, false, false];
    seq.forEach((noData, i) => {
      if (r.next(input({ noData }), i * 1000).changed) changes++;
    });
    // first rating, down at 1 s, back only after the input stayed clear for the hold
    expect(changes).toBe(3);
    expect(r.current?.state).toBe('up');
  });
  it('the reason follows the cause; the handshake rating comes first; probe before no-data', () => {
    const r = new TunnelRating();
    r.next(input(), 0);
    expect(r.next(input({ probeFailed: true, noData: true }), 1).rating.reason).toBe(
      'probe-failed',
    );
    const h = r.next(input({ base: 'down', baseReason: 'handshake', noData: true }), 2);
    expect(h).toMatchObject({ changed: true, rating: { state: 'down', reason: 'handshake' } });
    // handshake back, probe still failing: down for the probe (a change of reason)
    expect(r.next(input({ probeFailed: true }), 3)).toMatchObject({
      changed: true,
      rating: { reason: 'probe-failed' },
    });
  });
});

describe('HealthMonitor: the data path', () => {
  function rig() {
    let t = 1_000_000;
    const peer = {
      publicKey: KEY,
      endpoint: '192.0.2.1:51820',
      lastHandshakeMs: t - 1000,
      handshakePendingMs: 0,
      rxBytes: 0,
      txBytes: 0,
      dataUnansweredMs: 0,
      lastRxKeepalive: false,
    };
    const probes: { peer?: string; data?: boolean; from?: string }[] = [];
    const engines: HealthEngines = {
      stats: () => [{ tunnel: 'a', up: true, peers: [peer] }],
      probe: (_t, o = {}) => probes.push(o),
    };
    const m = new HealthMonitor(engines, () => t);
    return { m, peer, probes, step: (ms: number) => (t += ms), now: () => t };
  }

  it('handshakes answered, data unanswered: down no-data within the bound, data probes, back once answered', () => {
    const { m, peer, probes, step } = rig();
    expect(m.tick(cfg).changes).toEqual([
      { tunnel: 'a', state: 'up', sinceMs: 1_000_000, lastUpMs: 1_000_000 },
    ]);
    const changes: string[] = [];
    // traffic starts, the path dies: unanswered grows by the tick
    for (let s = 1; s <= 10; s++) {
      step(1000);
      peer.dataUnansweredMs = s * 1000;
      peer.lastHandshakeMs += 0;
      const r = m.tick(cfg);
      for (const c of r.changes) changes.push(`${s}:${c.state}/${c.reason ?? ''}`);
      if (r.downChanged) expect(m.down.has('a')).toBe(true);
    }
    expect(changes).toEqual([`${NO_DATA_MS / 1000}:down/no-data`]);
    expect(m.errorOf('a')).toMatch(/unanswered/);
    expect(m.ratingOf('a')).toMatchObject({ state: 'down', reason: 'no-data' });
    // data probes from the tunnel's address: to the peer while up and unanswered, then each tick
    const data = probes.filter((p) => p.data);
    expect(data.length).toBe(10 - DATA_PROBE_AFTER_MS / 1000 + 1);
    expect(data[0]).toEqual({ peer: KEY, data: true, from: '10.9.0.2' });
    expect(data.at(-1)).toEqual({ data: true, from: '10.9.0.2' });
    // the peer answers (a keepalive): up after the hold, one change
    peer.dataUnansweredMs = 0;
    peer.lastRxKeepalive = true;
    for (let s = 0; s < 5; s++) {
      step(1000);
      for (const c of m.tick(cfg).changes) changes.push(`${c.state}/${c.reason ?? ''}`);
    }
    expect(changes.slice(1)).toEqual(['up/']);
    expect(m.down.size).toBe(0);
  });

  it('an external engine (byte counters): the same data probes, the engine host sends them through the link', () => {
    const { peer, probes, step, now } = rig();
    const ext = { ...peer } as Partial<typeof peer>;
    delete ext.dataUnansweredMs;
    delete ext.lastRxKeepalive;
    const engines: HealthEngines = {
      stats: () => [{ tunnel: 'a', up: true, peers: [ext as typeof peer] }],
      probe: (_t, o = {}) => probes.push(o),
    };
    const mx = new HealthMonitor(engines, now);
    mx.tick(cfg);
    // data out each second, nothing back: unanswered from the tick before the first that saw it
    for (let s = 1; s <= 3; s++) {
      step(1000);
      ext.txBytes! += 112;
      mx.tick(cfg);
    }
    expect(probes).toEqual([
      { peer: KEY, data: true, from: '10.9.0.2' },
      { peer: KEY, data: true, from: '10.9.0.2' },
    ]);
    // the answer (time exceeded: data) ends the series: no more probes
    step(1000);
    ext.rxBytes! += 112;
    mx.tick(cfg);
    step(1000);
    mx.tick(cfg);
    expect(probes).toHaveLength(2);
  });

  it('the data probe comes from the first IPv4 address, else the first', () => {
    expect(probeSource(['fd00::2/128', '10.0.0.2/32'])).toBe('10.0.0.2');
    expect(probeSource(['fd00::2/128'])).toBe('fd00::2');
  });

  it('an idle tunnel (nothing sent) stays up; a peer without a fresh session is not no-data', () => {
    const { m, peer, step } = rig();
    m.tick(cfg);
    peer.lastHandshakeMs = 1; // long ago
    peer.dataUnansweredMs = 60_000;
    step(1000);
    expect(m.tick(cfg).changes).toEqual([]);
    expect(m.stateOf('a')).toBe('up');
  });

  it('a failed probe takes the tunnel down with its error, a success brings it back after the hold', () => {
    const { m, step } = rig();
    m.tick(cfg);
    m.setProbe('a', 'tcp 10.0.0.1:80: timeout after 5000 ms');
    step(1000);
    const c = m.tick(cfg).changes;
    expect(c).toMatchObject([{ state: 'down', reason: 'probe-failed' }]);
    expect(m.errorOf('a')).toMatch(/probe failed: tcp/);
    m.setProbe('a', undefined);
    step(1000);
    expect(m.tick(cfg).changes).toEqual([]);
    step(RECOVER_HOLD_MS);
    expect(m.tick(cfg).changes).toMatchObject([{ state: 'up' }]);
  });
});
