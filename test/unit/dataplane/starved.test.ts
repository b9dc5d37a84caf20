import { describe, expect, it } from 'vitest';
import { CALM_WINDOWS, StarvationGauge, WINDOW_MS } from '../../../src/dataplane/starved.js';
import { type Schedstat, threadSchedstat } from '../../../src/native/sched.js';

/** A gauge over readings the test sets: each window adds `run` and `wait` ms (ratios are what count). */
function gauge() {
  const s: Schedstat = { run: 0, wait: 0 };
  let reads = 0;
  const g = new StarvationGauge(() => {
    reads++;
    return { ...s };
  });
  let now = 0;
  const window = (runMs: number, waitMs: number, ms = WINDOW_MS): boolean => {
    s.run += runMs * 1e6;
    s.wait += waitMs * 1e6;
    now += ms;
    return g.check(now);
  };
  return { g, window, reads: () => reads, at: (ms: number) => g.check((now += ms)) };
}

describe('StarvationGauge (run delay against CPU time, per thread)', () => {
  it('is starved from the first window that waited as long as it ran; calm after CALM_WINDOWS windows under a third', () => {
    const { g, window } = gauge();
    const w = WINDOW_MS;
    expect(window(0, 0)).toBe(false); // the baseline
    expect(window(0.9 * w, 0.08 * w)).toBe(false); // the engine on the quiet bench machine (0.04–0.13)
    expect(window(0.45 * w, 0.44 * w)).toBe(false); // just under
    expect(window(0.25 * w, 0.6 * w)).toBe(true); // four busy autogroups: a quarter of a CPU, waiting most of the rest
    // between the bars: stays starved, and the calm count restarts
    for (let i = 1; i < CALM_WINDOWS; i++) expect(window(0.9 * w, 0.05 * w)).toBe(true);
    expect(window(0.5 * w, 0.35 * w)).toBe(true);
    for (let i = 1; i < CALM_WINDOWS; i++) expect(window(0.9 * w, 0.05 * w)).toBe(true);
    expect(window(0.9 * w, 0.05 * w)).toBe(false);
    expect(g.changes).toBe(2);
  });

  it('reads once a window, says nothing about mostly idle windows, and takes a new baseline after a pause', () => {
    const { g, window, reads, at } = gauge();
    const w = WINDOW_MS;
    window(0, 0);
    expect(at(w / 10)).toBe(false);
    expect(at(w / 2)).toBe(false);
    expect(reads()).toBe(1); // within the window: the last verdict, no reading
    expect(window(0.2 * w, 0.5 * w)).toBe(true); // (this window ended 1.6 windows after the last reading)
    expect(window(0.02 * w, 0.03 * w)).toBe(true); // runnable 5 % of it: idle, no verdict either way
    expect(g.windows).toBe(1);
    // runnable all window long but given 2 % of a CPU: starved, not idle (a calm window restarts)
    for (let i = 1; i < CALM_WINDOWS; i++) window(0.9 * w, 0.05 * w);
    expect(window(0.02 * w, 0.9 * w)).toBe(true);
    expect(window(0.9 * w, 0.05 * w)).toBe(true); // the calm count began again
    expect(g.windows).toBe(CALM_WINDOWS + 2);
    // a pause of 40 windows: only a new baseline, whatever the readings say
    expect(window(0.6 * w, 0, 40 * w)).toBe(true);
    expect(g.windows).toBe(CALM_WINDOWS + 2);
    for (let i = 0; i < CALM_WINDOWS; i++) window(0.6 * w, 0);
    expect(g.starved).toBe(false);
  });

  it('never starved where schedstat cannot be read (and stops trying)', () => {
    let reads = 0;
    const g = new StarvationGauge(() => {
      reads++;
      return null;
    });
    expect(g.check(0)).toBe(false);
    expect(g.check(5 * WINDOW_MS)).toBe(false);
    expect(reads).toBe(1);
  });

  it.runIf(process.platform === 'linux')(
    "reads the calling thread's CPU time and run delay from /proc",
    () => {
      const a = threadSchedstat()!;
      // spin until the CPU time grows by 10 ms (however busy the machine is), for 10 s at most
      let b = a;
      for (const t = Date.now(); b.run - a.run < 10e6 && Date.now() - t < 10_000;)
        b = threadSchedstat()!;
      expect(b.run - a.run).toBeGreaterThanOrEqual(10e6);
      expect(b.wait).toBeGreaterThanOrEqual(a.wait);
      expect(threadSchedstat('/nonexistent')).toBeNull();
    },
  );
});
