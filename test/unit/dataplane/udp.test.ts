import { afterEach, describe, expect, it } from 'vitest';
import { Device } from '../../../src/dataplane/device/device.js';
import { UdpBind } from '../../../src/dataplane/conn/udp.js';
import { MemoryTun } from '../../../src/dataplane/tun/memory.fake.js';
import { generateKeyPair } from '../../../src/dataplane/crypto/keys.js';
import { ipv4 } from './harness.js';

describe('real UDP bind on loopback', () => {
  const devices: Device[] = [];
  afterEach(async () => {
    for (const d of devices.splice(0)) await d.close();
  });

  it('two devices handshake and exchange a packet over 127.0.0.1', async () => {
    const ka = generateKeyPair();
    const kb = generateKeyPair();
    const ta = new MemoryTun('a');
    const tb = new MemoryTun('b');
    const a = new Device({ tun: ta, bind: new UdpBind() }); // dual-stack wildcard socket
    const b = new Device({ tun: tb, bind: new UdpBind('127.0.0.1') });
    devices.push(a, b);
    await b.configure({
      privateKey: kb.privateKey,
      peers: [{ publicKey: ka.publicKey, allowedIps: ['192.168.0.1/32'] }],
    });
    await b.up();
    await a.configure({
      privateKey: ka.privateKey,
      peers: [
        {
          publicKey: kb.publicKey,
          endpoint: `127.0.0.1:${b.port}`,
          allowedIps: ['192.168.0.2/32'],
        },
      ],
    });
    await a.up();
    expect(b.port).toBeGreaterThan(0);
    const pkt = ipv4('192.168.0.1', '192.168.0.2', 'over udp');
    ta.inject(pkt);
    await eventually(() => expect(tb.written.length).toBe(1));
    expect(Buffer.from(tb.written[0]!).equals(Buffer.from(pkt))).toBe(true);
    // the reply reaches A's dual-stack socket as ::ffff:127.0.0.1 and is normalised
    tb.inject(ipv4('192.168.0.2', '192.168.0.1', 'reply'));
    await eventually(() => expect(ta.written.length).toBe(1));
    expect(a.peerStatusByKey(kb.publicKey)!.endpoint).toEqual({
      address: '127.0.0.1',
      port: b.port,
    });
  });

  it('reports a port in use as a driver error', async () => {
    const x = new UdpBind('127.0.0.1');
    const port = await x.open(0);
    const y = new UdpBind('127.0.0.1');
    await expect(y.open(port)).rejects.toMatchObject({ kind: 'driver' });
    await x.close();
  });
});

import { networkInterfaces } from 'node:os';
import { eventually } from '../../helpers/eventually.js';
const hasV6Loopback = Object.values(networkInterfaces()).some((l) =>
  l?.some((a) => a.address === '::1'),
);

describe.skipIf(!hasV6Loopback)('real UDP bind on IPv6 loopback', () => {
  it('handshake and data over [::1]', async () => {
    const ka = generateKeyPair();
    const kb = generateKeyPair();
    const ta = new MemoryTun('a');
    const tb = new MemoryTun('b');
    const a = new Device({ tun: ta, bind: new UdpBind('::1') });
    const b = new Device({ tun: tb, bind: new UdpBind('::1') });
    try {
      await b.configure({
        privateKey: kb.privateKey,
        peers: [{ publicKey: ka.publicKey, allowedIps: ['192.168.0.1/32'] }],
      });
      await b.up();
      await a.configure({
        privateKey: ka.privateKey,
        peers: [
          { publicKey: kb.publicKey, endpoint: `[::1]:${b.port}`, allowedIps: ['192.168.0.2/32'] },
        ],
      });
      await a.up();
      ta.inject(ipv4('192.168.0.1', '192.168.0.2', 'v6 outer'));
      await eventually(() => expect(tb.written.length).toBe(1));
      expect(b.peerStatusByKey(ka.publicKey)!.endpoint!.address).toBe('::1');
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('UdpBind socket mark hook', () => {
  it('applies the mark through the injected setsockopt on open and on change', async () => {
    const calls: number[] = [];
    const u = new UdpBind('127.0.0.1', (_sock, mark) => calls.push(mark));
    u.setMark(51820);
    await u.open(0);
    u.setMark(7);
    await u.close();
    expect(calls).toEqual([51820, 7]);
  });
});
