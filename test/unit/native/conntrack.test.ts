/**
 * ctnetlink on bytes. Layouts written out by hand from linux/netfilter/nfnetlink.h and
 * nfnetlink_conntrack.h (nfgenmsg 4 bytes; CTA_TUPLE_ORIG 1 / REPLY 2 { CTA_TUPLE_IP 1
 * { V4_SRC 1, V4_DST 2, V6_SRC 3, V6_DST 4 }, CTA_TUPLE_PROTO 2 { NUM 1, SRC_PORT 2,
 * DST_PORT 3 } }, CTA_MARK 8, CTA_COUNTERS_ORIG 9 / REPLY 10 { PACKETS 1, BYTES 2 }, CTA_ID
 * 12, CTA_ZONE 18; values in network order), built with the test's own encoder.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildCtDump,
  buildCtGet,
  CT_EVENT_GROUPS,
  parseCtEntry,
  parseCtEvent,
} from '../../../src/native/conntrack.js';
import { parseMessages, type NlMessage } from '../../../src/native/rtnl.js';
import { be16, be32, be64, ip4, nest, nla, nlmsg } from '../../helpers/netlink-bytes.js';

const CT_NEW = (1 << 8) | 0;
const CT_GET = (1 << 8) | 1;
const CT_DELETE = (1 << 8) | 2;

interface Tuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

const addr = (s: string): Buffer => (s.includes(':') ? Buffer.from(expand6(s), 'hex') : ip4(s));

/** a test-only IPv6 expander (full form hex), for the handful of literals used here */
function expand6(s: string): string {
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join('');
}

function tuple(t: Tuple, proto: number): Buffer {
  const v6 = t.src.includes(':');
  return Buffer.concat([
    nest(1, nla(v6 ? 3 : 1, addr(t.src)), nla(v6 ? 4 : 2, addr(t.dst))),
    nest(2, nla(1, Buffer.from([proto])), nla(2, be16(t.sport)), nla(3, be16(t.dport))),
  ]);
}

const counters = (packets: bigint, bytes: bigint): Buffer =>
  Buffer.concat([nla(1, be64(packets)), nla(2, be64(bytes))]);

interface EntrySpec {
  family: 2 | 10;
  proto: number;
  orig: Tuple;
  reply: Tuple;
  mark?: number | undefined;
  id?: number;
  zone?: number;
  counters?: [bigint, bigint, bigint, bigint] | undefined;
  tcpState?: number;
  type?: number;
}

function entry(e: EntrySpec): Buffer {
  const attrs: Buffer[] = [
    nest(1, tuple(e.orig, e.proto)),
    nest(2, tuple(e.reply, e.proto)),
    nla(3, be32(0x18e)),
  ];
  if (e.tcpState !== undefined) attrs.push(nest(4, nest(1, nla(1, Buffer.from([e.tcpState])))));
  if (e.mark !== undefined) attrs.push(nla(8, be32(e.mark)));
  if (e.counters) {
    attrs.push(nest(9, counters(e.counters[0], e.counters[1])));
    attrs.push(nest(10, counters(e.counters[2], e.counters[3])));
  }
  if (e.id !== undefined) attrs.push(nla(12, be32(e.id)));
  if (e.zone !== undefined) attrs.push(nla(18, be16(e.zone)));
  return nlmsg(
    e.type ?? CT_NEW,
    2,
    1,
    0,
    Buffer.concat([Buffer.from([e.family, 0, 0, 0]), ...attrs]),
  );
}

const msgOf = (b: Buffer): NlMessage => parseMessages(b)[0]!;

const udp4: EntrySpec = {
  family: 2,
  proto: 17,
  orig: { src: '10.200.1.2', dst: '10.200.1.1', sport: 40000, dport: 5201 },
  reply: { src: '10.200.1.1', dst: '10.200.9.9', sport: 5201, dport: 61500 },
  mark: 0x1000000,
  id: 0xfeedbeef,
  counters: [10n, 1280n, 2n, 256n],
};

describe('ctnetlink requests', () => {
  it('dumps with nfgenmsg of the family asked (0: every family)', () => {
    const b = buildCtDump(6, 5, 7);
    expect(b.length).toBe(20);
    expect(b.readUInt16LE(4)).toBe(CT_GET);
    expect(b.readUInt16LE(6)).toBe(0x301);
    expect([...b.subarray(16)]).toEqual([10, 0, 0, 0]);
    expect([...buildCtDump(0, 1).subarray(16)]).toEqual([0, 0, 0, 0]);
    expect([...buildCtDump(4, 1).subarray(16)]).toEqual([2, 0, 0, 0]);
  });

  it('gets one entry by its original tuple (and zone), with an ACK', () => {
    const b = buildCtGet({ family: 4, proto: 17, orig: udp4.orig, zone: 3 }, 9, 11);
    const want = nlmsg(
      CT_GET,
      0x5,
      9,
      11,
      Buffer.concat([Buffer.from([2, 0, 0, 0]), nest(1, tuple(udp4.orig, 17)), nla(18, be16(3))]),
    );
    expect(b.toString('hex')).toBe(want.toString('hex'));
    const v6 = buildCtGet(
      { family: 6, proto: 6, orig: { src: 'fd00:200::1', dst: 'fd00:200::2', sport: 1, dport: 2 } },
      1,
    );
    expect(v6.subarray(16, 17)[0]).toBe(10);
    expect(v6.includes(Buffer.from(expand6('fd00:200::2'), 'hex'))).toBe(true);
  });

  it('joins the NEW and DESTROY groups', () => {
    expect(CT_EVENT_GROUPS).toBe(0b101);
  });
});

