/**
 * The Linux reading's join on hand-made sockets and conntrack entries: who gets which entry,
 * from which side, with what payload; what is unattributed; what is remembered.
 */
import { describe, expect, it } from 'vitest';
import type { CtEntry } from '../../../../src/native/conntrack.js';
import type { InetSocket } from '../../../../src/native/sockdiag.js';
import {
  canonAddr,
  FlowJoiner,
  payloadOf,
  socketTupleKey,
  type JoinInput,
  type SocketOwner,
} from '../../../../src/procs/top/linux-join.js';
import type { FlowReading } from '../../../../src/procs/top/reading.js';

const LOCAL = new Set(['10.200.1.2', 'fd00:200::2']);
const isLocal = (a: string) => LOCAL.has(a) || a.startsWith('127.') || a === '::1';

let cookie = 0;
function sock(
  p: Partial<InetSocket> & Pick<InetSocket, 'proto' | 'src' | 'sport' | 'dst' | 'dport'>,
): InetSocket {
  cookie++;
  return {
    family: p.src.includes(':') ? 6 : 4,
    state: 1,
    ifindex: 0,
    uid: 1000,
    inode: 1000 + cookie,
    cookie: cookie.toString(16).padStart(16, '0'),
    ...p,
  };
}

function ct(
  proto: number,
  orig: [string, number, string, number],
  reply: [string, number, string, number],
  counters?: [number, number, number, number],
  more: Partial<CtEntry> = {},
): CtEntry {
  return {
    family: orig[0].includes(':') ? 6 : 4,
    proto,
    orig: { src: orig[0], sport: orig[1], dst: orig[2], dport: orig[3] },
    reply: { src: reply[0], sport: reply[1], dst: reply[2], dport: reply[3] },
    mark: 0,
    id: ++cookie,
    ...(counters
      ? {
          origCounters: { packets: counters[0], bytes: counters[1] },
          replyCounters: { packets: counters[2], bytes: counters[3] },
        }
      : {}),
    ...more,
  };
}

const owners = new Map<number, SocketOwner>();
function input(p: Partial<JoinInput>): JoinInput {
  return {
    tcp: [],
    udp: [],
    destroyed: [],
    conntrack: [],
    isLocal,
    owner: (s) => ({ uid: s.uid, ...(owners.get(s.inode) ?? {}) }),
    ...p,
  };
}

const byLocal = (flows: FlowReading[], port: number) => flows.filter((f) => f.local.port === port);

