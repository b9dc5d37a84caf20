/**
 * The stub resolver's DNS messages: the query it sends, and what it believes of an answer.
 * Answers are hostile: anything not for our question is a mismatch, anything that does not
 * parse is malformed, never an address.
 */
import { describe, expect, it } from 'vitest';
import {
  TYPE_A,
  TYPE_AAAA,
  buildQuery,
  isQueryName,
  parseAnswer,
  readName,
} from '../../../src/util/dns-wire.js';

const name = (n: string) =>
  Buffer.concat([
    ...n.split('.').map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l)])),
    Buffer.of(0),
  ]);
const u16 = (v: number) => Buffer.of(v >> 8, v & 0xff);
const u32 = (v: number) => Buffer.of(v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);

/** An answer to `q` (the query bytes): flags, then the given answer records. */
function answer(q: Buffer, o: { flags?: number; records?: Buffer[]; id?: number } = {}): Buffer {
  const h = Buffer.from(q.subarray(0, 12));
  if (o.id !== undefined) h.writeUInt16BE(o.id, 0);
  h.writeUInt16BE(o.flags ?? 0x8180, 2);
  h.writeUInt16BE(o.records?.length ?? 0, 6);
  return Buffer.concat([h, q.subarray(12), ...(o.records ?? [])]);
}
const rr = (owner: Buffer, type: number, rdata: Buffer) =>
  Buffer.concat([owner, u16(type), u16(1), u32(300), u16(rdata.length), rdata]);
const PTR_Q = Buffer.of(0xc0, 12); // points at the question name

describe('query', () => {
  it('is a recursive IN query with one question', () => {
    const q = buildQuery(0xbeef, 'vpn.example.net', TYPE_A);
    expect(q.toString('hex')).toBe(
      'beef01000001000000000000' + '0376706e076578616d706c65036e657400' + '00010001',
    );
    expect(buildQuery(1, 'a.b.', TYPE_AAAA).subarray(12).toString('hex')).toBe(
      '0161016200' + '001c0001',
    );
  });
  it('refuses what is not a host name', () => {
    for (const n of [
      '',
      '.',
      'a..b',
      'a b',
      'x'.repeat(64),
      `${'a.'.repeat(127)}a`,
      'a\nb',
      'é.com',
    ]) {
      expect(isQueryName(n), n).toBe(false);
      expect(() => buildQuery(1, n, TYPE_A)).toThrow();
    }
    expect(isQueryName('_dns.vpn-1.example')).toBe(true);
  });
});

