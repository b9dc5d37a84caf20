/**
 * The SOCKS5 UDP relay believes replies only from the relay address the proxy named, with the
 * frame address of the destination it sends to. A fake SOCKS5 server on loopback answers
 * UDP ASSOCIATE with BND.ADDR 0.0.0.0 (→ the proxy's own address) and echoes frames; a
 * forger on another port sends well-formed frames to the relay's UDP socket.
 */
import { createSocket } from 'node:dgram';
import { SocksClient } from 'socks';
import { afterEach, describe, expect, it } from 'vitest';
import { Socks5UdpRelay, canonicalHost, relayAddress } from '../../../src/proxy/socks5-udp.js';
import { fakeSocks } from './fake-socks.js';

const TARGET = { host: '192.0.2.53', port: 53 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('Socks5UdpRelay: replies only from the relay, for the target', () => {
  it('drops a forged frame from another sender and a frame for another address; passes the genuine ones', async () => {
    const fake = await fakeSocks();
    cleanups.push(() => fake.close());
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
    const c = await fake.associations[0]!.client;

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
      0,
      SocksClient.createUDPFrame({
        remoteHost: { host: '198.51.100.1', port: 53 },
        data: Buffer.from('OTHER-ADDR'),
      }),
    );
    await fake.send(
      0,
      SocksClient.createUDPFrame({
        remoteHost: { host: TARGET.host, port: 5353 },
        data: Buffer.from('OTHER-PORT'),
      }),
    );
    // the target's address as a v4-mapped IPv6 address (ATYP 4) or as a name (ATYP 3): not what we asked for
    await fake.send(
      0,
      SocksClient.createUDPFrame({
        remoteHost: { host: `::ffff:${TARGET.host}`, port: TARGET.port },
        data: Buffer.from('MAPPED'),
      }),
    );
    await fake.send(
      0,
      Buffer.concat([
        Buffer.from([0, 0, 0, 3, 10]),
        Buffer.from('192.0.2.53'),
        Buffer.from([0, 53]),
        Buffer.from('NAME'),
      ]),
    );
    // a fragment (FRAG 1), a header cut short, an unknown ATYP, RSV not zero
    await fake.send(
      0,
      SocksClient.createUDPFrame({ remoteHost: TARGET, data: Buffer.from('FRAG'), frameNumber: 1 }),
    );
    await fake.send(0, Buffer.from([0, 0, 0, 1, 192, 0, 2]));
    await fake.send(0, Buffer.from([0, 0, 0, 9, 192, 0, 2, 53, 0, 53, 1]));
    await fake.send(0, Buffer.from([1, 0, 0, 1, 192, 0, 2, 53, 0, 53, 1]));
    await fake.send(
      0,
      SocksClient.createUDPFrame({ remoteHost: TARGET, data: Buffer.from('genuine') }),
    );
    expect(await next(2)).toBe('genuine');
    expect(got).toEqual(['echo:q1', 'genuine']);
    // the forger's datagram never reached us (the socket is connected to the relay); the others were counted
    expect(relay.stats().errors).toMatchObject({ forged: 4, fragment: 1, 'bad-frame': 3 });
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
  it('canonical host spellings', () => {
    expect(canonicalHost('fd00:0200:0000:0000:0000:0000:0072:0002')).toBe('fd00:200::72:2');
    expect(canonicalHost('::ffff:192.0.2.53')).toBe('192.0.2.53');
    expect(canonicalHost('DNS.Example')).toBe('dns.example');
  });
});
