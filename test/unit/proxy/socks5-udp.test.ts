/**
 * The SOCKS5 UDP relay believes replies only from the relay address the proxy named, with the
 * frame address of the destination it sends to. A fake SOCKS5 server on loopback answers
 * UDP ASSOCIATE with BND.ADDR 0.0.0.0 (→ the proxy's own address) and echoes frames; a
 * forger on another port sends well-formed frames to the relay's UDP socket.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { SocksClient } from 'socks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Socks5UdpRelay,
  canonicalHost,
  frameFromTarget,
  relayAddress,
} from '../../../src/proxy/socks5-udp.js';

const TARGET = { host: '192.0.2.53', port: 53 };

interface FakeSocks {
  tcp: Server;
  udp: UdpSocket;
  port: number;
  /** the relay client's UDP address, once its first datagram arrived */
  client: Promise<{ address: string; port: number }>;
  send(frame: Buffer): Promise<void>;
}

async function fakeSocks(): Promise<FakeSocks> {
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const relayPort = udp.address().port;
  let seen: ((a: { address: string; port: number }) => void) | undefined;
  const client = new Promise<{ address: string; port: number }>((r) => (seen = r));
  let peer: { address: string; port: number } | undefined;
  udp.on('message', (m, r) => {
    peer = { address: r.address, port: r.port };
    seen?.(peer);
    const f = SocksClient.parseUDPFrame(m);
    // echo from the destination the client asked for
    udp.send(
      SocksClient.createUDPFrame({
        remoteHost: f.remoteHost,
        data: Buffer.from(`echo:${f.data.toString()}`),
      }),
      r.port,
      r.address,
    );
  });
  const tcp = createServer((s) => {
    let stage = 0;
    s.on('data', (d: Buffer) => {
      if (stage === 0) {
        s.write(Buffer.from([5, 0])); // no authentication
        stage = 1;
      } else if (stage === 1) {
        expect(d[1]).toBe(3); // UDP ASSOCIATE
        // BND.ADDR 0.0.0.0: "the address you reached me at"
        s.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, relayPort >> 8, relayPort & 0xff]));
        stage = 2;
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  return {
    tcp,
    udp,
    port: (tcp.address() as AddressInfo).port,
    client,
    send: (frame) =>
      new Promise<void>((r) => udp.send(frame, peer!.port, peer!.address, () => r())),
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('Socks5UdpRelay: replies only from the relay, for the target', () => {
  it('drops a forged frame from another sender and a frame for another address; passes the genuine ones', async () => {
    const fake = await fakeSocks();
    cleanups.push(
      () => new Promise<void>((r) => fake.tcp.close(() => r())),
      () => void fake.udp.close(),
    );
    const relay = new Socks5UdpRelay({
      listen: { host: '127.0.0.1', port: 0 },
      target: TARGET,
      socks: { server: '127.0.0.1', port: fake.port },
    });
    const { port } = await relay.start();
    cleanups.push(() => relay.close());
    const app = createSocket('udp4');
    await new Promise<void>((r) => app.bind(0, '127.0.0.1', r));
    cleanups.push(() => void app.close());
    const got: string[] = [];
    const waiters: (() => void)[] = [];
    app.on('message', (m) => {
      got.push(m.toString());
      waiters.splice(0).forEach((w) => w());
    });
    const next = async (n: number) => {
      while (got.length < n) await new Promise<void>((r) => waiters.push(r));
      return got[n - 1];
    };

    app.send('q1', port, '127.0.0.1');
    expect(await next(1)).toBe('echo:q1');
    const c = await fake.client;

    // a forger elsewhere on the host: a well-formed frame "from the target" to the relay's UDP port
    const forger = createSocket('udp4');
    cleanups.push(() => void forger.close());
    await new Promise<void>((r) =>
      forger.send(
        SocksClient.createUDPFrame({ remoteHost: TARGET, data: Buffer.from('FORGED') }),
        c.port,
        c.address,
        () => r(),
      ),
    );
    // the relay itself, but a frame address that is not the destination we send to
    await fake.send(
      SocksClient.createUDPFrame({
        remoteHost: { host: '198.51.100.1', port: 53 },
        data: Buffer.from('OTHER-ADDR'),
      }),
    );
    await fake.send(
      SocksClient.createUDPFrame({
        remoteHost: { host: TARGET.host, port: 5353 },
        data: Buffer.from('OTHER-PORT'),
      }),
    );
    await fake.send(
      SocksClient.createUDPFrame({ remoteHost: TARGET, data: Buffer.from('genuine') }),
    );
    expect(await next(2)).toBe('genuine');
    expect(got).toEqual(['echo:q1', 'genuine']);
    // the forger's datagram never reached us (the socket is connected to the relay); the other two were counted
    expect(relay.stats().errors.forged).toBe(2);
    expect(relay.stats().datagrams).toMatchObject({ up: 1, down: 2 });
  });
});

describe('relay address and frame address rules', () => {
  it('an unspecified BND.ADDR means the proxy we are connected to', () => {
    expect(relayAddress({ host: '0.0.0.0', port: 4000 }, '10.0.0.1')).toEqual({
      host: '10.0.0.1',
      port: 4000,
    });
    expect(relayAddress({ host: '::', port: 4000 }, '::ffff:10.0.0.1')).toEqual({
      host: '10.0.0.1',
      port: 4000,
    });
    expect(
      relayAddress({ host: '0000:0000:0000:0000:0000:0000:0000:0000', port: 1 }, 'fd00::1'),
    ).toEqual({ host: 'fd00::1', port: 1 });
    // what the socks package hands over for 0.0.0.0
    expect(relayAddress({ host: undefined, port: 4000 }, '10.0.0.1')).toEqual({
      host: '10.0.0.1',
      port: 4000,
    });
    expect(relayAddress({ host: '10.9.9.9', port: 4000 }, '10.0.0.1')).toEqual({
      host: '10.9.9.9',
      port: 4000,
    });
  });
  it('frame addresses are compared in one spelling', () => {
    expect(canonicalHost('fd00:0200:0000:0000:0000:0000:0072:0002')).toBe('fd00:200::72:2');
    expect(
      frameFromTarget(
        { host: 'fd00:0200:0000:0000:0000:0000:0072:0002', port: 53 },
        { host: 'fd00:200::72:2', port: 53 },
      ),
    ).toBe(true);
    expect(frameFromTarget({ host: '::ffff:192.0.2.53', port: 53 }, TARGET)).toBe(true);
    expect(frameFromTarget({ host: '192.0.2.54', port: 53 }, TARGET)).toBe(false);
    expect(frameFromTarget({ host: '192.0.2.53', port: 54 }, TARGET)).toBe(false);
    expect(
      frameFromTarget({ host: 'DNS.Example', port: 53 }, { host: 'dns.example', port: 53 }),
    ).toBe(true);
  });
});
