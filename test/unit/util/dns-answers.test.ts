/**
 * Reading a resolver's response for domain learning: the question, its CNAME chain, the
 * addresses reachable through it and their effective TTLs; hostile messages learn nothing
 * and never throw or hang.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_CHAIN_HOPS, clampTtl, readAnswerChain } from '../../../src/util/dns-answers.js';
import { type Rec, response } from './dns-build.js';

const chainOf = (m: Buffer, o = {}) => {
  const r = readAnswerChain(m, o);
  if (r.kind !== 'chain') throw new Error(`no chain: ${r.reason}`);
  return r.chain;
};
const reasonOf = (m: Uint8Array) => {
  const r = readAnswerChain(m);
  return r.kind === 'none' ? r.reason : undefined;
};

describe('readAnswerChain', () => {
  it('reads A records of the question name with their TTLs (compressed owners)', () => {
    const m = response('Listed.Test', 1, [
      { owner: 'listed.test', type: 'A', ttl: 300, data: '192.0.2.1' },
      { owner: 'listed.test', type: 'A', ttl: 60, data: '192.0.2.2' },
    ]);
    expect(chainOf(m)).toEqual({
      question: 'listed.test',
      qtype: 1,
      names: ['listed.test'],
      addresses: [
        { addr: '192.0.2.1', family: 4, owner: 'listed.test', ttl: 300 },
        { addr: '192.0.2.2', family: 4, owner: 'listed.test', ttl: 60 },
      ],
    });
  });

  it('reads a plain Uint8Array view (not a Buffer) at an offset of its ArrayBuffer', () => {
    const m = response('Mixed.Case.test', 1, [
      { owner: 'mixed.case.test', type: 'A', ttl: 60, data: '192.0.2.77' },
    ]);
    const backing = new Uint8Array(m.length + 5);
    backing.set(m, 5);
    const r = readAnswerChain(new Uint8Array(backing.buffer, 5, m.length));
    expect(r.kind === 'chain' && [r.chain.question, r.chain.addresses[0]?.addr]).toEqual([
      'mixed.case.test',
      '192.0.2.77',
    ]);
  });

  it('reads AAAA records in canonical text', () => {
    const m = response('v6.test', 28, [
      { owner: 'v6.test', type: 'AAAA', ttl: 120, data: '2001:db8:0:0:0:0:0:7' },
    ]);
    expect(chainOf(m).addresses).toEqual([
      { addr: '2001:db8::7', family: 6, owner: 'v6.test', ttl: 120 },
    ]);
  });

  it('follows a CNAME chain given in any order; the TTL is the least along the chain', () => {
    const m = response('alias.test', 1, [
      { owner: 'edge.cdn.test', type: 'A', ttl: 600, data: '198.51.100.9' },
      { owner: 'mid.test', type: 'CNAME', ttl: 45, data: 'edge.cdn.test' },
      { owner: 'alias.test', type: 'CNAME', ttl: 900, data: 'mid.test' },
    ]);
    const c = chainOf(m);
    expect(c.names).toEqual(['alias.test', 'mid.test', 'edge.cdn.test']);
    expect(c.addresses).toEqual([
      { addr: '198.51.100.9', family: 4, owner: 'edge.cdn.test', ttl: 45 },
    ]);
  });

  it('takes the record TTL when it is the least, and clamps to [minTtl, maxTtl]', () => {
    const m = response('a.test', 1, [
      { owner: 'a.test', type: 'CNAME', ttl: 500, data: 'b.test' },
      { owner: 'b.test', type: 'A', ttl: 3, data: '192.0.2.3' },
      { owner: 'b.test', type: 'A', ttl: 400, data: '192.0.2.4' },
      { owner: 'b.test', type: 'A', ttl: 0x80000000, data: '192.0.2.5' }, // RFC 2181: 0
    ]);
    expect(chainOf(m).addresses.map((a) => a.ttl)).toEqual([10, 400, 10]);
    expect(chainOf(m, { minTtl: 1, maxTtl: 100 }).addresses.map((a) => a.ttl)).toEqual([3, 100, 1]);
    expect(clampTtl(5, 10, 3600)).toBe(10);
    expect(clampTtl(7200, 10, 3600)).toBe(3600);
    expect(clampTtl(7200, 10, 5)).toBe(10); // max below min: min wins
  });

  it('ignores records not reachable from the question, other classes and other types', () => {
    const m = response('q.test', 1, [
      { owner: 'other.test', type: 'A', ttl: 60, data: '203.0.113.1' },
      { owner: 'q.test', type: 'A', ttl: 60, data: '203.0.113.2', cls: 3 },
      { owner: 'q.test', type: 16, ttl: 60, raw: Buffer.from('\x05hello') },
      { owner: 'q.test', type: 'A', ttl: 60, data: '203.0.113.3' },
    ]);
    expect(chainOf(m).addresses.map((a) => a.addr)).toEqual(['203.0.113.3']);
  });

  it('keeps one entry per address (the longer TTL when it is reached twice)', () => {
    const m = response('q.test', 1, [
      { owner: 'q.test', type: 'CNAME', ttl: 20, data: 'r.test' },
      { owner: 'q.test', type: 'A', ttl: 300, data: '192.0.2.8' },
      { owner: 'r.test', type: 'A', ttl: 300, data: '192.0.2.8' },
    ]);
    expect(chainOf(m).addresses).toEqual([
      { addr: '192.0.2.8', family: 4, owner: 'q.test', ttl: 300 },
    ]);
  });

  it('reads an empty NOERROR answer as a chain without addresses', () => {
    expect(chainOf(response('empty.test', 1, []))).toEqual({
      question: 'empty.test',
      qtype: 1,
      names: ['empty.test'],
      addresses: [],
    });
  });

  it('follows 16 CNAME hops and refuses 17', () => {
    const hops = (n: number): Rec[] =>
      Array.from({ length: n }, (_, i) => ({
        owner: `h${i}.test`,
        type: 'CNAME' as const,
        ttl: 60,
        data: `h${i + 1}.test`,
      }));
    const ok = response('h0.test', 1, [
      ...hops(MAX_CHAIN_HOPS),
      { owner: `h${MAX_CHAIN_HOPS}.test`, type: 'A', ttl: 60, data: '192.0.2.16' },
    ]);
    expect(chainOf(ok).names).toHaveLength(MAX_CHAIN_HOPS + 1);
    expect(chainOf(ok).addresses).toHaveLength(1);
    const long = response('h0.test', 1, [
      ...hops(MAX_CHAIN_HOPS + 1),
      { owner: `h${MAX_CHAIN_HOPS + 1}.test`, type: 'A', ttl: 60, data: '192.0.2.17' },
    ]);
    expect(reasonOf(long)).toBe('CNAME chain too long');
  });

  it('refuses CNAME loops and two different CNAMEs for one owner', () => {
    expect(
      reasonOf(
        response('a.test', 1, [
          { owner: 'a.test', type: 'CNAME', ttl: 60, data: 'b.test' },
          { owner: 'b.test', type: 'CNAME', ttl: 60, data: 'a.test' },
          { owner: 'a.test', type: 'A', ttl: 60, data: '192.0.2.1' },
        ]),
      ),
    ).toBe('CNAME loop');
    expect(
      reasonOf(
        response('a.test', 1, [{ owner: 'a.test', type: 'CNAME', ttl: 60, data: 'a.test' }]),
      ),
    ).toBe('CNAME loop');
    expect(
      reasonOf(
        response('a.test', 1, [
          { owner: 'a.test', type: 'CNAME', ttl: 60, data: 'b.test' },
          { owner: 'a.test', type: 'CNAME', ttl: 60, data: 'c.test' },
        ]),
      ),
    ).toBe('two CNAMEs for a.test');
  });

  it('learns nothing from errors, truncated answers, queries and odd headers', () => {
    const ok = response('q.test', 1, [{ owner: 'q.test', type: 'A', ttl: 60, data: '192.0.2.1' }]);
    const withFlags = (f: number) => {
      const m = Buffer.from(ok);
      m.writeUInt16BE(f, 2);
      return m;
    };
    expect(reasonOf(withFlags(0x8183))).toBe('rcode 3');
    expect(reasonOf(withFlags(0x8182))).toBe('rcode 2');
    expect(reasonOf(withFlags(0x8380))).toBe('truncated (TC=1)');
    expect(reasonOf(withFlags(0x0100))).toBe('not a response');
    expect(reasonOf(withFlags(0x8980))).toBe('not a standard query');
    const twoQ = Buffer.from(ok);
    twoQ.writeUInt16BE(2, 4);
    expect(reasonOf(twoQ)).toBe('not exactly one question');
    expect(reasonOf(ok.subarray(0, 11))).toBe('shorter than a header');
  });

  it('refuses truncated records, oversized counts and bad address lengths', () => {
    const ok = response('q.test', 1, [
      { owner: 'q.test', type: 'A', ttl: 60, data: '192.0.2.1' },
      { owner: 'q.test', type: 'A', ttl: 60, data: '192.0.2.2' },
    ]);
    expect(reasonOf(ok.subarray(0, ok.length - 1))).toBe('truncated record data');
    expect(reasonOf(ok.subarray(0, ok.length - 8))).toBe('truncated record');
    const more = Buffer.concat([ok, Buffer.alloc(11, 0xff)]); // room for 3 by size, not by content
    more.writeUInt16BE(3, 6);
    expect(reasonOf(more)).toBe('truncated record');
    more.writeUInt16BE(4, 6);
    expect(reasonOf(more)).toBe('answer count larger than the message');
    const huge = Buffer.from(ok);
    huge.writeUInt16BE(0xffff, 6);
    expect(reasonOf(huge)).toBe('answer count larger than the message');
    const badLen = response('q.test', 1, [
      { owner: 'q.test', type: 'A', ttl: 60, raw: Buffer.of(1, 2, 3, 4, 5) },
    ]);
    expect(reasonOf(badLen)).toBe('address record of the wrong length');
  });

  it('refuses a compression pointer that loops or points forwards', () => {
    const ok = response('q.test', 1, [{ owner: 'q.test', type: 'A', ttl: 60, data: '192.0.2.1' }]);
    const at = ok.length - 16; // the record's owner: a pointer to the question name
    expect(ok.readUInt16BE(at)).toBe(0xc00c);
    const self = Buffer.from(ok);
    self.writeUInt16BE(0xc000 | at, at);
    expect(reasonOf(self)).toBe('truncated record');
    const fwd = Buffer.from(ok);
    fwd.writeUInt16BE(0xc000 | (at + 4), at);
    expect(reasonOf(fwd)).toBe('truncated record');
  });

  it('never throws and returns quickly on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (bytes) => {
        const r = readAnswerChain(bytes);
        expect(['chain', 'none']).toContain(r.kind);
      }),
      { numRuns: 5000 },
    );
  });

  it('never throws on mutated valid responses; what it reads stays within the rules', () => {
    const base = response('www.listed.test', 1, [
      { owner: 'www.listed.test', type: 'CNAME', ttl: 300, data: 'edge.cdn.test' },
      { owner: 'edge.cdn.test', type: 'A', ttl: 60, data: '192.0.2.1' },
      { owner: 'edge.cdn.test', type: 'AAAA', ttl: 60, data: '2001:db8::1' },
      { owner: 'edge.cdn.test', type: 'CNAME', ttl: 60, data: 'www.listed.test' },
    ]);
    const pristine = response('www.listed.test', 1, [
      { owner: 'www.listed.test', type: 'CNAME', ttl: 300, data: 'edge.cdn.test' },
      { owner: 'edge.cdn.test', type: 'A', ttl: 60, data: '192.0.2.1' },
      { owner: 'edge.cdn.test', type: 'AAAA', ttl: 60, data: '2001:db8::1' },
    ]);
    for (const seed of [base, pristine])
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 6,
          }),
          fc.nat(),
          (edits, cut) => {
            const m = Buffer.from(seed);
            for (const [at, v] of edits) m[at % m.length] = v;
            const r = readAnswerChain(m.subarray(0, m.length - (cut % 8)));
            if (r.kind === 'chain') {
              expect(r.chain.names.length).toBeLessThanOrEqual(MAX_CHAIN_HOPS + 1);
              expect(new Set(r.chain.names).size).toBe(r.chain.names.length);
              for (const a of r.chain.addresses) {
                expect(a.ttl).toBeGreaterThanOrEqual(10);
                expect(a.ttl).toBeLessThanOrEqual(3600);
                expect(r.chain.names).toContain(a.owner);
              }
            }
          },
        ),
        { numRuns: 5000 },
      );
  });

  it('reads the CNAME loop seed as refused and the pristine seed as a chain', () => {
    const looped = response('www.listed.test', 1, [
      { owner: 'www.listed.test', type: 'CNAME', ttl: 300, data: 'edge.cdn.test' },
      { owner: 'edge.cdn.test', type: 'A', ttl: 60, data: '192.0.2.1' },
      { owner: 'edge.cdn.test', type: 'CNAME', ttl: 60, data: 'www.listed.test' },
    ]);
    expect(reasonOf(looped)).toBe('CNAME loop');
    const pristine = response('www.listed.test', 1, [
      { owner: 'www.listed.test', type: 'CNAME', ttl: 300, data: 'edge.cdn.test' },
      { owner: 'edge.cdn.test', type: 'A', ttl: 60, data: '192.0.2.1' },
      { owner: 'edge.cdn.test', type: 'AAAA', ttl: 60, data: '2001:db8::1' },
    ]);
    expect(chainOf(pristine).addresses.map((a) => [a.addr, a.ttl])).toEqual([
      ['192.0.2.1', 60],
      ['2001:db8::1', 60],
    ]);
  });
});
