import { afterEach, describe, expect, it, vi } from 'vitest';
import { HandshakeBoost, type SchedControl } from '../../../src/dataplane/boost.js';
import { ipv4, makePair } from './harness.js';

/** a thread's policy as the fake kernel sees it, and every call made */
function fakeSched(o: { fifo?: number; policy?: number } = {}) {
  const calls: string[] = [];
  let policy = o.policy ?? 0;
  const sched: SchedControl = {
    fifo: () => {
      calls.push('fifo');
      if ((o.fifo ?? 0) < 0) return o.fifo!;
      policy = 1;
      return 0;
    },
    other: () => {
      calls.push('other');
      policy = 0;
      return 0;
    },
    policy: () => policy,
  };
  return { sched, calls, policy: () => policy };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('HandshakeBoost', () => {
  it('one window while any handshake waits; SCHED_OTHER again when the last peer answered', () => {
    let t = 1000;
    const f = fakeSched();
    const b = new HandshakeBoost(f.sched, 250, () => t);
    const p1 = {};
    const p2 = {};
    b.enter(p1);
    t += 3;
    b.enter(p2);
    expect(f.calls).toEqual(['fifo']);
    expect(f.policy()).toBe(1);
    b.leave(p1);
    expect(b.state().active).toBe(true);
    t += 2;
    b.leave(p2);
    expect(f.calls).toEqual(['fifo', 'other']);
    expect(f.policy()).toBe(0);
    expect(b.state()).toMatchObject({
      enabled: true,
      active: false,
      windows: 1,
      expired: 0,
      ms: 5,
    });
    // a peer that was not waiting changes nothing
    b.leave(p1);
    expect(f.calls).toEqual(['fifo', 'other']);
  });

  it('ends a window at its bound when the peer never answers', () => {
    vi.useFakeTimers();
    let t = 0;
    const f = fakeSched();
    const b = new HandshakeBoost(f.sched, 250, () => t);
    b.enter({});
    t = 240;
    vi.advanceTimersByTime(240);
    expect(b.state().active).toBe(true);
    t = 252;
    vi.advanceTimersByTime(12);
    expect(f.calls).toEqual(['fifo', 'other']);
    expect(b.state()).toMatchObject({ active: false, windows: 1, expired: 1 });
  });

  it('a later peer keeps the window open past the first one’s bound, then it ends at its own', () => {
    vi.useFakeTimers();
    let t = 0;
    const f = fakeSched();
    const b = new HandshakeBoost(f.sched, 250, () => t);
    b.enter({});
    t = 200;
    vi.advanceTimersByTime(200);
    b.enter({});
    t = 300;
    vi.advanceTimersByTime(100);
    expect(b.state()).toMatchObject({ active: true, expired: 1 });
    t = 452;
    vi.advanceTimersByTime(152);
    expect(b.state()).toMatchObject({ active: false, expired: 2 });
    expect(f.calls).toEqual(['fifo', 'other']);
  });

  it('refused (no CAP_SYS_NICE): off for good, with the reason, and never asks again', () => {
    const f = fakeSched({ fifo: -1 });
    const b = new HandshakeBoost(f.sched);
    b.enter({});
    b.enter({});
    expect(f.calls).toEqual(['fifo']);
    expect(b.state()).toMatchObject({ enabled: false, active: false, windows: 0 });
    expect(b.state().reason).toMatch(/refused: EPERM/);
  });

  it('leaves a thread that already runs another policy (chrt) alone', () => {
    const f = fakeSched({ policy: 2 });
    const b = new HandshakeBoost(f.sched);
    b.enter({});
    expect(f.calls).toEqual([]);
    expect(b.state()).toMatchObject({ enabled: false });
    expect(b.state().reason).toMatch(/policy 2/);
  });
});

describe('the device and its boost', () => {
  const flush = () => new Promise<void>((r) => queueMicrotask(r));

  it('boosts from an initiation with data staged until the first data packet back; not for a keepalive handshake', async () => {
    const f = fakeSched();
    const boost = new HandshakeBoost(f.sched);
    const { a, b, net } = await makePair({ device: { boost } });
    a.tun.inject(ipv4('192.168.0.1', '192.168.0.2'));
    expect(f.calls).toEqual(['fifo']);
    net.flush(); // initiation → response → A sends the staged packet
    net.flush();
    expect(b.tun.written.length).toBe(1);
    await flush();
    expect(f.policy()).toBe(1); // the session exists, but nothing came back yet
    b.tun.inject(ipv4('192.168.0.2', '192.168.0.1', 'pong'));
    net.flush();
    expect(a.tun.written.length).toBe(1);
    await flush();
    expect(f.calls).toEqual(['fifo', 'other']);
    expect(boost.state()).toMatchObject({ windows: 1, expired: 0 });
    await a.dev.close();
    await b.dev.close();

    const g = fakeSched();
    const ka = await makePair({
      device: { boost: new HandshakeBoost(g.sched) },
      persistentKeepaliveA: 25,
    });
    ka.net.flush();
    ka.net.flush();
    expect(g.calls).toEqual([]); // the keepalive's handshake: nothing waits on it
    await ka.a.dev.close();
    await ka.b.dev.close();
  });

  it('a device that closes mid-window returns the thread to SCHED_OTHER', async () => {
    const f = fakeSched();
    const boost = new HandshakeBoost(f.sched);
    const { a, b } = await makePair({ device: { boost } });
    a.tun.inject(ipv4('192.168.0.1', '192.168.0.2'));
    expect(f.policy()).toBe(1);
    await a.dev.close();
    expect(f.calls).toEqual(['fifo', 'other']);
    await b.dev.close();
  });
});

describe('the engine thread slice setting', () => {
  const saved = process.env.AWG_ENGINE_SLICE_US;
  afterEach(() => {
    if (saved === undefined) delete process.env.AWG_ENGINE_SLICE_US;
    else process.env.AWG_ENGINE_SLICE_US = saved;
  });

  it('100 µs by default; AWG_ENGINE_SLICE_US within EEVDF’s 100 µs–100 ms, anything else (or 0) leaves the default', async () => {
    const { engineSliceUs, ENGINE_SLICE_US } = await import('../../../src/dataplane/boost.js');
    delete process.env.AWG_ENGINE_SLICE_US;
    expect(engineSliceUs()).toBe(ENGINE_SLICE_US);
    expect(ENGINE_SLICE_US).toBe(100);
    for (const [v, us] of [
      ['3000', 3000],
      ['100000', 100_000],
      ['0', 0],
      ['50', 0],
      ['100001', 0],
      ['1.5', 0],
      ['fast', 0],
      ['', 100],
    ] as const) {
      process.env.AWG_ENGINE_SLICE_US = v;
      expect(engineSliceUs(), v).toBe(us);
    }
  });
});
