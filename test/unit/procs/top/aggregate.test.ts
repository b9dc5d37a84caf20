/**
 * The monitor (src/procs/top/aggregate.ts): rates over the interval, totals since the start,
 * closed flows counted once, counters that go backwards, unattributed flows, routes by rule and
 * conntrack mark, bounded memory. Every document it makes is checked against the schema.
 */
import { describe, expect, it } from 'vitest';
import { Monitor, rerate } from '../../../../src/procs/top/aggregate.js';
import { TopDocument } from '../../../../src/procs/top/document.js';
import type { Reading } from '../../../../src/procs/top/reading.js';
import { topContext, type TopContext } from '../../../../src/procs/top/routing.js';
import { MARKS, context, flow, proc, reading } from './top-fixture.js';

const T0 = Date.parse('2026-03-01T12:00:00Z');

/** a monitor whose wall clock follows the readings' monotonic time */
function monitor(o: ConstructorParameters<typeof Monitor>[0] = {}) {
  let wall = T0;
  const m = new Monitor({ clock: () => wall, ...o });
  return {
    m,
    update(r: Reading, ctx: TopContext = context(), connections = true) {
      wall = T0 + r.at;
      return TopDocument.parse(m.update(r, ctx, { connections }));
    },
  };
}

const firefox = proc(100, 'firefox', '/awg/web');

