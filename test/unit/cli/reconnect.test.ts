/**
 * Clients that survive a daemon restart (src/cli/reconnect.ts): the backoff and the follow
 * loop with an injected clock and connection, then `awg events`, `awg status --watch` and
 * `awg top` against a fake daemon over the real API that is stopped and started again on the
 * same socket under them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { eventsCommand } from '../../../src/cli/commands/events.js';
import { statusCommand } from '../../../src/cli/commands/status.js';
import { topCommand } from '../../../src/cli/commands/top.js';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import {
  Backoff,
  follow,
  type ReconnectDeps,
  type ServiceChange,
} from '../../../src/cli/reconnect.js';
import { DaemonClient, DaemonUnavailable } from '../../../src/daemon/client.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { AwgError } from '../../../src/errors.js';
import { ALL_EVENTS, FakeCore, sampleTop } from '../daemon/server-fake-core.js';
import { eventually } from '../../helpers/eventually.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'awg-reconnect-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function capture(): { io: Io; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { out: (s) => (out += s), err: (s) => (err += s), colour: false },
    out: () => out,
    err: () => err,
  };
}

describe('Backoff', () => {
  it('250 ms doubling to 5 s; ±20 % jitter; reset starts over', () => {
    const mid = new Backoff(() => 0.5);
    expect(Array.from({ length: 8 }, () => mid.next())).toEqual([
      250, 500, 1000, 2000, 4000, 5000, 5000, 5000,
    ]);
    mid.reset();
    expect(mid.next()).toBe(250);
    const low = new Backoff(() => 0);
    const high = new Backoff(() => 0.999999);
    expect([low.next(), low.next(), high.next(), high.next()]).toEqual([200, 400, 300, 600]);
    for (let i = 0; i < 10; i++) low.next();
    expect(low.next()).toBe(4000);
  });
});

describe('follow (fake connection, injected clock)', () => {
  const fakeClient = (name: string, closed: string[]) =>
    ({ socketPath: '/x.sock', name, close: () => closed.push(name) }) as unknown as DaemonClient;

  function harness(o: { connect: (n: number) => DaemonClient; reconnect?: boolean }) {
    const sleeps: number[] = [];
    const services: ServiceChange[] = [];
    const ends: ((err?: AwgError) => void)[] = [];
    const started: DaemonClient[] = [];
    const stopped: number[] = [];
    let attempts = 0;
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    const deps: ReconnectDeps = {
      sleep: (ms) => {
        sleeps.push(ms);
        return new Promise((r) => setImmediate(r));
      },
      random: () => 0.5,
      now: () => new Date('2026-11-26T00:00:00.000Z'),
      connect: async () => o.connect(++attempts),
    };
    const closed: string[] = [];
    const done = follow({
      client: fakeClient('first', closed),
      start: async (c, end) => {
        started.push(c);
        ends.push(end);
        const n = started.length;
        return () => stopped.push(n);
      },
      onService: (c) => services.push(c),
      until,
      reconnect: o.reconnect ?? true,
      deps,
    });
    return { sleeps, services, ends, started, stopped, closed, stop, done, fakeClient };
  }

  it('retries with the backoff while nothing answers, says so once each way, resets once live', async () => {
    const closed: string[] = [];
    const h = harness({
      connect: (n) => {
        if (n <= 7) throw new DaemonUnavailable('no awg daemon answers on /x.sock (ENOENT)');
        return fakeClient(`c${n}`, closed);
      },
    });
    await eventually(() => expect(h.ends).toHaveLength(1));
    h.ends[0]!(); // the daemon closed the stream (it stopped)
    await eventually(() => expect(h.ends).toHaveLength(2));
    expect(h.sleeps).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    expect(h.services.map((s) => `${s.state}: ${s.reason}`)).toEqual([
      'unavailable: the awg daemon closed the stream (it stopped)',
      'available: ',
    ]);
    expect(h.services[0]).toEqual({
      type: 'service',
      state: 'unavailable',
      at: '2026-11-26T00:00:00.000Z',
      reason: 'the awg daemon closed the stream (it stopped)',
    });
    // killed this time: the connection broke; the next connect answers at once
    h.ends[1]!(new DaemonUnavailable('the awg daemon is not reachable: Connection dropped'));
    await eventually(() => expect(h.ends).toHaveLength(3));
    expect(h.sleeps.slice(8)).toEqual([250]);
    expect(h.services.map((s) => s.state)).toEqual([
      'unavailable',
      'available',
      'unavailable',
      'available',
    ]);
    expect(h.services[2]!.reason).toBe('the awg daemon is not reachable: Connection dropped');
    h.stop();
    expect(await h.done).toBeUndefined();
    expect(h.stopped).toEqual([1, 2, 3]);
    expect(h.closed).toEqual(['first']);
    expect(closed).toEqual(['c8', 'c9']);
  });

  it('an answer of the daemon ends it with that error, no reconnect', async () => {
    const h = harness({ connect: () => expect.fail('no reconnect') });
    await eventually(() => expect(h.ends).toHaveLength(1));
    h.ends[0]!(new AwgError('permission', 'not allowed'));
    expect((await h.done)?.kind).toBe('permission');
    expect(h.services).toEqual([]);
    expect(h.sleeps).toEqual([]);
  });

  it('a socket that stops letting this user in ends the reconnect with the permission error', async () => {
    const h = harness({
      connect: () => {
        throw new AwgError('permission', 'the awg daemon socket /x.sock does not let this user in');
      },
    });
    await eventually(() => expect(h.ends).toHaveLength(1));
    h.ends[0]!();
    const err = await h.done;
    expect(err?.kind).toBe('permission');
    expect(h.services.map((s) => s.state)).toEqual(['unavailable']);
    expect(h.sleeps).toEqual([250]);
  });

  it('reconnect: false: the first loss ends it (the stream closed: a driver error)', async () => {
    const h = harness({ connect: () => expect.fail('no reconnect'), reconnect: false });
    await eventually(() => expect(h.ends).toHaveLength(1));
    h.ends[0]!();
    const err = await h.done;
    expect(err).toBeInstanceOf(AwgError);
    expect(err?.exitCode).toBe(6);
    expect(h.services).toEqual([]);
  });

  it('stopping while it waits for the daemon ends it at once, without an error', async () => {
    const h = harness({
      connect: () => {
        throw new DaemonUnavailable('ENOENT');
      },
    });
    await eventually(() => expect(h.ends).toHaveLength(1));
    h.ends[0]!();
    await eventually(() => expect(h.sleeps.length).toBeGreaterThan(3));
    h.stop();
    expect(await h.done).toBeUndefined();
    expect(h.services.map((s) => s.state)).toEqual(['unavailable']);
  });
});

// ---- against a fake daemon over the real API, stopped and started again on its socket ----

/** a daemon on `socket` that can be stopped and started again there (a new core each time) */
async function restartable() {
  const socket = join(tmp(), 'awg.sock');
  let server: Awaited<ReturnType<typeof startApiServer>> | undefined;
  let core = new FakeCore();
  const start = async () => {
    core = new FakeCore();
    server = await startApiServer(core, { socketPath: socket });
    return core;
  };
  await start();
  cleanups.push(() => server?.close());
  return {
    socket,
    core: () => core,
    stop: async () => {
      await server?.close();
      server = undefined;
    },
    start,
  };
}