describe('TCP', () => {
  it('counts from tcp_info, the mark from the connection, the owner from the socket', () => {
    const s = sock({
      proto: 'tcp',
      src: '10.200.1.2',
      sport: 40000,
      dst: '10.200.9.1',
      dport: 443,
      bytesAcked: 5000,
      bytesReceived: 70000,
    });
    owners.set(s.inode, { pid: 42, cgroup: '/awg/web' });
    const e = ct(
      6,
      ['10.200.1.2', 40000, '10.200.9.1', 443],
      ['10.200.9.1', 443, '10.200.1.2', 40000],
      [10, 6000, 60, 80000],
      { mark: 0x1000000 },
    );
    const { flows } = new FlowJoiner().join(input({ tcp: [s], conntrack: [e] }));
    expect(flows).toEqual([
      {
        key: `tcp/4/10.200.1.2:40000/10.200.9.1:443/${s.cookie}`,
        proto: 'tcp',
        family: 4,
        local: { addr: '10.200.1.2', port: 40000 },
        remote: { addr: '10.200.9.1', port: 443 },
        pid: 42,
        uid: 1000,
        cgroup: '/awg/web',
        mark: 0x1000000,
        sent: 5000,
        received: 70000,
      },
    ]);
  });

  it('gives a closed socket its final counts once, under its live key and owner', () => {
    const j = new FlowJoiner();
    const s = sock({
      proto: 'tcp',
      src: '10.200.1.2',
      sport: 40001,
      dst: '10.200.9.1',
      dport: 443,
      bytesAcked: 10,
      bytesReceived: 20,
    });
    owners.set(s.inode, { pid: 43 });
    const e = ct(
      6,
      ['10.200.1.2', 40001, '10.200.9.1', 443],
      ['10.200.9.1', 443, '10.200.1.2', 40001],
      [1, 1, 1, 1],
    );
    const live = j.join(input({ tcp: [s], conntrack: [e] })).flows;
    const gone = { ...s, state: 7, inode: 0, bytesAcked: 99, bytesReceived: 200 };
    const closed = j.join(input({ destroyed: [gone], conntrack: [e] })).flows;
    expect(closed).toEqual([{ ...live[0], sent: 99, received: 200, closed: true }]);
    // its connection lingers (TIME_WAIT) without a socket: still not someone else's traffic
    expect(j.join(input({ conntrack: [e] })).flows).toEqual([]);
    // a listener's close is no flow; a socket never seen alive closes without a pid
    const listener = sock({
      proto: 'tcp',
      src: '::',
      sport: 80,
      dst: '::',
      dport: 0,
      state: 7,
      bytesAcked: 0,
      bytesReceived: 0,
    });
    const stranger = sock({
      proto: 'tcp',
      src: '10.200.1.2',
      sport: 40002,
      dst: '10.200.9.1',
      dport: 443,
      state: 7,
      uid: 7,
      bytesAcked: 1,
      bytesReceived: 2,
    });
    const f = j.join(input({ destroyed: [listener, stranger] })).flows;
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ uid: 7, closed: true, sent: 1 });
    expect(f[0]!.pid).toBeUndefined();
  });

  it('skips listeners and TIME_WAIT sockets, but their connection is still ours', () => {
    const tw = sock({
      proto: 'tcp',
      src: '10.200.1.2',
      sport: 40003,
      dst: '10.200.9.1',
      dport: 443,
      state: 6,
    });
    const e = ct(
      6,
      ['10.200.1.2', 40003, '10.200.9.1', 443],
      ['10.200.9.1', 443, '10.200.1.2', 40003],
      [1, 100, 1, 100],
    );
    expect(new FlowJoiner().join(input({ tcp: [tw], conntrack: [e] })).flows).toEqual([]);
  });

  it('shows a dual-stack socket of an IPv4 peer as IPv4, and finds its IPv4 connection', () => {
    const s = sock({
      proto: 'tcp',
      src: '::ffff:10.200.1.2',
      sport: 8080,
      dst: '::ffff:10.200.9.1',
      dport: 50000,
      bytesAcked: 1,
      bytesReceived: 2,
    });
    const e = ct(
      6,
      ['10.200.9.1', 50000, '10.200.1.2', 8080],
      ['10.200.1.2', 8080, '10.200.9.1', 50000],
      [1, 1, 1, 1],
      { mark: 7 },
    );
    const [f] = new FlowJoiner().join(input({ tcp: [s], conntrack: [e] })).flows;
    expect(f).toMatchObject({ family: 4, local: { addr: '10.200.1.2', port: 8080 }, mark: 7 });
    expect(canonAddr('::ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(canonAddr('::ffff:102:304')).toBe('::ffff:102:304');
  });
});

