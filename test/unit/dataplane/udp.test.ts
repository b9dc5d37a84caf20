import { afterEach, describe, expect, it, vi } from 'vitest';
import { Device } from '../../../src/dataplane/device/device.js';
import { UdpBind } from '../../../src/dataplane/conn/udp.js';
import { MemoryTun } from '../../../src/dataplane/tun/memory.js';
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
    const a = new Device({ tun: ta, bind: new UdpBind('127.0.0.1') });
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
    await vi.waitFor(() => expect(tb.written.length).toBe(1), { timeout: 5000 });
    expect(Buffer.from(tb.written[0]!).equals(Buffer.from(pkt))).toBe(true);
  });

  it('reports a port in use as a driver error', async () => {
    const x = new UdpBind('127.0.0.1');
    const port = await x.open(0);
    const y = new UdpBind('127.0.0.1');
    await expect(y.open(port)).rejects.toMatchObject({ kind: 'driver' });
    await x.close();
  });
});
