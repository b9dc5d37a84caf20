import { describe, expect, it } from 'vitest';
import { ConfirmWindow } from '../../../src/daemon/confirm.js';

function clock() {
  const timers: { ms: number; fn: () => void; cancelled: boolean }[] = [];
  return {
    timers,
    timer: (ms: number, fn: () => void) => {
      const t = { ms, fn, cancelled: false };
      timers.push(t);
      return () => (t.cancelled = true);
    },
  };
}

describe('ConfirmWindow', () => {
  it('refuses a window outside 1..86400 s (setTimeout fires at once past 2^31-1 ms)', () => {
    const c = clock();
    const w = new ConfirmWindow<string>(c.timer);
    for (const sec of [0, 86_401, 2 ** 32 - 1, Number.NaN])
      expect(() => w.open(sec, 'x', () => {})).toThrow(/expected whole seconds/);
    expect(c.timers).toEqual([]);
  });

  it('expiry hands back what was before, once; confirm closes it without reverting', () => {
    const c = clock();
    const w = new ConfirmWindow<string>(c.timer);
    const expired: (string | undefined)[] = [];
    const deadline = w.open(60, 'before', (p) => expired.push(p));
    expect(c.timers[0]!.ms).toBe(60_000);
    expect(w.deadline).toBe(deadline);
    c.timers[0]!.fn();
    c.timers[0]!.fn();
    expect(expired).toEqual(['before']);
    expect(w.deadline).toBeUndefined();
    expect(w.confirm()).toBe(false);

    w.open(5, undefined, (p) => expired.push(p ?? 'nothing'));
    expect(w.confirm()).toBe(true);
    expect(c.timers[1]!.cancelled).toBe(true);
    c.timers[1]!.fn();
    expect(expired).toEqual(['before']);
  });

  it('a new window replaces the open one without reverting it', () => {
    const c = clock();
    const w = new ConfirmWindow<number>(c.timer);
    const expired: (number | undefined)[] = [];
    w.open(10, 1, (p) => expired.push(p));
    w.open(10, 2, (p) => expired.push(p));
    expect(c.timers[0]!.cancelled).toBe(true);
    c.timers[1]!.fn();
    expect(expired).toEqual([2]);
  });
});
