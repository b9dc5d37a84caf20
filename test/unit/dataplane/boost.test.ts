import { afterEach, describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyEngineWeight,
  AUTOGROUP_RETRY_MS,
  type AutogroupControl,
  ENGINE_NICE,
  engineNice,
  HandshakeBoost,
  POLICY_RECHECK_MS,
  type SchedControl,
} from '../../../src/dataplane/boost.js';
import { autogroupNice, sessionOf, setAutogroupNice } from '../../../src/native/sched.js';
import { ipv4, makePair } from './harness.js';

/** a thread's policy as the fake kernel sees it, and every call made */
function fakeSched(o: { fifo?: number; policy?: number } = {}) {
  const calls: string[] = [];
  let policy = o.policy ?? 0;
  let asked = 0;
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
    policy: () => {
      asked++;
      return policy;
    },
  };
  return {
    sched,
    calls,
    policy: () => policy,
    asked: () => asked,
    set: (v: number) => (policy = v),
  };
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

  it('asks for the policy at the first window and again only POLICY_RECHECK_MS later; a chrt then is left alone', () => {
    let t = 0;
    const f = fakeSched();
    const b = new HandshakeBoost(f.sched, 250, () => t);
    const p = {};
    for (let k = 0; k < 5; k++) {
      b.enter(p);
      t += 2;
      b.leave(p);
      t += 100;
    }
    expect(f.asked()).toBe(1);
    expect(b.state()).toMatchObject({ enabled: true, windows: 5 });
    // someone ran `chrt -p` on the thread meanwhile: the first window past the interval asks
    f.set(2);
    t = POLICY_RECHECK_MS;
    b.enter(p);
    expect(f.asked()).toBe(2);
    expect(f.policy()).toBe(2);
    expect(b.state()).toMatchObject({ enabled: false, active: false, windows: 5 });
    expect(b.state().reason).toMatch(/policy 2/);
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

describe('the engine’s autogroup weight', () => {
  /** a fake /proc: this process's session and its autogroup's nice, and the writes made */
  function fakeGroup(o: { session: number | null; nice: number | null; set?: number }) {
    const writes: number[] = [];
    let nice = o.nice;
    const ctl: AutogroupControl = {
      session: () => o.session,
      nice: () => nice,
      setNice: (n) => {
        writes.push(n);
        if ((o.set ?? 0) < 0) return o.set!;
        nice = n;
        return 0;
      },
    };
    return { ctl, writes, nice: () => nice };
  }

  it('nice −10 by default; AWG_ENGINE_NICE from −20 to 19, anything else (or 0) leaves the group alone', () => {
    expect(ENGINE_NICE).toBe(-10);
    expect(engineNice({})).toBe(-10);
    for (const [v, n] of [
      ['', -10],
      ['-10', -10],
      ['-20', -20],
      ['19', 19],
      ['0', 0],
      ['-21', 0],
      ['20', 0],
      ['-2.5', 0],
      ['high', 0],
    ] as const)
      expect(engineNice({ AWG_ENGINE_NICE: v }), v).toBe(n);
  });

  it('sets the nice of a session leader’s own untouched group, and says what the kernel answered', () => {
    const g = fakeGroup({ session: 4242, nice: 0 });
    expect(applyEngineWeight(g.ctl, -5, 4242)).toEqual({ nice: -5, result: 0 });
    expect(g.nice()).toBe(-5);
    const refused = fakeGroup({ session: 4242, nice: 0, set: -1 });
    expect(applyEngineWeight(refused.ctl, -5, 4242)).toEqual({ nice: -5, result: -1 });
    expect(refused.writes).toEqual([-5]);
  });

  it('EAGAIN (one change per 100 ms without CAP_SYS_ADMIN): one more try AUTOGROUP_RETRY_MS later, reported', () => {
    vi.useFakeTimers();
    const answers = [-11, 0];
    const writes: number[] = [];
    let nice = 0;
    const ctl: AutogroupControl = {
      session: () => 7,
      nice: () => nice,
      setNice: (n) => {
        writes.push(n);
        const r = answers.shift()!;
        if (r === 0) nice = n;
        return r;
      },
    };
    const seen: [number, number][] = [];
    expect(applyEngineWeight(ctl, -5, 7, (n, r) => seen.push([n, r]))).toEqual({
      nice: -5,
      result: -11,
      retrying: true,
    });
    vi.advanceTimersByTime(AUTOGROUP_RETRY_MS - 1);
    expect(writes).toEqual([-5]);
    vi.advanceTimersByTime(1);
    expect(writes).toEqual([-5, -5]);
    expect(seen).toEqual([[-5, 0]]);
    expect(nice).toBe(-5);
    // another refusal is final, and without a callback there is no second try
    const once = fakeGroup({ session: 7, nice: 0, set: -11 });
    expect(applyEngineWeight(once.ctl, -5, 7)).toEqual({ nice: -5, result: -11 });
    vi.advanceTimersByTime(AUTOGROUP_RETRY_MS * 2);
    expect(once.writes).toEqual([-5]);
  });

  it('never writes to a group that is not the engine’s own, one someone set, where there are none, or when off', () => {
    // a daemon run in a terminal: the group is the shell's session's
    const member = fakeGroup({ session: 100, nice: 0 });
    expect(applyEngineWeight(member.ctl, -5, 4242)).toEqual({ skipped: 'not a session leader' });
    const set = fakeGroup({ session: 4242, nice: 3 });
    expect(applyEngineWeight(set.ctl, -5, 4242)).toEqual({ skipped: 'already set', nice: 3 });
    const none = fakeGroup({ session: 4242, nice: null });
    expect(applyEngineWeight(none.ctl, -5, 4242)).toEqual({ skipped: 'no autogroups' });
    const off = fakeGroup({ session: 4242, nice: 0 });
    expect(applyEngineWeight(off.ctl, 0, 4242)).toEqual({ skipped: 'off' });
    for (const g of [member, set, none, off]) expect(g.writes).toEqual([]);
  });
});

describe('/proc readers for the weight', () => {
  it('sessionOf reads the session field after a command name with spaces and parentheses', () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-stat-'));
    try {
      const f = join(dir, 'stat');
      writeFileSync(f, '4242 (a (b) c) S 1 4242 4240 0 -1 4194560 100 0 0 0\n');
      expect(sessionOf(f)).toBe(4240);
      writeFileSync(f, 'garbage');
      expect(sessionOf(f)).toBeNull();
      expect(sessionOf(join(dir, 'absent'))).toBeNull();
      // a session led from outside this pid namespace reads as 0 (containers, CI runners)
      writeFileSync(f, '7 (node) S 1 7 0 0 -1 4194560 100 0 0 0\n');
      expect(sessionOf(f)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sessionOf finds a live child that called setsid leading its own session', async () => {
    const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    try {
      await once(child, 'spawn');
      // libuv's spawn returns after the child's exec, so its setsid is done
      expect(sessionOf(`/proc/${child.pid}/stat`)).toBe(child.pid);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('autogroupNice reads the nice of /proc/self/autogroup’s format, null without one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-ag-'));
    try {
      const f = join(dir, 'autogroup');
      writeFileSync(f, '/autogroup-132176 nice -5\n');
      expect(autogroupNice(f)).toBe(-5);
      writeFileSync(f, '/autogroup-7 nice 0\n');
      expect(autogroupNice(f)).toBe(0);
      expect(autogroupNice(join(dir, 'absent'))).toBeNull();
      expect(setAutogroupNice(-5, join(dir, 'no-dir', 'autogroup'))).toBe(-2); // ENOENT
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