/** reconnect attempts a few ms apart (the backoff itself is tested above) */
const quick: ReconnectDeps = { sleep: (ms) => new Promise((r) => setTimeout(r, ms / 50)) };

function untilStopped(): { until: Promise<void>; stop: () => void } {
  let stop!: () => void;
  const until = new Promise<void>((r) => (stop = r));
  return { until, stop };
}

describe('awg events across a daemon restart', () => {
  it('text: says the service went away and came back, and prints the events after', async () => {
    const d = await restartable();
    const c = capture();
    const u = untilStopped();
    const done = eventsCommand(c.io, { socket: d.socket }, { until: u.until, reconnect: quick });
    await expect.poll(() => d.core().subscribers).toBe(1);
    d.core().emit(ALL_EVENTS[0]!);
    await expect.poll(() => c.out()).toContain('reconcile started (drift-timer)');
    await d.stop();
    await expect
      .poll(() => c.out())
      .toMatch(
        /Z service unavailable: the awg daemon closed the stream \(it stopped\); reconnecting\n/,
      );
    // the daemon's socket is gone a while: the client keeps trying
    const core = await d.start();
    await expect.poll(() => core.subscribers).toBe(1);
    core.emit(ALL_EVENTS[6]!);
    await expect.poll(() => c.out()).toContain('tunnel work up');
    u.stop();
    expect(await done).toBe(0);
    const lines = c.out().trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe('2026-11-22T05:00:00.000Z reconcile started (drift-timer)');
    expect(lines[2]).toMatch(
      /Z service available again: resuming from now: events while it was away may be missing$/,
    );
    expect(lines[3]).toBe('2026-11-22T05:00:04.000Z tunnel work up');
    expect(c.err()).toBe('');
  });

  it('--json: service records between the events; the last id seen is the resume cursor; a gap prints', async () => {
    const d = await restartable();
    // a daemon that numbers its events (as the daemon's event log does): ids r1.1, r1.2, …
    const afters: (string | undefined)[] = [];
    const watch = DaemonClient.prototype.watch;
    let n = 0;
    vi.spyOn(DaemonClient.prototype, 'watch').mockImplementation(function (
      this: DaemonClient,
      listener,
      onEnd,
      o = {},
    ) {
      afters.push(o.after);
      return watch.call(this, (e, _id) => listener(e, `r1.${++n}`), onEnd, o);
    });
    const c = capture();
    const u = untilStopped();
    const done = eventsCommand(
      c.io,
      { socket: d.socket, json: true },
      { until: u.until, reconnect: quick },
    );
    await expect.poll(() => d.core().subscribers).toBe(1);
    d.core().emit(ALL_EVENTS[0]!);
    d.core().emit(ALL_EVENTS[1]!);
    await expect.poll(() => c.out().split('\n').length).toBe(3);
    await d.stop();
    const core = await d.start();
    await expect.poll(() => core.subscribers).toBe(1);
    const gap: DaemonEvent = {
      type: 'gap',
      at: '2026-11-26T00:00:00.000Z',
      after: 'r1.2',
      reason: 'the daemon restarted',
    };
    core.emit(gap);
    await expect.poll(() => c.out()).toContain('"type":"gap"');
    u.stop();
    expect(await done).toBe(0);
    expect(afters).toEqual([undefined, 'r1.2']);
    const records = c
      .out()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(
      records.map((r) => (r.type === 'service' ? `service ${String(r.state)}` : r.type)),
    ).toEqual([
      'reconcile-started',
      'reconcile-finished',
      'service unavailable',
      'service available',
      'gap',
    ]);
    expect(records[2]).toMatchObject({
      reason: 'the awg daemon closed the stream (it stopped)',
    });
    expect(typeof records[2]!.at).toBe('string');
    expect(records[3]).toMatchObject({ reason: 'resuming after event r1.2' });
    expect(records[4]).toEqual(gap);
  });

  it('awg events --no-reconnect exits 6 as before', async () => {
    const d = await restartable();
    const c = capture();
    const run = main(['node', 'awg', 'events', '--no-reconnect', '--socket', d.socket], c.io);
    await expect.poll(() => d.core().subscribers).toBe(1);
    await d.stop();
    expect(await run).toBe(6);
    expect(c.out()).not.toContain('service');
    expect(c.err()).toMatch(/awg: error \[driver\]: the daemon closed the event stream/);
  });
});