describe('Monitor: rates and totals', () => {
  it('the first reading is the baseline: no rates, nothing counted of what flows carried before', () => {
    const { update } = monitor();
    const d = update(reading(0, [flow('a', 5000, 9000, { pid: 100 })], [firefox]));
    expect(d.intervalMs).toBe(0);
    expect(d.since).toBe(d.at);
    expect(d.processes).toEqual([
      expect.objectContaining({ pid: 100, upload: 0, download: 0, sent: 0, received: 0 }),
    ]);
    expect(d.processes[0]!.connections).toBe(1);
    expect(d.total).toEqual({ upload: 0, download: 0, sent: 0, received: 0, connections: 1 });
  });

  it('rates over the interval, totals since the start, per process and in every section', () => {
    const { update } = monitor();
    update(reading(0, [flow('a', 5000, 9000, { pid: 100 })], [firefox]));
    const d1 = update(reading(500, [flow('a', 6000, 11_000, { pid: 100 })], [firefox]));
    expect(d1.intervalMs).toBe(500);
    expect(d1.processes[0]).toMatchObject({
      pid: 100,
      name: 'firefox',
      exe: '/usr/bin/firefox',
      uid: 1000,
      rule: 'web',
      route: 'vpn',
      upload: 2000,
      download: 4000,
      sent: 1000,
      received: 2000,
      connections: 1,
    });
    const d2 = update(reading(1500, [flow('a', 9000, 12_000, { pid: 100 })], [firefox]));
    expect(d2.processes[0]).toMatchObject({
      upload: 3000,
      download: 1000,
      sent: 4000,
      received: 3000,
    });
    expect(d2.rules.find((r) => r.name === 'web')).toMatchObject({
      target: 'vpn',
      route: 'vpn',
      processes: 1,
      upload: 3000,
      sent: 4000,
      received: 3000,
    });
    expect(d2.tunnels).toEqual([
      { name: 'vpn', upload: 3000, download: 1000, sent: 4000, received: 3000, connections: 1 },
      { name: 'office', upload: 0, download: 0, sent: 0, received: 0, connections: 0 },
    ]);
    expect(d2.total).toMatchObject({ sent: 4000, received: 3000 });
    expect(d2.since).toBe(new Date(T0).toISOString());
    expect(d2.at).toBe(new Date(T0 + 1500).toISOString());
    expect(d2.connections).toEqual([
      expect.objectContaining({
        id: 'a',
        proto: 'tcp',
        family: 4,
        pid: 100,
        rule: 'web',
        route: 'vpn',
        sent: 4000,
        received: 3000,
        upload: 3000,
        download: 1000,
      }),
    ]);
  });

  it('a monotonic clock with fractions: the rates use it, the document says whole milliseconds', () => {
    const { update } = monitor();
    update(reading(10.25, [flow('a', 0, 0, { pid: 100 })], [firefox]));
    const d = update(reading(510.75, [flow('a', 1001, 0, { pid: 100 })], [firefox]));
    expect(d.intervalMs).toBe(501);
    expect(d.processes[0]!.upload).toBe(2000);
  });

  it('a flow first seen after the start counts from zero (it began after the previous reading)', () => {
    const { update } = monitor();
    update(reading(0, [], [firefox]));
    const d = update(reading(1000, [flow('b', 700, 300, { pid: 100 })], [firefox]));
    expect(d.processes[0]).toMatchObject({ sent: 700, received: 300, upload: 700 });
  });

  it('a connection’s start: when the monitor first saw it (open at the start: `since`); a reused key starts again', () => {
    const { update } = monitor();
    update(reading(0, [flow('a', 100, 100, { pid: 100 })], [firefox]));
    update(
      reading(1000, [flow('a', 200, 100, { pid: 100 }), flow('b', 1, 1, { pid: 100 })], [firefox]),
    );
    const d = update(
      reading(2000, [flow('a', 50, 0, { pid: 100 }), flow('b', 2, 2, { pid: 100 })], [firefox]),
    );
    const started = Object.fromEntries(d.connections.map((c) => [c.id, c.started]));
    expect(started).toEqual({
      // counts went backwards: another socket on the key
      a: new Date(T0 + 2000).toISOString(),
      b: new Date(T0 + 1000).toISOString(),
    });
    expect(update(reading(3000, [flow('b', 3, 3, { pid: 100 })], [firefox])).since).toBe(
      new Date(T0).toISOString(),
    );
    const first = monitor();
    const d0 = first.update(reading(0, [flow('c', 1, 1, { pid: 100 })], [firefox]));
    expect(d0.connections[0]!.started).toBe(d0.since);
  });

  it("a closed flow's final counts are counted once, and it is no open connection", () => {
    const { update } = monitor();
    update(reading(0, [flow('a', 100, 100, { pid: 100 })], [firefox]));
    const closed = flow('a', 1100, 600, { pid: 100, closed: true });
    const d1 = update(reading(1000, [closed], [firefox]));
    expect(d1.processes[0]).toMatchObject({ sent: 1000, received: 500, connections: 0 });
    expect(d1.connections[0]).toMatchObject({ closed: true, sent: 1000 });
    // a reader that reports it once more adds nothing
    const d2 = update(reading(2000, [closed], [firefox]));
    expect(d2.processes[0]).toMatchObject({ sent: 1000, received: 500, upload: 0 });
    const d3 = update(reading(3000, [], [firefox]));
    expect(d3.processes[0]).toMatchObject({ sent: 1000, received: 500, connections: 0 });
    expect(d3.total).toMatchObject({ sent: 1000, received: 500, connections: 0 });
  });

  it('a process that exited keeps the name and rule read while it ran', () => {
    const { update } = monitor();
    update(reading(0, [flow('a', 0, 0, { pid: 100 })], [firefox]));
    const d = update(
      reading(1000, [flow('a', 10, 20, { pid: 100, closed: true })], [{ pid: 100, name: '?' }]),
    );
    expect(d.processes[0]).toMatchObject({
      pid: 100,
      name: 'firefox',
      exe: '/usr/bin/firefox',
      rule: 'web',
      sent: 10,
    });
  });

  it('a socket keeps its process when a later reading has none (closed with data still queued)', () => {
    const { update } = monitor();
    update(reading(0, [flow('a', 0, 0, { pid: 100, cgroup: '/awg/web' })], [firefox]));
    update(reading(1000, [flow('a', 5000, 0, { pid: 100, cgroup: '/awg/web' })], [firefox]));
    const orphan = update(reading(2000, [flow('a', 8000, 0)], [firefox]));
    expect(orphan.processes[0]).toMatchObject({ pid: 100, sent: 8000, connections: 1 });
    expect(orphan.unattributed.sent).toBe(0);
    expect(orphan.connections[0]).toMatchObject({ pid: 100, rule: 'web' });
    const freed = update(reading(3000, [flow('a', 9000, 0, { closed: true })], []));
    expect(freed.processes[0]).toMatchObject({ pid: 100, name: 'firefox', sent: 9000 });
  });

  it('a flow opened and closed within one interval counts whole', () => {
    const { update } = monitor();
    update(reading(0, [], []));
    const d = update(
      reading(1000, [flow('short', 4096, 10, { pid: 100, closed: true })], [firefox]),
    );
    expect(d.processes[0]).toMatchObject({ sent: 4096, received: 10, connections: 0 });
  });

  it('counts that go backwards are a new socket on a reused key: counted from zero', () => {
    const { update } = monitor();
    update(reading(0, [flow('udp', 10_000, 10_000, { pid: 100, proto: 'udp' })], [firefox]));
    const d1 = update(reading(1000, [flow('udp', 12_000, 10_500, { pid: 100 })], [firefox]));
    expect(d1.processes[0]).toMatchObject({ sent: 2000, received: 500 });
    const d2 = update(reading(2000, [flow('udp', 300, 40_000, { pid: 100 })], [firefox]));
    expect(d2.processes[0]).toMatchObject({ sent: 2300, received: 40_500, upload: 300 });
  });

  it('flows without a process are the unattributed row, not hidden; the total holds them', () => {
    const { update } = monitor();
    update(reading(0, [flow('tw', 0, 0, { cgroup: '/awg/web' }), flow('x', 0, 0)], []));
    const d = update(
      reading(1000, [flow('tw', 50, 70, { cgroup: '/awg/web' }), flow('x', 5, 7)], []),
    );
    expect(d.processes).toEqual([]);
    expect(d.unattributed).toEqual({
      upload: 55,
      download: 77,
      sent: 55,
      received: 77,
      connections: 2,
    });
    expect(d.total).toMatchObject({ sent: 55, received: 77 });
    // the socket's cgroup still names its rule
    expect(d.rules.find((r) => r.name === 'web')).toMatchObject({ sent: 50, processes: 0 });
    expect(d.connections.find((c) => c.id === 'tw')).not.toHaveProperty('pid');
  });
});

