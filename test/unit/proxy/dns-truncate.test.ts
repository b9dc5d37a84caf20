import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { DnsTruncator, truncatedAnswer } from '../../../src/proxy/dns-truncate.js';

/** A query for example.com A with RD set and an EDNS OPT record. */
function query(id = 0x1234): Buffer {
  const name = Buffer.from([7, ...Buffer.from('example'), 3, ...Buffer.from('com'), 0]);
  const head = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
  const opt = Buffer.from([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, name, Buffer.from([0, 1, 0, 1]), opt]);
}

describe('truncatedAnswer', () => {
  it('answers a query with QR, TC, RD, the same id and question, and no records', () => {
    const q = query();
    const a = truncatedAnswer(q)!;
    expect(a.readUInt16BE(0)).toBe(0x1234);
    expect(a.readUInt16BE(2)).toBe(0x8000 | 0x0200 | 0x0100);
    expect([a.readUInt16BE(4), a.readUInt16BE(6), a.readUInt16BE(8), a.readUInt16BE(10)]).toEqual([1, 0, 0, 0]);
    // header + question only: the OPT record is not echoed
    expect(a.subarray(12)).toEqual(q.subarray(12, 12 + 13 + 4));
  });
  it('drops responses, short and malformed packets', () => {
    const r = query();
    r.writeUInt16BE(0x8100, 2);
    expect(truncatedAnswer(r)).toBeUndefined();
    expect(truncatedAnswer(Buffer.alloc(5))).toBeUndefined();
    expect(truncatedAnswer(query().subarray(0, 20))).toBeUndefined();
    const ptr = query();
    ptr[12] = 0xc0;
    expect(truncatedAnswer(ptr)).toBeUndefined();
  });
});

describe('DnsTruncator', () => {
  it('answers over UDP on loopback', async () => {
    const t = new DnsTruncator({ host: '127.0.0.1', port: 0 });
    const { port } = await t.start();
    const c = createSocket('udp4');
    try {
      const got = await new Promise<Buffer>((resolve) => {
        c.once('message', resolve);
        c.send(query(7), port, '127.0.0.1');
      });
      expect(got.readUInt16BE(0)).toBe(7);
      expect(got.readUInt16BE(2) & 0x0200).toBe(0x0200);
      expect(t.stats()).toEqual({ queries: 1, dropped: 0 });
    } finally {
      c.close();
      await t.close();
    }
  });
});
