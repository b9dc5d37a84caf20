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
});