describe('Monitor: rules, routes and processes', () => {
  it('two processes of one rule are told apart; the rule row is their sum', () => {
    const { update } = monitor();
    const a = proc(201, 'restic', '/awg/backup');
    const b = proc(202, 'restic', '/awg/backup');
    const m = MARKS.office;
    update(
      reading(
        0,
        [flow('a', 0, 0, { pid: 201, mark: m }), flow('b', 0, 0, { pid: 202, mark: m })],
        [a, b],
      ),
    );
    const d = update(
      reading(
        1000,
        [flow('a', 1000, 10, { pid: 201, mark: m }), flow('b', 3000, 30, { pid: 202, mark: m })],
        [a, b],
      ),
    );
    expect(d.processes.map((p) => [p.pid, p.rule, p.route, p.sent, p.received])).toEqual([
      [201, 'backup', 'office', 1000, 10],
      [202, 'backup', 'office', 3000, 30],
    ]);
    expect(d.rules.find((r) => r.name === 'backup')).toMatchObject({
      processes: 2,
      sent: 4000,
      received: 40,
      connections: 2,
    });
    expect(d.tunnels.find((t) => t.name === 'office')).toMatchObject({ sent: 4000 });
  });

  it('rule rows: every enabled rule of the config in order, then groups it no longer has', () => {
    const { update } = monitor();
    const old = proc(300, 'old', '/awg/gone');
    const ex = proc(301, 'curl', '/awg/_exec-vpn');
    const d = update(
      reading(0, [flow('o', 0, 0, { pid: 300 }), flow('e', 0, 0, { pid: 301 })], [old, ex]),
    );
    expect(d.rules.map((r) => [r.name, r.target, r.route, r.processes])).toEqual([
      ['web', 'vpn', 'vpn', 0],
      ['backup', 'office', 'office', 0],
      ['lan', 'direct', 'direct', 0],
      ['exec:vpn', 'vpn', 'vpn', 1],
      ['gone', undefined, 'direct', 1],
    ]);
    expect(d.processes.map((p) => [p.rule, p.route])).toEqual([
      ['gone', 'direct'],
      ['exec:vpn', 'vpn'],
    ]);
  });

  it('a rule whose tunnel is down routes by its fallback (block by default)', () => {
    const { update } = monitor();
    const ctx = context({ tunnelUp: (t) => t !== 'vpn' });
    const d = update(reading(0, [flow('a', 0, 0, { pid: 100 })], [firefox]), ctx);
    expect(d.processes[0]).toMatchObject({ rule: 'web', route: 'blocked' });
    expect(d.rules[0]).toMatchObject({ name: 'web', route: 'blocked' });
    expect(d.connections[0]).toMatchObject({ route: 'blocked' });
  });

  it('outside the rules the conntrack mark decides: a connection that came in through a tunnel is its', () => {
    const { update } = monitor();
    const server = proc(400, 'iperf3', '/system.slice/x.service');
    update(reading(0, [], []));
    const d = update(
      reading(
        1000,
        [
          flow('in', 10, 5000, { pid: 400, mark: MARKS.vpn }),
          flow('out', 20, 0, { pid: 400, mark: 0 }),
          flow('nomark', 1, 0, { pid: 400 }),
        ],
        [server],
      ),
    );
    expect(d.connections.map((c) => [c.id, c.route])).toEqual([
      ['in', 'vpn'],
      ['out', 'direct'],
      ['nomark', 'direct'],
    ]);
    // its connections disagree: the process shows the route its (absent) rule gives: the default
    expect(d.processes[0]).toMatchObject({ route: 'direct', connections: 3 });
    expect(d.tunnels[0]).toMatchObject({ name: 'vpn', sent: 10, received: 5000 });
    expect(d.direct).toMatchObject({ sent: 21, received: 0, connections: 2 });
  });

  it("a process whose connections all take one route shows it; a rule's IPv6 left direct is direct", () => {
    const { update } = monitor();
    const server = proc(401, 'sshd');
    const d = update(
      reading(
        0,
        [
          flow('in', 0, 0, { pid: 401, mark: MARKS.office }),
          flow('v6', 0, 0, { pid: 100, family: 6, mark: 0 }),
          flow('v4', 0, 0, { pid: 100, mark: MARKS.vpn }),
        ],
        [server, firefox],
      ),
    );
    expect(d.processes.map((p) => [p.pid, p.route])).toEqual([
      [100, 'vpn'],
      [401, 'office'],
    ]);
    expect(d.connections.find((c) => c.id === 'v6')!.route).toBe('direct');
  });

  it("the runtime limit of a process comes from the context's limitOf", () => {
    const { update } = monitor();
    const ctx = context({ limitOf: (pid) => (pid === 100 ? { download: 1_000_000 } : undefined) });
    const d = update(
      reading(
        0,
        [flow('a', 0, 0, { pid: 100 }), flow('b', 0, 0, { pid: 401 })],
        [firefox, proc(401, 'sshd')],
      ),
      ctx,
    );
    expect(d.processes.map((p) => p.limit)).toEqual([{ download: 1_000_000 }, undefined]);
  });

  it('without a config (awg not applied) everything is direct and no rule or tunnel is listed', () => {
    const { update } = monitor();
    const ctx = topContext(undefined, { cgroupRoot: 'awg', tunnelUp: () => false });
    const d = update(reading(0, [flow('a', 0, 0, { pid: 100, mark: 0x08000000 })], [firefox]), ctx);
    expect(d.rules.map((r) => r.name)).toEqual(['web']);
    expect(d.rules[0]).toMatchObject({ route: 'direct' });
    expect(d.rules[0]).not.toHaveProperty('target');
    expect(d.tunnels).toEqual([]);
    expect(d.processes[0]!.route).toBe('direct');
  });

  it('the connection list only when asked for', () => {
    const { update } = monitor();
    const d = update(reading(0, [flow('a', 0, 0, { pid: 100 })], [firefox]), context(), false);
    expect(d.connections).toEqual([]);
    expect(d.processes[0]!.connections).toBe(1);
  });
});

