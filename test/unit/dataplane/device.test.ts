import { describe, expect, it, vi } from 'vitest';
import { hexOf, ipv4, ipv6, makeBatchedPair, makePair } from './harness.js';
import { range } from '../../../src/dataplane/awg/range.js';
import type { AwgParams } from '../../../src/dataplane/awg/params.js';
import { HANDSHAKE_EVENT_DELAY_MS } from '../../../src/dataplane/device/device.js';

const PING = ipv4('192.168.0.1', '192.168.0.2', 'hello from A');
const PONG = ipv4('192.168.0.2', '192.168.0.1', 'hello from B');

describe('two devices over in-memory TUN and bind', () => {
  it('a device closed before its handshake event was due emits none', async () => {
    const { a, b, net, clock } = await makePair();
    const events: string[] = [];
    a.dev.on('handshake', () => events.push('A'));
    b.dev.on('handshake', () => events.push('B'));
    a.tun.inject(PING);
    net.flush();
    expect(b.tun.written.map(hexOf)).toEqual([hexOf(PING)]);
    await a.dev.close();
    clock.advance(HANDSHAKE_EVENT_DELAY_MS);
    // B's side completes on A's first transport message; A was closed before its event was due
    expect(events).toEqual(['B']);
  });

  it('handshake then IP packets both ways; the handshake events follow the packets that waited for them', async () => {
    const { a, b, net, clock } = await makePair();
    const events: string[] = [];
    a.dev.on('handshake', (e) => events.push(`A:${e.initiator}`));
    b.dev.on('handshake', (e) => events.push(`B:${e.initiator}`));
    a.tun.inject(PING);
    net.flush();
    expect(b.tun.written.map(hexOf)).toEqual([hexOf(PING)]);
    b.tun.inject(PONG);
    net.flush();
    expect(a.tun.written.map(hexOf)).toEqual([hexOf(PONG)]);
    // the staged ping and the pong went through before any listener ran
    expect(events).toEqual([]);
    clock.advance(HANDSHAKE_EVENT_DELAY_MS);
    expect(events).toEqual(['A:true', 'B:false']);
    const sa = a.dev.peerStatusByKey(b.keys.publicKey)!;
    expect(sa.lastHandshakeTime).toBeGreaterThan(0);
    expect(sa.txBytes).toBeGreaterThan(0);
    expect(sa.rxBytes).toBeGreaterThan(0);
    // B learned A's endpoint from the handshake
    expect(b.dev.peerStatusByKey(a.keys.publicKey)!.endpoint).toEqual({
      address: '10.0.0.1',
      port: 51820,
    });
    // wire sizes are plain WireGuard: 148, 92, then transport (keepalive 32)
    expect(net.sent.slice(0, 3).map((d) => d.data.length)).toEqual([148, 92, 32 + 32]);
  });

  it('carries IPv6 and drops packets whose inner source is not the peer’s allowed IP', async () => {
    const { a, b, net } = await makePair();
    const s6 = new Uint8Array(16);
    s6[0] = 0xfd;
    s6[15] = 1;
    const d6 = new Uint8Array(16);
    d6[0] = 0xfd;
    d6[15] = 2;
    a.tun.inject(ipv6(s6, d6));
    net.flush();
    expect(b.tun.written.length).toBe(1);
    a.tun.inject(ipv4('192.168.0.99', '192.168.0.2', 'spoof'));
    net.flush();
    expect(b.tun.written.length).toBe(1);
    a.tun.inject(ipv4('192.168.0.1', '192.168.7.7', 'no route'));
    net.flush();
    expect(net.sent.filter((d) => d.from.address === '10.0.0.1').length).toBe(3); // init, keepalive, v6 data; none for no-route
  });

  it('rejects replayed transport packets', async () => {
    const { a, b, net } = await makePair();
    a.tun.inject(PING);
    net.flush();
    const data = net.sent.filter((d) => d.from.address === '10.0.0.1' && d.data.length === 64);
    expect(data.length).toBe(1);
    b.bind.send([data[0]!.data], { address: '10.0.0.2', port: 51821 }); // wrong direction: ignore
    const replay = data[0]!;
    a.bind.send([replay.data], replay.to);
    net.flush();
    expect(b.tun.written.length).toBe(1);
  });

  it('with a PSK', async () => {
    const { a, b, net } = await makePair({ psk: new Uint8Array(32).fill(7) });
    a.tun.inject(PING);
    net.flush();
    expect(b.tun.written.length).toBe(1);
  });

  it('mismatched PSK fails', async () => {
    const { a, b, net } = await makePair();
    await b.dev.configure({
      peers: [{ publicKey: a.keys.publicKey, presharedKey: new Uint8Array(32).fill(1) }],
    });
    a.tun.inject(PING);
    net.flush();
    expect(b.tun.written.length).toBe(0);
  });
});

const ALL_AWG: Partial<AwgParams> = {
  jc: 5,
  jmin: 50,
  jmax: 100,
  s1: 15,
  s2: 18,
  s3: 20,
  s4: 25,
  h1: range(123456, 123500),
  h2: range(67543, 67550),
  h3: range(123123, 123200),
  h4: range(32345, 32350),
  i: ['<b 0xc0ffee><r 8><t>', '<rc 10>', null, null, '<rd 4>'],
};