describe('UDP', () => {
  it('takes a connected socket’s counts from its entry: bytes less 28 per packet (IPv4)', () => {
    const s = sock({
      proto: 'udp',
      src: '10.200.1.2',
      sport: 40000,
      dst: '10.200.9.1',
      dport: 5201,
    });
    const e = ct(
      17,
      ['10.200.1.2', 40000, '10.200.9.1', 5201],
      ['10.200.9.1', 5201, '10.200.1.2', 40000],
      [10, 10280, 2, 60],
    );
    const r = new FlowJoiner().join(input({ udp: [s], conntrack: [e] }));
    expect(r.uncounted).toBe(0);
    expect(r.flows).toEqual([
      expect.objectContaining({
        key: `udp/4/10.200.1.2:40000/10.200.9.1:5201/ct${e.id!.toString(16)}`,
        sent: 10000,
        received: 4,
        uid: 1000,
      }),
    ]);
    expect(payloadOf(1000, 10, 6, 'udp')).toBe(520);
    expect(payloadOf(10, 10, 4, 'udp')).toBe(0);
  });

  it('sees a NATed flow from the original tuple (a tunnel’s masquerade changes only the reply)', () => {
    const s = sock({ proto: 'udp', src: '10.200.1.2', sport: 40000, dst: '1.1.1.1', dport: 53 });
    const e = ct(
      17,
      ['10.200.1.2', 40000, '1.1.1.1', 53],
      ['1.1.1.1', 53, '10.200.81.2', 61000],
      [1, 100, 1, 200],
    );
    const [f] = new FlowJoiner().join(input({ udp: [s], conntrack: [e] })).flows;
    expect(f).toMatchObject({
      local: { addr: '10.200.1.2', port: 40000 },
      remote: { addr: '1.1.1.1', port: 53 },
      sent: 72,
      received: 172,
    });
  });

  it('gives both ends of a loopback flow their own view of one entry', () => {
    const a = sock({ proto: 'udp', src: '127.0.0.1', sport: 40000, dst: '127.0.0.1', dport: 5201 });
    const b = sock({ proto: 'udp', src: '127.0.0.1', sport: 5201, dst: '127.0.0.1', dport: 40000 });
    owners.set(a.inode, { pid: 1 });
    owners.set(b.inode, { pid: 2 });
    const e = ct(
      17,
      ['127.0.0.1', 40000, '127.0.0.1', 5201],
      ['127.0.0.1', 5201, '127.0.0.1', 40000],
      [100, 102800, 1, 32],
    );
    const { flows } = new FlowJoiner().join(input({ udp: [a, b], conntrack: [e] }));
    expect(byLocal(flows, 40000)).toEqual([
      expect.objectContaining({ pid: 1, sent: 100000, received: 4 }),
    ]);
    expect(byLocal(flows, 5201)).toEqual([
      expect.objectContaining({ pid: 2, sent: 4, received: 100000 }),
    ]);
    expect(flows).toHaveLength(2);
  });

  it('gives an unconnected socket the entries of its port whose local end is ours', () => {
    const srv = sock({ proto: 'udp', src: '0.0.0.0', sport: 53, dst: '0.0.0.0', dport: 0 });
    const v6only = sock({ proto: 'udp', src: 'fd00:200::2', sport: 53, dst: '::', dport: 0 });
    owners.set(srv.inode, { pid: 53 });
    owners.set(v6only.inode, { pid: 54 });
    const inbound = ct(
      17,
      ['10.200.9.1', 3333, '10.200.1.2', 53],
      ['10.200.1.2', 53, '10.200.9.1', 3333],
      [1, 60, 1, 100],
    );
    const v6 = ct(
      17,
      ['fd00:200::9', 3333, 'fd00:200::2', 53],
      ['fd00:200::2', 53, 'fd00:200::9', 3333],
      [1, 80, 1, 120],
    );
    // forwarded through us, source port 53 by chance: not ours
    const forwarded = ct(
      17,
      ['10.200.7.7', 53, '10.200.8.8', 9999],
      ['10.200.8.8', 9999, '10.200.7.7', 53],
      [1, 1000, 1, 1000],
    );
    const { flows } = new FlowJoiner().join(
      input({ udp: [srv, v6only], conntrack: [inbound, v6, forwarded] }),
    );
    expect(flows.find((f) => f.pid === 53)).toMatchObject({
      local: { addr: '10.200.1.2', port: 53 },
      sent: 72,
      received: 32,
    });
    expect(flows.find((f) => f.pid === 54)).toMatchObject({ family: 6, sent: 72, received: 32 });
    const un = flows.filter((f) => f.pid === undefined);
    expect(un).toEqual([
      expect.objectContaining({ local: { addr: '10.200.7.7', port: 53 }, sent: 972 }),
    ]);
  });

  it('keeps a closed socket’s owner for its entry, then reports the entry’s end as closed', () => {
    const j = new FlowJoiner();
    const s = sock({
      proto: 'udp',
      src: '10.200.1.2',
      sport: 40005,
      dst: '10.200.9.1',
      dport: 5201,
    });
    owners.set(s.inode, { pid: 77 });
    const e1 = ct(
      17,
      ['10.200.1.2', 40005, '10.200.9.1', 5201],
      ['10.200.9.1', 5201, '10.200.1.2', 40005],
      [1, 128, 0, 0],
    );
    const [live] = j.join(input({ udp: [s], conntrack: [e1] })).flows;
    const e2 = { ...e1, origCounters: { packets: 2, bytes: 256 } };
    const [after] = j.join(input({ conntrack: [e2] })).flows;
    expect(after).toEqual({ ...live, sent: 200 });
    const e3 = { ...e1, origCounters: { packets: 3, bytes: 384 } };
    const [end] = j.join(input({ conntrack: [], ctEnded: [e3] })).flows;
    expect(end).toEqual({ ...live, sent: 300, closed: true });
    // forgotten once it ended
    expect(j.join(input({ conntrack: [e1] })).flows[0]!.pid).toBeUndefined();
  });

  it('counts flows whose entry has no counters (accounting off), and shows them with 0', () => {
    const s = sock({
      proto: 'udp',
      src: '10.200.1.2',
      sport: 40006,
      dst: '10.200.9.1',
      dport: 5201,
    });
    const e = ct(
      17,
      ['10.200.1.2', 40006, '10.200.9.1', 5201],
      ['10.200.9.1', 5201, '10.200.1.2', 40006],
    );
    const r = new FlowJoiner().join(input({ udp: [s], conntrack: [e] }));
    expect(r.uncounted).toBe(1);
    expect(r.flows[0]).toMatchObject({ sent: 0, received: 0 });
  });

  it('shows a connected socket without an entry with no counts, keyed by its cookie', () => {
    const s = sock({
      proto: 'udp',
      src: '10.200.1.2',
      sport: 40007,
      dst: '10.200.9.1',
      dport: 5201,
    });
    owners.set(s.inode, { pid: 5 });
    const r = new FlowJoiner().join(input({ udp: [s], conntrack: undefined }));
    expect(r.flows).toEqual([
      expect.objectContaining({
        key: `udp/4/10.200.1.2:40007/10.200.9.1:5201/${s.cookie}`,
        pid: 5,
        sent: 0,
      }),
    ]);
  });
});