describe('Monitor: memory stays bounded', () => {
  it('flows and processes gone for forgetAfterMs are forgotten; an exited process stays until then', () => {
    const { m, update } = monitor({ forgetAfterMs: 10_000 });
    update(reading(0, [], []));
    const short = proc(500, 'curl');
    const d1 = update(reading(1000, [flow('c', 100, 200, { pid: 500, closed: true })], [short]));
    expect(d1.processes.map((p) => p.pid)).toEqual([500]);
    const d2 = update(reading(9000, [], []));
    expect(d2.processes[0]).toMatchObject({ pid: 500, name: 'curl', sent: 100, connections: 0 });
    expect(m.size).toEqual({ flows: 1, processes: 1 });
    const d3 = update(reading(11_001, [], []));
    expect(d3.processes).toEqual([]);
    expect(m.size).toEqual({ flows: 0, processes: 0 });
    // the totals of the rule and the whole stay
    expect(d3.total).toMatchObject({ sent: 100, received: 200 });
  });

  it('a stream of short connections never grows the state past what the window holds', () => {
    const { m, update } = monitor({ forgetAfterMs: 5000 });
    update(reading(0, [], []));
    let maxFlows = 0;
    let sent = 0;
    for (let t = 1; t <= 200; t++) {
      const flows = Array.from({ length: 50 }, (_, i) =>
        flow(`f${t}-${i}`, 10, 1, { pid: 1000 + (t % 7), closed: true }),
      );
      const d = update(
        reading(
          t * 1000,
          flows,
          Array.from({ length: 7 }, (_, i) => proc(1000 + i, 'worker')),
        ),
      );
      sent = d.total.sent;
      maxFlows = Math.max(maxFlows, m.size.flows);
    }
    expect(sent).toBe(200 * 50 * 10);
    expect(maxFlows).toBeLessThanOrEqual(6 * 50);
    // one worker per reading: those of the readings within the last 5 s stay
    expect(m.size.processes).toBe(6);
  });

  it('maxFlows caps the flows remembered: the oldest go first', () => {
    const { m, update } = monitor({ maxFlows: 100 });
    update(reading(0, [], []));
    for (let t = 1; t <= 10; t++)
      update(
        reading(
          t * 100,
          Array.from({ length: 30 }, (_, i) => flow(`g${t}-${i}`, 1, 1, { closed: true })),
          [],
        ),
      );
    expect(m.size.flows).toBe(100);
  });
});