describe('awg status --watch across a daemon restart', () => {
  it('plain: a service line each way, then the whole status again from the new daemon', async () => {
    const d = await restartable();
    const c = capture();
    const u = untilStopped();
    const done = statusCommand(
      c.io,
      { socket: d.socket, watch: true },
      { tty: false, until: u.until, reconnect: quick },
    );
    await expect.poll(() => c.out()).toContain('tunnel work');
    await d.stop();
    await expect.poll(() => c.out()).toContain('service unavailable');
    const core = await d.start();
    core.statusValue = { ...core.statusValue, state: 'drifted' };
    await expect.poll(() => c.out()).toContain('state: drifted');
    await expect.poll(() => core.subscribers).toBe(1);
    core.emit(ALL_EVENTS[6]!);
    await expect.poll(() => c.out()).toContain('tunnel work up');
    u.stop();
    expect(await done).toBe(0);
    const out = c.out();
    expect(out.indexOf('service unavailable')).toBeLessThan(out.indexOf('service available again'));
    expect(out.indexOf('service available again')).toBeLessThan(out.indexOf('state: drifted'));
    // the whole view again, not only the headline
    expect(out.split('tunnel work (wireguard').length - 1).toBe(2);
    expect(c.err()).toBe('');
  });

  it('terminal: the view says "daemon unavailable — reconnecting" above the last status, and loses it when back', async () => {
    const d = await restartable();
    const c = capture();
    const u = untilStopped();
    const done = statusCommand(
      c.io,
      { socket: d.socket, watch: true },
      { tty: true, until: u.until, reconnect: quick },
    );
    await expect.poll(() => c.out()).toContain('tunnel work');
    await d.stop();
    await expect.poll(() => c.out()).toContain('daemon unavailable — reconnecting');
    const screens = () => c.out().split('\x1b[H\x1b[2J');
    expect(screens().at(-1)).toMatch(
      /^daemon unavailable — reconnecting \(the awg daemon closed the stream \(it stopped\); since .*Z\)\n\nstate: converged/,
    );
    const core = await d.start();
    core.statusValue = { ...core.statusValue, state: 'drifted' };
    await expect.poll(() => screens().at(-1)).toMatch(/^state: drifted/);
    u.stop();
    expect(await done).toBe(0);
  });

  it('--json: status documents on stdout, the service lines on stderr', async () => {
    const d = await restartable();
    const c = capture();
    const u = untilStopped();
    const done = statusCommand(
      c.io,
      { socket: d.socket, watch: true, json: true },
      { until: u.until, reconnect: quick },
    );
    await expect.poll(() => c.out()).toContain('"state":"converged"');
    await d.stop();
    await expect.poll(() => c.err()).toContain('service unavailable');
    const core = await d.start();
    core.statusValue = { ...core.statusValue, state: 'drifted' };
    await expect.poll(() => c.out()).toContain('"state":"drifted"');
    u.stop();
    expect(await done).toBe(0);
    expect(c.err()).toMatch(/service unavailable.*\n.*service available again\n$/);
    for (const l of c.out().trimEnd().split('\n'))
      expect((JSON.parse(l) as { source: string }).source).toBe('daemon');
  });
});