describe('unattributed', () => {
  it('shows an entry no socket took, from the local end when it arrived here', () => {
    const fwd = ct(
      6,
      ['10.200.7.7', 1000, '10.200.8.8', 80],
      ['10.200.8.8', 80, '10.200.7.7', 1000],
      [10, 1400, 10, 40400],
    );
    const inbound = ct(
      17,
      ['10.200.9.1', 4000, '10.200.1.2', 9999],
      ['10.200.1.2', 9999, '10.200.9.1', 4000],
      [2, 100, 0, 0],
    );
    const icmp = ct(
      1,
      ['10.200.1.2', 0, '10.200.9.1', 0],
      ['10.200.9.1', 0, '10.200.1.2', 0],
      [1, 84, 1, 84],
    );
    const { flows } = new FlowJoiner().join(input({ conntrack: [fwd, inbound, icmp] }));
    expect(flows).toEqual([
      expect.objectContaining({
        proto: 'tcp',
        local: { addr: '10.200.7.7', port: 1000 },
        sent: 1000,
        received: 40000,
      }),
      expect.objectContaining({
        proto: 'udp',
        local: { addr: '10.200.1.2', port: 9999 },
        sent: 0,
        received: 44,
      }),
    ]);
    expect(flows.every((f) => f.pid === undefined)).toBe(true);
  });

  it('reports an unattributed entry’s end as a closed flow under the same key', () => {
    const j = new FlowJoiner();
    const e = ct(
      17,
      ['10.200.7.7', 1, '10.200.8.8', 2],
      ['10.200.8.8', 2, '10.200.7.7', 1],
      [1, 29, 0, 0],
    );
    const [live] = j.join(input({ conntrack: [e] })).flows;
    const [end] = j.join(
      input({ conntrack: [], ctEnded: [{ ...e, origCounters: { packets: 2, bytes: 58 } }] }),
    ).flows;
    expect(end).toEqual({ ...live, sent: 2, closed: true });
  });
});

describe('which entries a read asks the kernel about', () => {
  it('UDP always; TCP only without a local socket (now or before); nothing else', () => {
    const j = new FlowJoiner();
    const s = sock({
      proto: 'tcp',
      src: '10.200.1.2',
      sport: 40010,
      dst: '10.200.9.1',
      dport: 443,
      bytesAcked: 1,
      bytesReceived: 1,
    });
    const mine = ct(
      6,
      ['10.200.1.2', 40010, '10.200.9.1', 443],
      ['10.200.9.1', 443, '10.200.1.2', 40010],
    );
    const other = ct(6, ['10.200.7.7', 1, '10.200.8.8', 2], ['10.200.8.8', 2, '10.200.7.7', 1]);
    const u = ct(17, ['10.200.7.7', 1, '10.200.8.8', 2], ['10.200.8.8', 2, '10.200.7.7', 1]);
    const icmp = ct(1, ['10.200.7.7', 0, '10.200.8.8', 0], ['10.200.8.8', 0, '10.200.7.7', 0]);
    const tuples = j.tuples([s]);
    expect(tuples).toEqual(new Set([socketTupleKey(s)]));
    expect([mine, other, u, icmp].map((e) => j.countsNeeded(e, tuples))).toEqual([
      false,
      true,
      true,
      false,
    ]);
    j.join(input({ tcp: [s], conntrack: [mine, other] }));
    // the socket is gone; its connection is remembered as ours
    expect(j.countsNeeded(mine, new Set())).toBe(false);
  });
});