describe('rerate: the rates of a later document over a longer span', () => {
  it('rates from the totals since the earlier document; rows it lacks count from zero', () => {
    const { update } = monitor();
    update(reading(0, [flow('a', 0, 0, { pid: 100 })], [firefox]));
    const d1 = update(reading(1000, [flow('a', 1000, 0, { pid: 100 })], [firefox]));
    update(reading(2000, [flow('a', 3000, 0, { pid: 100 })], [firefox]));
    const d3 = update(
      reading(
        3000,
        [flow('a', 6000, 0, { pid: 100 }), flow('n', 400, 0, { pid: 401 })],
        [firefox, proc(401, 'sshd')],
      ),
    );
    expect(d3.processes[0]!.upload).toBe(3000);
    const r = TopDocument.parse(rerate(d1, d3));
    expect(r.intervalMs).toBe(2000);
    expect(r.processes.map((p) => [p.pid, p.upload, p.sent])).toEqual([
      [100, 2500, 6000],
      [401, 200, 400],
    ]);
    expect(r.total.upload).toBe(2700);
    expect(r.rules[0]).toMatchObject({ name: 'web', upload: 2500 });
    expect(r.connections.find((c) => c.id === 'a')!.upload).toBe(2500);
    // another monitor's document: left alone
    expect(rerate({ ...d1, since: d1.at }, d3)).toBe(d3);
  });
});

describe('Monitor: a route the platform decided per flow (the macOS flow router)', () => {
  it('a flow with its own rule and route is counted there, whatever its cgroup or mark says', () => {
    const { update } = monitor();
    const mail = proc(200, 'mail', undefined);
    update(
      reading(
        0,
        [flow('r', 0, 0, { pid: 200, rule: 'web', route: 'office', mark: MARKS.vpn })],
        [mail],
      ),
    );
    const d = update(
      reading(
        1000,
        [flow('r', 700, 300, { pid: 200, rule: 'web', route: 'office', mark: MARKS.vpn })],
        [mail],
      ),
    );
    expect(d.processes[0]).toMatchObject({ pid: 200, rule: 'web', route: 'office', sent: 700 });
    expect(d.tunnels.find((t) => t.name === 'office')).toMatchObject({ sent: 700, received: 300 });
    expect(d.tunnels.find((t) => t.name === 'vpn')).toMatchObject({ sent: 0 });
  });
});
