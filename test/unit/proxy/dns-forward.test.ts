/**
 * DnsTcpForwarder on loopback: UDP queries in, DNS over TCP to a fake resolver (a TCP server
 * reached through a plain `net.connect` Dialer standing in for the proxy), answers back
 * over UDP.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DnsTcpForwarder } from '../../../src/proxy/dns-forward.js';

import { ProxyDialError, type Dialer } from '../../../src/proxy/types.js';
import { answer, query } from './dns-fixtures.js';

type Behaviour = (q: Buffer, conn: number, s: Socket) => Buffer | 'close' | 'ignore';

/** A DNS-over-TCP server: `reply` decides per query (the query, the connection's number). */
async function fakeResolver(
  reply: Behaviour,
): Promise<{ server: Server; port: number; connections: () => number; queries: Buffer[] }> {
  let conns = 0;
  const queries: Buffer[] = [];
  const server = createServer((s) => {
    const n = ++conns;
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        queries.push(Buffer.from(q));
        const r = reply(q, n, s);
        if (r === 'close') return s.destroy();
        if (r === 'ignore') continue;
        const l = Buffer.alloc(2);
        l.writeUInt16BE(r.length);
        s.write(Buffer.concat([l, r]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    connections: () => conns,
    queries,
  };
}

const tcpDialer: Dialer = async (dst) =>
  await new Promise((resolve, reject) => {
    const s = connect({ host: dst.host, port: dst.port }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function forwarder(
  port: number,
  dial: Dialer = tcpDialer,
  timeoutMs = 10_000,
): Promise<{ f: DnsTcpForwarder; port: number }> {
  const f = new DnsTcpForwarder({
    listen: { host: '127.0.0.1', port: 0 },
    resolver: { host: '127.0.0.1', port },
    dial,
    timeoutMs,
  });
  const a = await f.start();
  cleanups.push(() => f.close());
  return { f, port: a.port };
}

async function client(): Promise<{
  ask(q: Buffer, port: number): Promise<Buffer>;
  sock: UdpSocket;
}> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  cleanups.push(() => void sock.close());
  return {
    sock,
    ask: (q, port) =>
      new Promise<Buffer>((resolve) => {
        sock.once('message', resolve);
        sock.send(q, port, '127.0.0.1');
      }),
  };
}

/** the fake resolver's answer to `q` (its own id, the example.com question) with n records */
const answerTo = (n: number) => (q: Buffer) => answer(q.readUInt16BE(0), n);

describe('DnsTcpForwarder', () => {
  it('answers over UDP what the resolver answered over TCP; concurrent clients with the same id share one connection', async () => {
    const r = await fakeResolver(answerTo(2));
    cleanups.push(() => new Promise<void>((res) => r.server.close(() => res())));
    const { f, port } = await forwarder(r.port);
    const [a, b] = [await client(), await client()];
    const [ra, rb] = await Promise.all([a.ask(query(0x77), port), b.ask(query(0x77), port)]);
    for (const x of [ra, rb]) {
      expect(x.readUInt16BE(0)).toBe(0x77);
      expect(x.subarray(2)).toEqual(answer(0x77, 2).subarray(2));
    }
    // our ids on the wire, not the clients' (they collide)
    expect(new Set(r.queries.map((q) => q.readUInt16BE(0))).size).toBe(2);
    expect(r.connections()).toBe(1);
    expect(f.stats()).toMatchObject({ queries: 2, answered: 2, servfail: 0, connections: 1 });
  });

  it('cuts a large answer to 512 bytes for a plain client (TC=1) and passes it whole to an EDNS client', async () => {
    const r = await fakeResolver(answerTo(40));
    cleanups.push(() => new Promise<void>((res) => r.server.close(() => res())));
    const { f, port } = await forwarder(r.port);
    const c = await client();
    const plain = await c.ask(query(1), port);
    expect(plain.length).toBeLessThanOrEqual(512);
    expect(plain.readUInt16BE(2) & 0x0200).toBe(0x0200);
    expect(plain.readUInt16BE(6)).toBe(Math.floor((512 - 29) / 16));
    const edns = await c.ask(query(2, 4096), port);
    expect(edns.length).toBe(answer(2, 40).length);
    expect(edns.readUInt16BE(2) & 0x0200).toBe(0);
    expect(f.stats()).toMatchObject({ answered: 2, truncated: 1 });
  });

  it('a failed dial is answered SERVFAIL at once (the tunnel is down or blocks)', async () => {
    const down: Dialer = () => Promise.reject(new ProxyDialError('blocked', 'fallback block'));
    const { f, port } = await forwarder(9, down);
    const c = await client();
    const s = await c.ask(query(5), port);
    expect(s.readUInt16BE(0)).toBe(5);
    expect(s.readUInt16BE(2) & 0x000f).toBe(2);
    expect(f.stats()).toMatchObject({ servfail: 1, errors: { dial: 1 } });
  });

  it('a connection closed before the answer: the query is sent once more on a new connection', async () => {
    const r = await fakeResolver((q, n) => (n === 1 ? 'close' : answer(q.readUInt16BE(0), 1)));
    cleanups.push(() => new Promise<void>((res) => r.server.close(() => res())));
    const { f, port } = await forwarder(r.port);
    const c = await client();
    const a = await c.ask(query(3), port);
    expect(a.readUInt16BE(6)).toBe(1);
    expect(r.connections()).toBe(2);
    expect(f.stats()).toMatchObject({ answered: 1, connections: 2 });
  });

  it('lost twice: SERVFAIL', async () => {
    const r = await fakeResolver(() => 'close');
    cleanups.push(() => new Promise<void>((res) => r.server.close(() => res())));
    const { f, port } = await forwarder(r.port);
    const c = await client();
    const a = await c.ask(query(3), port);
    expect(a.readUInt16BE(2) & 0x000f).toBe(2);
    expect(f.stats()).toMatchObject({ servfail: 1, errors: { lost: 1 } });
  });

  it('an answer to another question is not passed on; the query ends SERVFAIL after its timeout', async () => {
    const other = Buffer.concat([Buffer.from([3, 97, 98, 99, 0]), Buffer.from([0, 1, 0, 1])]);
    const r = await fakeResolver((q) => answer(q.readUInt16BE(0), 1, other));
    cleanups.push(() => new Promise<void>((res) => r.server.close(() => res())));
    const { f, port } = await forwarder(r.port, tcpDialer, 200);
    const c = await client();
    const a = await c.ask(query(4), port);
    expect(a.readUInt16BE(2) & 0x000f).toBe(2);
    expect(f.stats()).toMatchObject({
      answered: 0,
      servfail: 1,
      errors: { 'bad-answer': 1, timeout: 1 },
    });
  });

  it('drops what is not a standard query (responses, garbage) without a dial', async () => {
    let dials = 0;
    const counting: Dialer = (d, o) => {
      dials++;
      return tcpDialer(d, o);
    };
    const { f, port } = await forwarder(9, counting);
    const c = await client();
    c.sock.send(Buffer.from('hello, this is not DNS'), port, '127.0.0.1');
    c.sock.send(answer(1, 1), port, '127.0.0.1');
    // a real query afterwards proves the two before were read (and dropped)
    const s = await c.ask(query(6), port);
    expect(s.readUInt16BE(0)).toBe(6);
    expect(dials).toBe(1);
    expect(f.stats().errors.malformed).toBe(2);
  });
});
