/**
 * settle (src/native/settle.ts): a long-running process collects garbage (where `gc` is exposed)
 * and trims the allocator when it settles, but never collects while a tunnel is busy.
 */
import { spawnSync } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

// The busy set is per process: the unit project shares its workers' modules between files
// (isolate: false, vitest.config.ts), and a device another file left busy would count here.
// A fresh instance of the module is this file's own process.
type Settle = typeof import('../../../src/native/settle.js');
let GC_OPTIONS_COLLECT: Settle['GC_OPTIONS_COLLECT'];
let setBusy: Settle['setBusy'];
let settleNow: Settle['settleNow'];
let settleSoon: Settle['settleSoon'];
beforeAll(async () => {
  vi.resetModules();
  ({ GC_OPTIONS_COLLECT, setBusy, settleNow, settleSoon } =
    await import('../../../src/native/settle.js'));
});

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
    if (GC_OPTIONS_COLLECT)
      expect(gc).toHaveBeenCalledWith({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    else expect(gc).toHaveBeenCalledWith();
  });

  it('really frees what was dropped, on this Node (a process with --expose-gc)', () => {
    // the call was asserted above; this shows it collects (Node 20's options form did not)
    const script = `
      const { settleNow } = await import(${JSON.stringify(new URL('../../../src/native/settle.ts', import.meta.url).href)});
      let keep = [];
      for (let i = 0; i < 300000; i++) keep.push({ a: 'x' + i, b: [i, i + 1] });
      keep = null;
      const before = process.memoryUsage().heapUsed;
      settleNow();
      console.log(JSON.stringify({ before, after: process.memoryUsage().heapUsed }));`;
    const r = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
    // 300,000 small objects are ~40 MiB; at least three quarters must go
    expect(before - after).toBeGreaterThan(30 * 1024 * 1024);
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
