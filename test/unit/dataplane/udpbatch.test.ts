import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { UdpBind } from '../../../src/dataplane/conn/udp.js';
import { SLOT_SIZE, BATCH_MAX } from '../../../src/native/mmsg-block.js';
import { eventually } from '../../helpers/eventually.js';

const linux = process.platform === 'linux';

describe.skipIf(!linux)('UdpBind batched sends (sendmmsg)', () => {
  const closers: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  async function receiver(
    type: 'udp4' | 'udp6',
    host: string,
  ): Promise<{ s: Socket; got: Buffer[] }> {
    const s = createSocket(type);
    const got: Buffer[] = [];
    s.on('message', (m) => got.push(m));
    s.bind(0, host);
    await once(s, 'listening');
    s.setRecvBufferSize(8 << 20); // a burst must not overflow the receiver
    closers.push(() => new Promise<void>((r) => s.close(() => r())));
    return { s, got };
  }

  function burst(n: number): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      // mixed sizes, including empty-ish, slot-sized and oversized (dgram fallback)
      const len =
        i % 50 === 7 ? SLOT_SIZE + 100 : i % 13 === 0 ? SLOT_SIZE : 32 + ((i * 97) % 1400);
      const b = Buffer.alloc(len, i & 0xff);
      b.writeUInt32BE(i, 0);
      out.push(b);
    }
    return out;
  }

  for (const [label, bindHost, rType, rHost, to] of [
    ['dual-stack socket to v4', undefined, 'udp4', '127.0.0.1', '127.0.0.1'],
    ['v4 socket', '127.0.0.1', 'udp4', '127.0.0.1', '127.0.0.1'],
  ] as const) {
    it(`delivers a burst larger than one batch intact and in order (${label})`, async () => {
      const { s, got } = await receiver(rType, rHost);
      const b = new UdpBind(bindHost);
      closers.push(() => b.close());
      await b.open(0);
      expect(b.batching).toBe(true);
      const bufs = burst(BATCH_MAX * 2 + 17);
      b.send(bufs, { address: to, port: s.address().port });
      await eventually(() => expect(got.length).toBe(bufs.length));
      for (let i = 0; i < bufs.length; i++) expect(got[i]!.equals(bufs[i]!)).toBe(true);
    });
  }

  const hasV6 = (() => {
    try {
      const s = createSocket('udp6');
      s.bind(0, '::1');
      s.close();
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!hasV6)('sends to a v6 peer from the dual-stack socket', async () => {
    const { s, got } = await receiver('udp6', '::1');
    const b = new UdpBind();
    closers.push(() => b.close());
    await b.open(0);
    const bufs = burst(20);
    b.send(bufs, { address: '::1', port: s.address().port });
    await eventually(() => expect(got.length).toBe(bufs.length));
    for (let i = 0; i < bufs.length; i++) expect(got[i]!.equals(bufs[i]!)).toBe(true);
  });

  for (const [label, bindHost, to] of [
    ['dual-stack socket', undefined, '127.0.0.1'],
    ['v4 socket', '127.0.0.1', '127.0.0.1'],
  ] as const) {
    it(`UDP GSO: equal-size runs are segmented back into the same datagrams (${label})`, async () => {
      const { s, got } = await receiver('udp4', '127.0.0.1');
      const b = new UdpBind(bindHost, undefined, { gso: true });
      closers.push(() => b.close());
      await b.open(0);
      expect(b.segmenting).toBe(true);
      const bufs: Buffer[] = [];
      // long equal runs (more than one 64 KiB run), short tails, singles, an oversize one
      const sizes = [
        ...Array<number>(70).fill(1452),
        600,
        ...Array<number>(5).fill(1200),
        1452,
        1300,
        1300,
        1300,
        SLOT_SIZE + 1,
        80,
        80,
        90,
        ...Array<number>(60).fill(148),
      ];
      sizes.forEach((len, i) => {
        const x = Buffer.alloc(len, i & 0xff);
        x.writeUInt32BE(i, 0);
        bufs.push(x);
      });
      b.send(bufs, { address: to, port: s.address().port });
      await eventually(() => expect(got.length).toBe(bufs.length));
      for (let i = 0; i < bufs.length; i++) expect(got[i]!.equals(bufs[i]!)).toBe(true);
      expect(b.segmenting).toBe(true); // the kernel took the UDP_SEGMENT messages
    });
  }

  it('AWG_UDP_BATCH-style opt-out keeps the dgram path', async () => {
    const { s, got } = await receiver('udp4', '127.0.0.1');
    const b = new UdpBind('127.0.0.1', undefined, { batch: false });
    closers.push(() => b.close());
    await b.open(0);
    expect(b.batching).toBe(false);
    b.send(burst(5), { address: '127.0.0.1', port: s.address().port });
    await eventually(() => expect(got.length).toBe(5));
  });
});
