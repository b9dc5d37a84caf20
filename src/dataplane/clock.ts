/**
 * Time source and scheduler of the data plane (the device's timers, the in-memory network's
 * delays). Production uses the system clock; tests use SimClock (clock.fake.ts, not built into
 * dist/) and advance it explicitly (no real waiting, no timed assertions). The system clock's
 * timers share one Node timer (timer-queue.ts).
 */
import { type TimerHandle, TimerQueue } from './timer-queue.js';

export type { TimerHandle };

export interface Clock {
  /** monotonic milliseconds */
  now(): number;
  /** Unix wall time in milliseconds (TAI64N, last-handshake time) */
  wallNow(): number;
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(h: TimerHandle): void;
}

/**
 * A clock whose reading is held while the device handles one batch of packets (a TUN read's
 * packets, a receive batch): the per-packet timer updates and key-age checks read one number
 * instead of asking the system two or three times per packet (performance.now was a visible
 * share of the engine's thread receiving). Timers fire outside batches and read the time
 * anew; a batch takes well under a millisecond. Measurements: bench/RESULTS.md, section "Less
 * work per packet".
 */
export class BatchClock implements Clock {
  private held = -1;
  constructor(private readonly base: Clock) {}
  now(): number {
    return this.held >= 0 ? this.held : this.base.now();
  }
  wallNow(): number {
    return this.base.wallNow();
  }
  setTimer(fn: () => void, ms: number): TimerHandle {
    return this.base.setTimer(fn, ms);
  }
  clearTimer(h: TimerHandle): void {
    this.base.clearTimer(h);
  }
  /** Holds the current reading until `release` (a no-op while held). */
  hold(): void {
    if (this.held < 0) this.held = this.base.now();
  }
  release(): void {
    this.held = -1;
  }
}

/** Node timers, one per timer (AWG_TIMERS=node, for diagnosis) */
const nodeTimers: Pick<Clock, 'setTimer' | 'clearTimer'> = {
  setTimer(fn, ms) {
    // whole milliseconds, rounded up (never early): Node keeps a list per distinct duration,
    // and a fraction made a new list for nearly every timer the handshake path arms
    const t = setTimeout(fn, Math.max(0, Math.ceil(ms)));
    t.unref?.();
    return t as unknown as TimerHandle;
  },
  clearTimer(h) {
    clearTimeout(h as unknown as NodeJS.Timeout);
  },
};

/** the process's timer queue (timer-queue.ts): all devices' timers on one Node timer */
function queuedTimers(): Pick<Clock, 'setTimer' | 'clearTimer'> {
  const q = new TimerQueue();
  return { setTimer: (fn, ms) => q.add(fn, ms), clearTimer: (h) => q.cancel(h) };
}

const timers = process.env.AWG_TIMERS === 'node' ? nodeTimers : queuedTimers();

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer: timers.setTimer,
  clearTimer: timers.clearTimer,
};