describe('AmneziaWG parameter sets', () => {
  const sets: Array<[string, Partial<AwgParams>]> = [
    ['TestAWGDevicePing set + I-packets', ALL_AWG],
    [
      'header protection',
      {
        ...ALL_AWG,
        s1: 16,
        s2: 16,
        s3: 16,
        s4: 16,
        headerProtectionKey: new Uint8Array(32).fill(0x5c),
      },
    ],
    ['content padding', { ...ALL_AWG, contentPaddingAddition: range(0, 200) }],
    ['random trailers', { ...ALL_AWG, randomTrailers: true }],
    [
      'timing ranges',
      {
        rekeyTimeout: range(3, 4),
        keepaliveTimeout: range(5, 8),
        rekeyAfterTime: range(60, 70),
        rejectAfterTime: range(100, 110),
        maxHandshakeAttempts: range(3, 5),
      },
    ],
  ];
  it.each(sets)('%s: handshake and data both ways', async (_n, awg) => {
    const { a, b, net } = await makePair({ awgA: awg });
    a.tun.inject(PING);
    net.flush();
    b.tun.inject(PONG);
    net.flush();
    expect(b.tun.written.map(hexOf)).toEqual([hexOf(PING)]);
    expect(a.tun.written.map(hexOf)).toEqual([hexOf(PONG)]);
  });

  it('sends I-packets and junk before each initiation with the configured sizes', async () => {
    const { net, a } = await makePair({ awgA: ALL_AWG });
    a.tun.inject(PING);
    net.flush();
    const fromA = net.sent.filter((d) => d.from.address === '10.0.0.1').map((d) => d.data.length);
    expect(fromA[0]).toBe(3 + 8 + 4); // I1
    expect(fromA[1]).toBe(10); // I2
    expect(fromA[2]).toBe(4); // I5
    for (const j of fromA.slice(3, 8)) expect(j >= 50 && j < 100).toBe(true);
    expect(fromA[8]).toBe(15 + 148);
  });

  const mismatches: Array<[string, Partial<AwgParams>]> = [
    ['S1', { s1: 16 }],
    ['S2', { s2: 19 }],
    ['S4', { s4: 26 }],
    ['H1', { h1: range(123501, 123600) }],
    ['H2', { h2: range(67551, 67560) }],
    ['H4', { h4: range(32351, 32360) }],
    [
      'header protection key',
      { s1: 16, s2: 18, s3: 20, s4: 25, headerProtectionKey: new Uint8Array(32).fill(1) },
    ],
  ];
  it.each(mismatches)('mismatched %s does not connect', async (_n, diff) => {
    const { a, b, net } = await makePair({ awgA: ALL_AWG, awgB: { ...ALL_AWG, ...diff } });
    a.tun.inject(PING);
    net.flush();
    expect(b.tun.written.length).toBe(0);
    // the responder never sees key confirmation (S4/H4 mismatches still let handshakes through)
    expect(b.dev.peerStatusByKey(a.keys.publicKey)!.hasSession).toBe(false);
  });

  it('junk and I-packet settings need not match (sender-only)', async () => {
    const { a, b, net } = await makePair({
      awgA: ALL_AWG,
      awgB: { ...ALL_AWG, jc: 0, i: [null, null, null, null, null] },
    });
    a.tun.inject(PING);
    net.flush();
    expect(b.tun.written.length).toBe(1);
  });
});

describe('buffers the device does not own', () => {
  it('a packet staged for a handshake is copied: the TUN reuses its read buffer after the batch', async () => {
    const { a, b, net } = await makePair();
    const slab = new Uint8Array(4096); // the TUN reads into a slab and hands over views
    slab.set(PING, 100);
    a.tun.inject(slab.subarray(100, 100 + PING.length));
    slab.fill(0xee); // the next read overwrites it before the handshake is done
    net.flush();
    expect(b.tun.written.map(hexOf)).toEqual([hexOf(PING)]);
  });

  it('a batch larger than the send slab and sendmmsg’s burst arrives whole and in order', async () => {
    const { a, b, net } = await makePair();
    a.tun.inject(PING);
    net.flush();
    const big = Array.from({ length: 300 }, (_, i) =>
      ipv4('192.168.0.1', '192.168.0.2', `${i}`.padEnd(1300, '.')),
    );
    a.tun.inject(...big); // 300 × ~1.36 KB: three slabs' worth, five bursts
    net.flush();
    expect(b.tun.written.slice(1).map(hexOf)).toEqual(big.map(hexOf));
  });
});

describe('the receive slab', () => {
  it('a receive batch larger than the slab is written whole and in order (flushed early, then reused)', async () => {
    // B receives as the native bind does: every datagram of a network flush in one batch,
    // with the batch end after the last
    const { a, b, deliver } = await makeBatchedPair();
    a.tun.inject(PING);
    deliver();
    expect(b.tun.written.map(hexOf)).toEqual([hexOf(PING)]);
    // 300 × ~1.36 KB ≈ 400 KB in one batch: more than the 256 KiB slab
    const big = Array.from({ length: 300 }, (_, i) =>
      ipv4('192.168.0.1', '192.168.0.2', `${i}`.padEnd(1300, '.')),
    );
    a.tun.inject(...big);
    deliver();
    expect(b.tun.written.length).toBe(301);
    expect(b.tun.written.slice(1).map(hexOf)).toEqual(big.map(hexOf));
  });
});

describe('AWG_BUFFER_REUSE=0 (diagnosis): a buffer per packet', () => {
  it('carries the same packets both ways without the slabs', async () => {
    vi.stubEnv('AWG_BUFFER_REUSE', '0');
    try {
      const { a, b, net } = await makePair();
      expect(a.dev.reuseBuffers).toBe(false);
      const big = Array.from({ length: 200 }, (_, i) =>
        ipv4('192.168.0.1', '192.168.0.2', `${i}`.padEnd(1300, '.')),
      );
      a.tun.inject(PING);
      net.flush();
      a.tun.inject(...big);
      net.flush();
      expect(b.tun.written.map(hexOf)).toEqual([PING, ...big].map(hexOf));
      b.tun.inject(PONG);
      net.flush();
      expect(a.tun.written.map(hexOf)).toEqual([hexOf(PONG)]);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