describe('ctnetlink entries', () => {
  it('reads tuples, mark, id, counters (64-bit, network order)', () => {
    expect(parseCtEntry(msgOf(entry(udp4)))).toEqual({
      family: 4,
      proto: 17,
      orig: udp4.orig,
      reply: udp4.reply,
      status: 0x18e,
      mark: 0x1000000,
      id: 0xfeedbeef,
      origCounters: { packets: 10, bytes: 1280 },
      replyCounters: { packets: 2, bytes: 256 },
    });
  });

  it('reads IPv6 tuples, the TCP state and a zone; counters above 2^32', () => {
    const e = parseCtEntry(
      msgOf(
        entry({
          family: 10,
          proto: 6,
          orig: { src: 'fd00:200::2', dst: 'fd00:200::1', sport: 50000, dport: 443 },
          reply: { src: 'fd00:200::1', dst: 'fd00:200::2', sport: 443, dport: 50000 },
          tcpState: 3,
          zone: 7,
          counters: [1n, 5_000_000_000n, 1n, 60n],
        }),
      ),
    );
    expect(e).toMatchObject({
      family: 6,
      proto: 6,
      orig: { src: 'fd00:200::2', dst: 'fd00:200::1', sport: 50000, dport: 443 },
      tcpState: 3,
      zone: 7,
      origCounters: { packets: 1, bytes: 5_000_000_000 },
    });
    expect(e?.mark).toBeUndefined();
  });

  it('has no counters when the entry was made while accounting was off', () => {
    const e = parseCtEntry(msgOf(entry({ ...udp4, counters: undefined })));
    expect(e?.origCounters).toBeUndefined();
    expect(e?.replyCounters).toBeUndefined();
  });

  it('tells NEW from DESTROY events; an event without a mark says 0', () => {
    const n = parseCtEvent(msgOf(entry({ ...udp4, mark: undefined })));
    expect(n?.type).toBe('new');
    expect(n?.entry.mark).toBe(0);
    const d = parseCtEvent(msgOf(entry({ ...udp4, type: CT_DELETE })));
    expect(d?.type).toBe('destroy');
    expect(d?.entry.origCounters).toEqual({ packets: 10, bytes: 1280 });
    expect(parseCtEntry(msgOf(entry({ ...udp4, type: CT_DELETE })))).toBeUndefined();
    expect(parseCtEvent(msgOf(entry({ ...udp4, type: (10 << 8) | 0 })))).toBeUndefined();
  });

  it('skips an entry whose tuples are incomplete', () => {
    const noReply = nlmsg(
      CT_NEW,
      0,
      0,
      0,
      Buffer.concat([Buffer.from([2, 0, 0, 0]), nest(1, tuple(udp4.orig, 17))]),
    );
    expect(parseCtEntry(msgOf(noReply))).toBeUndefined();
    // an IPv4 source attribute of 16 bytes is not an address
    const wrongLen = nlmsg(
      CT_NEW,
      0,
      0,
      0,
      Buffer.concat([
        Buffer.from([2, 0, 0, 0]),
        nest(
          1,
          nest(1, nla(1, Buffer.alloc(16)), nla(2, ip4('1.2.3.4'))),
          nest(2, nla(1, Buffer.from([17]))),
        ),
        nest(2, tuple(udp4.reply, 17)),
      ]),
    );
    expect(parseCtEntry(msgOf(wrongLen))).toBeUndefined();
  });

  it('never throws on arbitrary bytes, and what it returns is well formed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), fc.boolean(), (raw, asEvent) => {
        const payload = Buffer.from(raw);
        const m: NlMessage = {
          type: asEvent ? CT_DELETE : CT_NEW,
          flags: 0,
          seq: 0,
          portid: 0,
          payload,
        };
        const e = asEvent ? parseCtEvent(m)?.entry : parseCtEntry(m);
        if (!e) return;
        expect([4, 6]).toContain(e.family);
        for (const t of [e.orig, e.reply]) {
          expect(t.sport).toBeLessThan(65536);
          expect(t.src.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('survives every truncation and byte flip of a full entry, nested lengths included', () => {
    const full = entry({ ...udp4, tcpState: 3, zone: 2 });
    fc.assert(
      fc.property(
        fc.integer({ min: 16, max: full.length }),
        fc.array(
          fc.tuple(fc.integer({ min: 16, max: full.length - 1 }), fc.integer({ min: 0, max: 255 })),
          {
            maxLength: 4,
          },
        ),
        (cut, flips) => {
          const b = Buffer.from(full);
          for (const [at, v] of flips) b[at] = v;
          const m: NlMessage = {
            type: CT_NEW,
            flags: 0,
            seq: 0,
            portid: 0,
            payload: b.subarray(16, cut),
          };
          expect(() => parseCtEntry(m)).not.toThrow();
          expect(() => parseCtEvent(m)).not.toThrow();
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('round-trips random entries', () => {
    const port = fc.integer({ min: 0, max: 65535 });
    const t4 = fc.record({ src: fc.ipV4(), dst: fc.ipV4(), sport: port, dport: port });
    const big = fc.bigInt({ min: 0n, max: (1n << 53n) - 1n });
    fc.assert(
      fc.property(
        t4,
        t4,
        fc.constantFrom(6, 17),
        fc.nat(),
        fc.tuple(big, big, big, big),
        (orig, reply, proto, mark, c) => {
          const e = parseCtEntry(
            msgOf(entry({ family: 2, proto, orig, reply, mark, id: 1, counters: c })),
          );
          expect(e).toMatchObject({
            orig,
            reply,
            proto,
            mark,
            origCounters: { packets: Number(c[0]), bytes: Number(c[1]) },
            replyCounters: { packets: Number(c[2]), bytes: Number(c[3]) },
          });
        },
      ),
      { numRuns: 500 },
    );
  });
});
