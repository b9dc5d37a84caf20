import { describe, expect, it } from 'vitest';
import { cryptoRandom } from '../../../src/dataplane/awg/random.js';

describe('cryptoRandom (pooled CSPRNG for small requests)', () => {
  it('intn stays in [0, n) and covers small ranges evenly', () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 30_000; i++) counts[cryptoRandom.intn(3)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(9_000); // 10,000 expected each
    for (const n of [2, 1000, 0x1_0000_0000, 100_000_001, 2 ** 48]) {
      for (let i = 0; i < 2000; i++) {
        const v = cryptoRandom.intn(n);
        expect(Number.isInteger(v) && v >= 0 && v < n).toBe(true);
      }
    }
    expect(cryptoRandom.intn(1)).toBe(0);
  });

  it('bytes: the requested length, across pool refills, never the same bytes twice', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const b = cryptoRandom.bytes(16);
      expect(b).toHaveLength(16);
      const hex = Buffer.from(b).toString('hex');
      expect(seen.has(hex)).toBe(false);
      seen.add(hex);
    }
    expect(cryptoRandom.bytes(0)).toHaveLength(0);
    expect(cryptoRandom.bytes(32)).toHaveLength(32);
    expect(cryptoRandom.bytes(5000)).toHaveLength(5000);
  });

  it('fill: n bytes at the offset and nothing around them, fresh each time, any size', () => {
    const seen = new Set<string>();
    const out = new Uint8Array(64);
    for (let i = 0; i < 3000; i++) {
      out.fill(0xa5);
      cryptoRandom.fill!(out, 20, 8);
      expect(out.subarray(0, 20).every((b) => b === 0xa5)).toBe(true);
      expect(out.subarray(28).every((b) => b === 0xa5)).toBe(true);
      const hex = Buffer.from(out.subarray(20, 28)).toString('hex');
      expect(seen.has(hex)).toBe(false);
      seen.add(hex);
    }
    // the bytes are random, not a pattern: over many fills every byte value turns up
    const values = new Set<number>();
    for (let i = 0; i < 200; i++) {
      cryptoRandom.fill!(out, 0, 16);
      for (const b of out.subarray(0, 16)) values.add(b);
    }
    expect(values.size).toBe(256);
    const big = new Uint8Array(100).fill(0xa5);
    cryptoRandom.fill!(big, 10, 80); // over 32 bytes: straight from the CSPRNG
    expect(big[9]).toBe(0xa5);
    expect(big[90]).toBe(0xa5);
    expect(big.subarray(10, 90).some((b) => b !== 0xa5)).toBe(true);
    expect(() => cryptoRandom.fill!(out, 60, 8)).toThrow(RangeError);
    cryptoRandom.fill!(out, 64, 0);
  });
});
