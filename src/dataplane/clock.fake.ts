/** A deterministic Clock for tests (not built into dist/). */
import type { Clock, TimerHandle } from './clock.js';

interface SimTimer {
  id: number;
  due: number;
  fn: () => void;
}

/** Deterministic clock: timers fire only inside advance()/runUntil(), in due-time order. */
export class SimClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers = new Map<number, SimTimer>();

  constructor(private readonly wallBase = 1_700_000_000_000) {}

  now(): number {
    return this.t;
  }
  wallNow(): number {
    return this.wallBase + this.t;
  }
  setTimer(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { id, due: this.t + Math.max(0, ms), fn });
    return { id };
  }
  clearTimer(h: TimerHandle): void {
    this.timers.delete(h.id);
  }
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in order; `between` runs after each. */
  advance(ms: number, between?: () => void): void {
    const target = this.t + ms;
    for (;;) {
      let next: SimTimer | undefined;
      for (const x of this.timers.values())
        if (
          x.due <= target &&
          (!next || x.due < next.due || (x.due === next.due && x.id < next.id))
        )
          next = x;
      if (!next) break;
      this.timers.delete(next.id);
      this.t = Math.max(this.t, next.due);
      next.fn();
      between?.();
    }
    this.t = target;
    between?.();
  }

  /** Advances in `step` increments, calling `between` after each (e.g. network flush). */
  step(total: number, step: number, between?: () => void): void {
    for (let done = 0; done < total; done += step)
      this.advance(Math.min(step, total - done), between);
  }
}
