/**
 * `awg apply --confirm-timeout N` (netplan try, nmstate --no-commit): after an apply through
 * the daemon, the previous desired state is kept here until `confirm()` or until the timer
 * fires, when the daemon goes back to it (or to nothing when there was none).
 */

export type Timer = (ms: number, fn: () => void) => () => void;

const defaultTimer: Timer = (ms, fn) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return () => clearTimeout(t);
};

export class ConfirmWindow<T> {
  private pending: { deadline: string; cancel: () => void; previous: T | undefined } | undefined;

  constructor(private readonly timer: Timer = defaultTimer) {}

  /** ISO time by which `confirm()` must arrive, while a window is open */
  get deadline(): string | undefined {
    return this.pending?.deadline;
  }

  /** Open a window (closing any open one without reverting); `onExpire` gets what was before. */
  open(seconds: number, previous: T | undefined, onExpire: (previous: T | undefined) => void): string {
    this.close();
    const deadline = new Date(Date.now() + seconds * 1000).toISOString();
    const cancel = this.timer(seconds * 1000, () => {
      if (!this.pending) return;
      this.pending = undefined;
      onExpire(previous);
    });
    this.pending = { deadline, cancel, previous };
    return deadline;
  }

  /** Keep the change; false when no window was open. */
  confirm(): boolean {
    return this.close();
  }

  /** Close without reverting (a new apply, down, stop). */
  close(): boolean {
    const p = this.pending;
    if (!p) return false;
    p.cancel();
    this.pending = undefined;
    return true;
  }
}