describe('awg top across a daemon restart', () => {
  it('terminal: keeps the last view under "daemon unavailable — reconnecting", then resumes the stream', async () => {
    const d = await restartable();
    const c = capture();
    const u = untilStopped();
    const done = topCommand(
      c.io,
      { socket: d.socket },
      { tty: true, size: () => ({ columns: 120, rows: 40 }), until: u.until, reconnect: quick },
    );
    await expect.poll(() => d.core().tops.size).toBe(1);
    d.core().pushTop(sampleTop());
    await expect.poll(() => c.out()).toContain('/usr/lib/firefox/firefox');
    await d.stop();
    await expect.poll(() => c.out()).toContain('daemon unavailable — reconnecting');
    const last = c.out().split('\x1b[H').at(-1)!;
    expect(last.startsWith('daemon unavailable — reconnecting')).toBe(true);
    expect(last).toContain('/usr/lib/firefox/firefox');
    const core = await d.start();
    await expect.poll(() => core.tops.size).toBe(1);
    const before = c.out().length;
    core.pushTop(sampleTop());
    await expect.poll(() => c.out().slice(before)).toContain('/usr/lib/firefox/firefox');
    expect(c.out().slice(before)).not.toContain('daemon unavailable');
    u.stop();
    expect(await done).toBe(0);
  });

  it('not a terminal: a service line each way between the snapshots', async () => {
    const d = await restartable();
    const c = capture();
    const u = untilStopped();
    const done = topCommand(
      c.io,
      { socket: d.socket },
      { tty: false, until: u.until, reconnect: quick },
    );
    await expect.poll(() => d.core().tops.size).toBe(1);
    d.core().pushTop(sampleTop());
    await expect.poll(() => c.out()).toContain('/usr/lib/firefox/firefox');
    await d.stop();
    const core = await d.start();
    await expect.poll(() => core.tops.size).toBe(1);
    core.pushTop(sampleTop());
    await expect.poll(() => c.out().split('/usr/lib/firefox/firefox').length).toBe(3);
    u.stop();
    expect(await done).toBe(0);
    const out = c.out();
    const gone = out.search(/Z service unavailable: .*; reconnecting\n/);
    const back = out.search(/Z service available again\n/);
    expect(gone).toBeGreaterThan(out.indexOf('/usr/lib/firefox/firefox'));
    expect(back).toBeGreaterThan(gone);
    expect(out.lastIndexOf('/usr/lib/firefox/firefox')).toBeGreaterThan(back);
    expect(out).not.toContain('\x1b[');
  });

  it('--json: documents on stdout, service lines on stderr; --no-reconnect and --once end as before', async () => {
    const d = await restartable();
    const c = capture();
    const u = untilStopped();
    const done = topCommand(
      c.io,
      { socket: d.socket, json: true },
      { until: u.until, reconnect: quick },
    );
    await expect.poll(() => d.core().tops.size).toBe(1);
    await d.stop();
    await expect.poll(() => c.err()).toContain('service unavailable');
    const core = await d.start();
    await expect.poll(() => core.tops.size).toBe(1);
    core.pushTop(sampleTop());
    await expect.poll(() => c.out()).toContain('"processes"');
    u.stop();
    expect(await done).toBe(0);
    expect(c.err()).toContain('service available again');
    // that client gone from the daemon: the next one's call is the only one
    await expect.poll(() => core.tops.size).toBe(0);

    for (const flag of ['--no-reconnect', '--once']) {
      const c2 = capture();
      const run = main(['node', 'awg', 'top', '--json', flag, '--socket', d.socket], c2.io);
      await expect.poll(() => d.core().tops.size).toBe(1);
      await d.stop();
      expect(await run).toBe(6);
      expect(c2.err()).toContain('awg: error [driver]: the awg daemon ended awg top (it stopped)');
      expect(c2.err()).not.toContain('service');
      await d.start();
    }
  });
});
