import { describe, expect, it } from 'vitest';
import { SimClock } from '../../../src/dataplane/clock.fake.js';
import { Timer } from '../../../src/dataplane/device/timer.js';

describe('Timer (Mod / Del / IsPending) on the simulated clock', () => {
  it('fires once at the latest deadline when pushed later', () => {
    const c = new SimClock();
    const fired: number[] = [];
    const t = new Timer(c, () => fired.push(c.now()));
    t.mod(100);
    c.advance(50);
    t.mod(100); // now due at 150
    c.advance(60);
    expect(fired).toEqual([]);
    expect(t.isPending).toBe(true);
    c.advance(100);
    expect(fired).toEqual([150]);
    expect(t.isPending).toBe(false);
  });
  it('fires early when pulled earlier, never after del', () => {
    const c = new SimClock();
    const fired: number[] = [];
    const t = new Timer(c, () => fired.push(c.now()));
    t.mod(1000);
    t.mod(10);
    c.advance(20);
    expect(fired).toEqual([10]);
    t.mod(10);
    t.del();
    c.advance(2000);
    expect(fired).toEqual([10]);
    expect(c.pending).toBe(0);
  });
  it('can be re-armed from its own callback', () => {
    const c = new SimClock();
    let n = 0;
    const t: Timer = new Timer(c, () => {
      if (++n < 3) t.mod(10);
    });
    t.mod(10);
    c.advance(100);
    expect(n).toBe(3);
  });
});
