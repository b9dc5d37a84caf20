/**
 * A re-armable one-shot timer (wireguard-go `Timer`: Mod / Del / IsPending). Pushing the
 * deadline later (the per-packet case) does not touch the scheduler: the pending callback
 * notices the moved deadline when it fires and re-arms for the remainder.
 */
import type { Clock, TimerHandle } from '../clock.js';

export class Timer {
  private handle: TimerHandle | null = null;
  private scheduledFor = 0;
  private due: number | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly fn: () => void,
  ) {}

  mod(ms: number): void {
    const due = this.clock.now() + Math.max(0, ms);
    this.due = due;
    if (this.handle && this.scheduledFor <= due) return;
    if (this.handle) this.clock.clearTimer(this.handle);
    this.schedule(due);
  }

  del(): void {
    this.due = null;
    if (this.handle) this.clock.clearTimer(this.handle);
    this.handle = null;
  }

  get isPending(): boolean {
    return this.due !== null;
  }

  private schedule(due: number): void {
    this.scheduledFor = due;
    this.handle = this.clock.setTimer(() => this.fire(), due - this.clock.now());
  }

  private fire(): void {
    this.handle = null;
    if (this.due === null) return;
    if (this.clock.now() < this.due) {
      this.schedule(this.due);
      return;
    }
    this.due = null;
    this.fn();
  }
}