describe('answer', () => {
  const q = buildQuery(0x1234, 'vpn.example.net', TYPE_A);
  const q6 = buildQuery(0x1234, 'vpn.example.net', TYPE_AAAA);

  it('A and AAAA records of the name, in order, without duplicates', () => {
    const a = answer(q, {
      records: [
        rr(PTR_Q, 1, Buffer.of(192, 0, 2, 7)),
        rr(PTR_Q, 1, Buffer.of(192, 0, 2, 8)),
        rr(PTR_Q, 1, Buffer.of(192, 0, 2, 7)),
      ],
    });
    expect(parseAnswer(a, 0x1234, 'vpn.example.net', TYPE_A)).toEqual({
      kind: 'answer',
      addresses: ['192.0.2.7', '192.0.2.8'],
    });
    const six = answer(q6, {
      records: [rr(PTR_Q, 28, Buffer.from('20010db8000000000000000000000053', 'hex'))],
    });
    expect(parseAnswer(six, 0x1234, 'VPN.example.net.', TYPE_AAAA)).toEqual({
      kind: 'answer',
      addresses: ['2001:db8::53'],
    });
  });

  it('follows a CNAME chain inside the answer; records of other names are ignored', () => {
    const target = name('edge.cdn.example');
    const q2 = Buffer.concat([q]);
    const cnameRr = rr(PTR_Q, 5, target);
    // offset of the CNAME's rdata (the target name): header + question + owner ptr + 10
    const targetAt = 12 + (q2.length - 12) + 2 + 10;
    const a = answer(q2, {
      records: [
        cnameRr,
        rr(Buffer.of(0xc0 | (targetAt >> 8), targetAt & 0xff), 1, Buffer.of(198, 51, 100, 1)),
        rr(name('evil.example'), 1, Buffer.of(203, 0, 113, 66)),
      ],
    });
    expect(parseAnswer(a, 0x1234, 'vpn.example.net', TYPE_A)).toEqual({
      kind: 'answer',
      addresses: ['198.51.100.1'],
    });
  });

  it('NOERROR without records, NXDOMAIN, SERVFAIL, TC', () => {
    expect(parseAnswer(answer(q), 0x1234, 'vpn.example.net', TYPE_A)).toEqual({
      kind: 'answer',
      addresses: [],
    });
    expect(parseAnswer(answer(q, { flags: 0x8183 }), 0x1234, 'vpn.example.net', TYPE_A)).toEqual({
      kind: 'nxdomain',
    });
    expect(parseAnswer(answer(q, { flags: 0x8182 }), 0x1234, 'vpn.example.net', TYPE_A)).toEqual({
      kind: 'error',
      rcode: 2,
    });
    expect(parseAnswer(answer(q, { flags: 0x8380 }), 0x1234, 'vpn.example.net', TYPE_A)).toEqual({
      kind: 'truncated',
    });
  });

  it('not for this query: another id, name, type, a query, a short message', () => {
    const good = answer(q, { records: [rr(PTR_Q, 1, Buffer.of(192, 0, 2, 7))] });
    expect(parseAnswer(good, 0x1235, 'vpn.example.net', TYPE_A).kind).toBe('mismatch');
    expect(parseAnswer(good, 0x1234, 'other.example.net', TYPE_A).kind).toBe('mismatch');
    expect(parseAnswer(good, 0x1234, 'vpn.example.net', TYPE_AAAA).kind).toBe('mismatch');
    expect(parseAnswer(q, 0x1234, 'vpn.example.net', TYPE_A).kind).toBe('mismatch'); // QR=0
    expect(parseAnswer(good.subarray(0, 11), 0x1234, 'vpn.example.net', TYPE_A).kind).toBe(
      'mismatch',
    );
  });

  it('records that run past the end, a wrong-sized address or a bad pointer give no address', () => {
    const cut = answer(q, { records: [rr(PTR_Q, 1, Buffer.of(192, 0, 2, 7))] });
    expect(parseAnswer(cut.subarray(0, cut.length - 1), 0x1234, 'vpn.example.net', TYPE_A)).toEqual(
      { kind: 'malformed' },
    );
    const odd = answer(q, { records: [rr(PTR_Q, 1, Buffer.of(192, 0, 2))] });
    expect(parseAnswer(odd, 0x1234, 'vpn.example.net', TYPE_A)).toEqual({
      kind: 'answer',
      addresses: [],
    });
    // a pointer forwards (to itself) would loop
    const selfAt = q.length;
    const loop = answer(q, {
      records: [rr(Buffer.of(0xc0 | (selfAt >> 8), selfAt & 0xff), 1, Buffer.of(192, 0, 2, 7))],
    });
    expect(parseAnswer(loop, 0x1234, 'vpn.example.net', TYPE_A)).toEqual({ kind: 'malformed' });
  });
});

describe('readName', () => {
  it('decompresses backwards pointers and refuses forward ones, reserved label types, overlong names', () => {
    const m = Buffer.concat([
      Buffer.alloc(12),
      name('a.example'),
      Buffer.of(3, 0x77, 0x77, 0x77, 0xc0, 14),
    ]);
    expect(readName(m, 12)).toEqual({ name: 'a.example', end: 23 });
    expect(readName(m, 23)).toEqual({ name: 'www.example', end: 29 });
    expect(readName(Buffer.of(0xc0, 0x00), 0)).toBeUndefined();
    expect(readName(Buffer.of(0x40, 0x00), 0)).toBeUndefined();
    const long = Buffer.concat([
      ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.of(63), Buffer.alloc(63, 0x61)])),
      Buffer.of(0),
    ]);
    expect(readName(long, 0)).toBeUndefined();
    expect(readName(Buffer.of(3, 0x61), 0)).toBeUndefined();
  });
});
