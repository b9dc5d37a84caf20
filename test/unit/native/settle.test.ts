/**
 * settle (src/native/settle.ts): a long-running process collects garbage (where `gc` is exposed)
 * and trims the allocator when it settles, but never collects while a tunnel is busy.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { setBusy, settleNow, settleSoon } from '../../../src/native/settle.js';

const g = globalThis as { gc?: unknown };
const had = g.gc;
afterEach(() => {
  g.gc = had;
  vi.useRealTimers();
  vi.unstubAllEnvs();
});

describe('settle', () => {
  it('collects in the memory-reducing mode when gc is exposed and no device is busy', () => {
    const gc = vi.fn();
    g.gc = gc;
    expect(settleNow().collected).toBe(true);
    expect(gc).toHaveBeenCalledWith({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  });

  it('does not collect while a device is busy, and does again once none is', () => {
    const gc = vi.fn();
    g.gc = gc;
    const a = {};
    const b = {};
    setBusy(a, true);
    setBusy(b, true);
    expect(settleNow().collected).toBe(false);
    setBusy(a, false);
    expect(settleNow().collected).toBe(false);
    setBusy(b, false);
    expect(settleNow().collected).toBe(true);
    expect(gc).toHaveBeenCalledTimes(1);
  });

  it('without an exposed gc, or with AWG_SETTLE_GC=0, only trims', () => {
    g.gc = undefined;
    expect(settleNow().collected).toBe(false);
    const gc = vi.fn();
    g.gc = gc;
    vi.stubEnv('AWG_SETTLE_GC', '0');
    expect(settleNow().collected).toBe(false);
    expect(gc).not.toHaveBeenCalled();
  });

  it('joins the calls made before it runs into one settle', () => {
    vi.useFakeTimers();
    const gc = vi.fn();
    g.gc = gc;
    settleSoon(100);
    settleSoon(100);
    settleSoon(50);
    vi.advanceTimersByTime(99);
    expect(gc).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(gc).toHaveBeenCalledTimes(1);
    settleSoon(10);
    vi.advanceTimersByTime(10);
    expect(gc).toHaveBeenCalledTimes(2);
  });
});
