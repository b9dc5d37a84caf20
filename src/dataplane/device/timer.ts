/** A re-armable one-shot timer (wireguard-go `Timer`: Mod / Del / IsPending). */
import type { Clock, TimerHandle } from './clock.js';

export class Timer {
  private handle: TimerHandle | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly fn: () => void,
  ) {}

  mod(ms: number): void {
    if (this.handle) this.clock.clearTimer(this.handle);
    this.handle = this.clock.setTimer(() => {
      this.handle = null;
      this.fn();
    }, ms);
  }

  del(): void {
    if (this.handle) this.clock.clearTimer(this.handle);
    this.handle = null;
  }

  get isPending(): boolean {
    return this.handle !== null;
  }
}
