/**
 * The monitor's traffic source on macOS: nettop's per-socket counts (a captured sample,
 * test/fixtures/macos/process/) joined with the flow router's relayed connections; libproc is
 * a fake table; nettop's child process a fake that streams a capture.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  darwinTrafficSource,
  nettopFeed,
  type ChildLike,
  type NettopFeed,
  type RoutedFlowCount,
} from '../../../src/procs/top/darwin.js';
import type { ProcTable } from '../../../src/procs/darwin.js';
import {
  NETTOP_STREAM_ARGS,
  parseNettop,
  type NettopSample,
} from '../../../src/procs/top/nettop.js';
import { fixture } from '../darwin/fixtures.js';

const SOCKETS = 'process/nettop-L-n-x-sockets-netscope-EXCERPT.txt';

const procs: ProcTable = {
  pids: () => [272, 284, 772, 900],
  path: (pid) =>
    ({
      272: '/usr/sbin/mDNSResponder',
      284: '/Library/Application Support/ZeroTier/One/zerotier-one',
      772: '/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge',
      900: '/usr/bin/curl',
    })[pid],
  info: (pid) =>
    ({
      272: { ppid: 1, comm: 'mDNSResponder', uid: 65 },
      284: { ppid: 1, comm: 'zerotier-one', uid: 0 },
      772: { ppid: 1, comm: 'Microsoft Edge', uid: 501 },
      900: { ppid: 700, comm: 'curl', uid: 501 },
    })[pid],
};

/** a feed that answers what the test set */
function feed(): NettopFeed & { sample?: NettopSample; why?: string } {
  const f: NettopFeed & { sample?: NettopSample; why?: string } = {
    latest: () => f.sample,
    problem: () => f.why,
    close: () => {},
  };
  return f;
}

const captured = () => parseNettop(fixture(SOCKETS)).samples[0]!;

describe('darwin traffic source', () => {
  it("nettop's sockets become flows with their owner's pid; processes come from libproc", async () => {
    const f = feed();
    f.sample = captured();
    const src = darwinTrafficSource({ nettop: f, procs, now: () => 1000 });
    const r = await src.read();
    expect(r.at).toBe(1000);
    expect(r.warnings).toEqual([]);
    expect(r.flows).toHaveLength(6);
    const tcp = r.flows.find((x) => x.proto === 'tcp')!;
    expect(tcp).toEqual({
      key: 'tcp/4/192.168.3.37:56241/17.57.145.55:5223#pid-772',
      proto: 'tcp',
      family: 4,
      local: { addr: '192.168.3.37', port: 56241 },
      remote: { addr: '17.57.145.55', port: 5223 },
      pid: 772,
      sent: 31090,
      received: 27201,
    });
    const mdns6 = r.flows.find((x) => x.pid === 272 && x.family === 6)!;
    expect(mdns6.local).toEqual({ addr: '::', port: 5353 });
    expect(mdns6.remote).toEqual({ addr: '::', port: 0 });
    expect(r.processes.get(772)).toEqual({
      pid: 772,
      name: 'Microsoft Edge',
      uid: 501,
      exe: '/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge',
    });
    expect([...r.processes.keys()].sort()).toEqual([272, 284, 772]);
  });

  it("a relayed connection is counted by the router (rule, route, exact bytes) instead of nettop's row, and the router's own upstream socket is left out", async () => {
    const f = feed();
    const s = captured();
    // the router's upstream for that connection, as nettop lists it under the daemon (pid 88)
    s.rows.push(
      { kind: 'process', name: 'node', pid: 88, bytesIn: 0, bytesOut: 0 },
      {
        kind: 'socket',
        proto: 'tcp',
        family: 4,
        local: { address: '192.168.3.37', port: 60001 },
        remote: { address: '17.57.145.55', port: 5223 },
        pid: 88,
        bytesIn: 27300,
        bytesOut: 31100,
      },
    );
    f.sample = s;
    const routed: RoutedFlowCount[] = [
      {
        key: '1.1',
        app: { address: '::ffff:192.168.3.37', port: 56241 },
        dst: { host: '17.57.145.55', port: 5223 },
        pid: 772,
        rule: 'browser',
        route: 'work',
        upstream: { address: '192.168.3.37', port: 60001 },
        sent: 31090,
        received: 27201,
      },
    ];
    const src = darwinTrafficSource({ nettop: f, routed: () => routed, procs });
    const r = await src.read();
    const tcp = r.flows.filter((x) => x.proto === 'tcp');
    expect(tcp).toEqual([
      {
        key: 'tcp/4/192.168.3.37:56241/17.57.145.55:5223#router-1.1',
        proto: 'tcp',
        family: 4,
        local: { addr: '192.168.3.37', port: 56241 },
        remote: { addr: '17.57.145.55', port: 5223 },
        pid: 772,
        rule: 'browser',
        route: 'work',
        sent: 31090,
        received: 27201,
      },
    ]);
  });

  it('closed relayed connections are reported once with their final counts; vanished nettop sockets once, as closed', async () => {
    const f = feed();
    f.sample = captured();
    let routed: RoutedFlowCount[] = [
      {
        key: '1.7',
        app: { address: '10.0.0.5', port: 50000 },
        dst: { host: '2606:4700::1', port: 443 },
        pid: 900,
        route: 'direct',
        sent: 10,
        received: 20,
        closed: true,
      },
    ];
    const src = darwinTrafficSource({ nettop: f, routed: () => routed, procs });
    const first = await src.read();
    const closed = first.flows.filter((x) => x.closed);
    expect(closed).toEqual([
      expect.objectContaining({ family: 6, pid: 900, route: 'direct', sent: 10, received: 20 }),
    ]);
    // the router still lists it: not again
    expect((await src.read()).flows.filter((x) => x.closed)).toEqual([]);
    routed = [];
    // nettop's next sample lacks zerotier's socket: reported once as closed, with its last counts
    const next = captured();
    next.rows = next.rows.filter((x) => x.pid !== 284);
    f.sample = next;
    const r = await src.read();
    expect(r.flows.filter((x) => x.closed)).toEqual([
      expect.objectContaining({ pid: 284, sent: 19508471, received: 32286682, closed: true }),
    ]);
    expect((await src.read()).flows.filter((x) => x.closed)).toEqual([]);
  });

  it('a socket whose counts fell is another socket on the same tuple: a new key', async () => {
    const f = feed();
    f.sample = captured();
    const src = darwinTrafficSource({ nettop: f, procs });
    const k1 = (await src.read()).flows.find((x) => x.proto === 'tcp')!.key;
    const next = captured();
    const row = next.rows.find((x) => x.kind === 'socket' && x.proto === 'tcp')!;
    row.bytesIn = 5;
    row.bytesOut = 6;
    f.sample = next;
    const k2 = (await src.read()).flows.find((x) => x.proto === 'tcp' && !x.closed)!.key;
    expect(k2).not.toBe(k1);
    expect(k2).toBe(`${k1}#1`);
  });

  it('without nettop the router is the only source, and the reading says so', async () => {
    const f = feed();
    f.why = '/usr/bin/nettop exited (code 1)';
    const src = darwinTrafficSource({ nettop: f, routed: () => [], procs });
    expect((await src.read()).warnings).toEqual([
      'per-socket counts from nettop are missing (/usr/bin/nettop exited (code 1)); only the connections the flow router relays are counted',
    ]);
  });
});

