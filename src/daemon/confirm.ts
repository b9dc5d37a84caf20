/**
 * `awg apply --confirm-timeout N` (netplan try, nmstate --no-commit): after an apply through
 * the daemon, the previous desired state is kept here until `confirm()` or until the timer
 * fires, when the daemon goes back to it (or to nothing when there was none).
 */
import { AwgError, toAwgError, type ErrorKind } from '../errors.js';

/**
 * The longest confirm window, enforced where a request arrives (convert.ts, Daemon.apply)
 * and here: the proto field is a uint32, and setTimeout fires at once past 2^31 - 1 ms
 * (~24.8 days), so an unbounded value would revert the apply immediately.
 */
export const MAX_CONFIRM_TIMEOUT_SEC = 86_400;

/** Throws invalid-config unless `sec` is whole seconds from 1 to MAX_CONFIRM_TIMEOUT_SEC. */
export function checkConfirmTimeout(sec: number): void {
  if (!Number.isInteger(sec) || sec < 1 || sec > MAX_CONFIRM_TIMEOUT_SEC)
    throw new AwgError(
      'invalid-config',
      `confirm timeout ${sec}: expected whole seconds from 1 to ${MAX_CONFIRM_TIMEOUT_SEC}`,
    );
}

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
  open(
    seconds: number,
    previous: T | undefined,
    onExpire: (previous: T | undefined) => void,
  ): string {
    checkConfirmTimeout(seconds);
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

/** what the revert says (core.ts DaemonEvent; confirm.ts is below core.ts) */
type RevertEvent =
  | { type: 'error'; at: string; kind: ErrorKind; message: string }
  | { type: 'reverted'; at: string; reason: string };

/**
 * The revert when the window expires: `back` goes to the desired state before the apply (or
 * down). Then a `reverted` event; when it fails, an `error` event and `retry` (the loop runs
 * again).
 */
export async function revertAtTimeout(
  back: () => Promise<void>,
  o: { emit: (e: RevertEvent) => void; retry: () => void },
): Promise<void> {
  const at = () => new Date().toISOString();
  try {
    await back();
  } catch (e) {
    const err = toAwgError(e);
    o.emit({
      type: 'error',
      at: at(),
      kind: err.kind,
      message: `revert after the confirm timeout failed: ${err.message}`,
    });
    o.retry();
    return;
  }
  o.emit({ type: 'reverted', at: at(), reason: 'confirm timeout expired without confirm()' });
}
