/**
 * The daemon's one queue: loop runs and the API's operations (apply, diff, down, limit, a
 * revert) take turns, one at a time; a failed one does not stop the next. A call joined by a
 * key (`joined`) that another call with the same key waits for, not yet started, shares that
 * one's result.
 */
export class RunQueue {
  private tail: Promise<unknown> = Promise.resolve();
  /** joined calls queued and not started, by key */
  private readonly waiting = new Map<string, Promise<unknown>>();

  /** run `fn` once every call queued before it has ended */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }

  /** like run, unless a call with `key` waits in the queue: then its result */
  joined<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const queued = this.waiting.get(key);
    if (queued) return queued as Promise<T>;
    const run = this.run(() => {
      // started: later calls run anew
      this.waiting.delete(key);
      return fn();
    });
    this.waiting.set(key, run);
    return run;
  }

  /** settles once every call queued so far has ended */
  async idle(): Promise<void> {
    await this.tail.catch(() => {});
  }
}