/** a child process streaming `text` in chunks when the test says */
class FakeChild extends EventEmitter implements ChildLike {
  stdout = new EventEmitter();
  stderr = new EventEmitter();
  killed = false;
  kill() {
    this.killed = true;
    return true;
  }
}

describe('nettop feed', () => {
  it('runs nettop -L 0 -s 1 -n -x; a sample is the latest once the next begins; an exit is a problem and a later read restarts it', () => {
    const children: { cmd: string; args: string[]; c: FakeChild }[] = [];
    let clock = 0;
    const f = nettopFeed({
      spawn: (cmd, args) => {
        const c = new FakeChild();
        children.push({ cmd, args, c });
        return c;
      },
      now: () => clock,
      restartAfterMs: 5000,
    });
    expect(f.latest()).toBeUndefined();
    expect(children).toHaveLength(1);
    expect(children[0]!.cmd).toBe('/usr/bin/nettop');
    expect(children[0]!.args).toEqual(NETTOP_STREAM_ARGS);
    expect(NETTOP_STREAM_ARGS).toEqual(['-L', '0', '-s', '1', '-n', '-x']);
    const text = fixture(SOCKETS);
    const c = children[0]!.c;
    c.stdout.emit('data', Buffer.from(text));
    expect(f.latest()).toBeUndefined(); // complete only when the next sample begins
    c.stdout.emit('data', Buffer.from(text.split('\n')[0]! + '\n'));
    expect(f.latest()?.rows).toHaveLength(9);
    expect(f.problem()).toBeUndefined();
    c.stderr.emit('data', Buffer.from('nettop: something\n'));
    c.emit('exit', 1, null);
    expect(f.problem()).toBe('/usr/bin/nettop exited (code 1): nettop: something');
    clock = 1000;
    f.latest();
    expect(children).toHaveLength(1); // too soon after its start
    clock = 6000;
    f.latest();
    expect(children).toHaveLength(2);
    f.close();
    expect(children[1]!.c.killed).toBe(true);
    clock = 60_000;
    f.latest();
    expect(children).toHaveLength(2); // closed: never again
  });
});
