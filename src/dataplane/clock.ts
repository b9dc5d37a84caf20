/**
 * Time source and scheduler of the data plane (the device's timers, the in-memory network's
 * delays). Production uses the system clock; tests use SimClock (fake-clock.ts, not built into
 * dist/) and advance it explicitly (no real waiting, no timed assertions).
 */
export type TimerHandle = { readonly id: number };

export interface Clock {
  /** monotonic milliseconds */
  now(): number;
  /** Unix wall time in milliseconds (TAI64N, last-handshake time) */
  wallNow(): number;
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(h: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return t as unknown as TimerHandle;
  },
  clearTimer(h) {
    clearTimeout(h as unknown as NodeJS.Timeout);
  },
};
