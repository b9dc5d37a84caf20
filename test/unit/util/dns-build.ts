/**
 * DNS responses for the learning tests, built byte by byte: owners equal to the question name
 * are compressed to a pointer at it (as resolvers do), every other name is written in full.
 */
import ipaddr from '../../../src/util/ipaddr.js';

export interface Rec {
  owner: string;
  type: 'A' | 'AAAA' | 'CNAME' | number;
  ttl: number;
  /** an address (A, AAAA) or a name (CNAME) */
  data?: string;
  /** rdata as given (overrides `data`) */
  raw?: Buffer;
  /** default 1 (IN) */
  cls?: number;
}

const u16 = (v: number) => Buffer.of((v >> 8) & 0xff, v & 0xff);
const u32 = (v: number) => Buffer.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);

export const wireName = (n: string): Buffer =>
  Buffer.concat([
    ...n
      .split('.')
      .filter((l) => l !== '')
      .map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l, 'latin1')])),
    Buffer.of(0),
  ]);

const TYPES = { A: 1, AAAA: 28, CNAME: 5 } as const;

/** A NOERROR response (id 0x4242, QR RD RA) to `qname`/`qtype` with `answers`. */
export function response(qname: string, qtype: number, answers: Rec[], flags = 0x8180): Buffer {
  const head = Buffer.concat([
    u16(0x4242),
    u16(flags),
    u16(1),
    u16(answers.length),
    u16(0),
    u16(0),
  ]);
  const question = Buffer.concat([wireName(qname), u16(qtype), u16(1)]);
  const rrs = answers.map((r) => {
    const type = typeof r.type === 'number' ? r.type : TYPES[r.type];
    const owner =
      r.owner.toLowerCase() === qname.toLowerCase() ? Buffer.of(0xc0, 12) : wireName(r.owner);
    const rdata =
      r.raw ??
      (type === 5
        ? wireName(r.data ?? '')
        : Buffer.from(ipaddr.parse(r.data ?? '0.0.0.0').toByteArray()));
    return Buffer.concat([owner, u16(type), u16(r.cls ?? 1), u32(r.ttl), u16(rdata.length), rdata]);
  });
  return Buffer.concat([head, question, ...rrs]);
}
