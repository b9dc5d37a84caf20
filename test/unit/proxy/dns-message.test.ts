import { describe, expect, it } from 'vitest';
import {
  fitUdp,
  isAnswerTo,
  parseQuery,
  servfail,
  skipName,
} from '../../../src/proxy/dns-message.js';
import { NAME, QUESTION, answer, query } from './dns-fixtures.js';

describe('parseQuery', () => {
  it('reads id, question and the EDNS UDP size (512 without EDNS or below 512)', () => {
    expect(parseQuery(query(7))).toEqual({ id: 7, question: QUESTION, udpLimit: 512 });
    expect(parseQuery(query(7, 4096))?.udpLimit).toBe(4096);
    expect(parseQuery(query(7, 100))?.udpLimit).toBe(512);
  });
  it('refuses responses, other opcodes, several or no questions, records, trailing bytes, compressed or overlong names', () => {
    const mod = (f: (b: Buffer) => void) => {
      const b = query();
      f(b);
      return parseQuery(b);
    };
    expect(mod((b) => b.writeUInt16BE(0x8100, 2))).toBeUndefined();
    expect(mod((b) => b.writeUInt16BE(0x2800, 2))).toBeUndefined(); // UPDATE
    expect(mod((b) => b.writeUInt16BE(2, 4))).toBeUndefined();
    expect(mod((b) => b.writeUInt16BE(0, 4))).toBeUndefined();
    expect(mod((b) => b.writeUInt16BE(1, 6))).toBeUndefined();
    expect(mod((b) => (b[12] = 0xc0))).toBeUndefined();
    expect(mod((b) => (b[12] = 0x40))).toBeUndefined();
    expect(parseQuery(Buffer.concat([query(), Buffer.from([0])]))).toBeUndefined();
    expect(parseQuery(query().subarray(0, 20))).toBeUndefined();
    expect(parseQuery(Buffer.alloc(5))).toBeUndefined();
    expect(parseQuery(query(1, 1232).subarray(0, query(1, 1232).length - 1))).toBeUndefined();
    const long = Buffer.concat([
      Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      ...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 97)])),
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    expect(parseQuery(long)).toBeUndefined();
  });
  it('skipName stops at a pointer and refuses reserved label types and overruns', () => {
    expect(skipName(Buffer.from([1, 97, 0xc0, 12]), 0)).toBe(4);
    expect(skipName(Buffer.from([1, 97, 0xc0]), 0)).toBe(-1);
    expect(skipName(Buffer.from([0x80, 0]), 0)).toBe(-1);
    expect(skipName(Buffer.from([5, 97]), 0)).toBe(-1);
  });
});

describe('isAnswerTo', () => {
  const q = parseQuery(query(0x1234))!;
  it('accepts the answer with our id and the question asked (any letter case)', () => {
    expect(isAnswerTo(answer(0x1234, 2), q)).toBe(true);
    const upper = answer(0x4321, 1);
    upper.write('EXAMPLE', 13, 'latin1');
    expect(isAnswerTo(upper, q, 0x4321)).toBe(true);
  });
  it('refuses another id, a query, another question, a short or overlong message', () => {
    expect(isAnswerTo(answer(0x1235, 1), q)).toBe(false);
    expect(isAnswerTo(query(0x1234), q)).toBe(false);
    const other = Buffer.concat([NAME, Buffer.from([0, 28, 0, 1])]);
    expect(isAnswerTo(answer(0x1234, 1, other), q)).toBe(false);
    const a = answer(0x1234, 2);
    expect(isAnswerTo(a.subarray(0, a.length - 1), q)).toBe(false);
    expect(isAnswerTo(Buffer.concat([a, Buffer.from([0])]), q)).toBe(false);
    expect(isAnswerTo(a.subarray(0, 11), q)).toBe(false);
  });
});

describe('fitUdp', () => {
  it('leaves an answer that fits alone', () => {
    const a = answer(1, 3);
    expect(fitUdp(a, 512)).toBe(a);
  });
  it('cuts at a record boundary, adjusts the counts and sets TC (RA kept, so glibc does not call it lame)', () => {
    const a = answer(1, 40); // 12 + 17 + 40 × 16 = 669 bytes
    const f = fitUdp(a, 512);
    const kept = Math.floor((512 - 12 - 17) / 16);
    expect(f.length).toBe(12 + 17 + kept * 16);
    expect(f.readUInt16BE(2)).toBe(0x8180 | 0x0200);
    expect(f.readUInt16BE(6)).toBe(kept);
    expect(f.subarray(0, 12 + 17 + kept * 16).subarray(12)).toEqual(
      a.subarray(12, 12 + 17 + kept * 16),
    );
    expect(isAnswerTo(f, parseQuery(query(1))!)).toBe(true);
    expect(fitUdp(a, 4096)).toBe(a);
  });
});

describe('servfail', () => {
  it('echoes id and question, RCODE 2, RA and RD as asked', () => {
    const q = parseQuery(query(9))!;
    const s = servfail(q, true);
    expect(s.readUInt16BE(0)).toBe(9);
    expect(s.readUInt16BE(2)).toBe(0x8000 | 0x0100 | 0x0080 | 2);
    expect([s.readUInt16BE(4), s.readUInt16BE(6), s.readUInt16BE(8), s.readUInt16BE(10)]).toEqual([
      1, 0, 0, 0,
    ]);
    expect(s.subarray(12)).toEqual(QUESTION);
    expect(isAnswerTo(s, q)).toBe(true);
  });
});
