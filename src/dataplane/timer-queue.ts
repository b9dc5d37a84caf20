/**
 * The data plane's timers on one Node timer (clock.ts systemClock): a binary min-heap of
 * deadlines, and a single Node timer armed for the earliest. A peer's timers (device/timer.ts:
 * retransmission, keepalives, rekey, key expiry) and the device's delayed events each asked
 * Node for a timer of their own: a Timeout object with its async-hook ids, a timer list per
 * distinct duration, the loop's ref count switched on and off again by `unref`. The first
 * packet after a peer reset armed several of them on its path, about a tenth of the
 * engine's thread in that window (bench/RESULTS.md, section "The first ping of 3.1, second
 * round"). Here adding a timer is a heap insertion; Node's timer moves only when the earliest
 * deadline does. The Node timer is unref'd: these timers never keep a process alive.
 *
 * Semantics are Node's: a callback runs once, not before its deadline (a wake-up that comes
 * early re-arms for the rest), deadlines in order and equal ones in the order they were set;
 * a cancelled timer never runs; a callback may set and cancel timers; one that throws does
 * not take the others with it (they run on the next turn, and the error goes on as Node's
 * would).
 */
/** a timer of the data plane's clocks (clock.ts) */
export type TimerHandle = { readonly id: number };

interface Entry extends TimerHandle {
  due: number;
  readonly seq: number;
  /** index in the heap, −1 when not queued */
  pos: number;
  fn: (() => void) | null;
}

/** What arms the one underlying timer (tests pass a fake). */
export interface Scheduler {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const nodeScheduler: Scheduler = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear(h) {
    clearTimeout(h as NodeJS.Timeout);
  },
};

export class TimerQueue {
  private readonly heap: Entry[] = [];
  private seq = 0;
  private armed: unknown = null;
  /** the deadline the underlying timer was armed for (Infinity: none) */
  private armedFor = Infinity;
  private firing = false;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly sched: Scheduler = nodeScheduler,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  /** Runs `fn` once, `ms` from now (whole milliseconds, rounded up: never early). */
  add(fn: () => void, ms: number): TimerHandle {
    const seq = ++this.seq;
    const e: Entry = {
      id: seq,
      due: this.now() + Math.max(0, Math.ceil(ms)),
      seq,
      pos: this.heap.length,
      fn,
    };
    this.heap.push(e);
    this.up(e.pos);
    if (!this.firing && e.due < this.armedFor) this.arm();
    return e;
  }

  /** Cancels a timer this queue returned (a no-op when it ran or was cancelled). */
  cancel(h: TimerHandle): void {
    const e = h as Entry;
    if (e.pos < 0 || this.heap[e.pos] !== e) return;
    this.removeAt(e.pos);
    e.fn = null;
    if (this.heap.length === 0 && !this.firing) this.disarm();
    // otherwise the armed timer stays: at worst it wakes up to nothing due and re-arms
  }

  private arm(): void {
    const top = this.heap[0];
    if (!top) return this.disarm();
    if (this.armed !== null) this.sched.clear(this.armed);
    this.armedFor = top.due;
    this.armed = this.sched.set(this.fire, Math.max(0, Math.ceil(top.due - this.now())));
  }

  private disarm(): void {
    if (this.armed !== null) this.sched.clear(this.armed);
    this.armed = null;
    this.armedFor = Infinity;
  }

  private readonly fire = (): void => {
    this.armed = null;
    this.armedFor = Infinity;
    this.firing = true;
    try {
      const t = this.now();
      for (;;) {
        const top = this.heap[0];
        if (!top || top.due > t) break;
        this.removeAt(0);
        const fn = top.fn!;
        top.fn = null;
        fn();
      }
    } finally {
      this.firing = false;
      if (this.heap.length) this.arm();
    }
  };

  // ---- the heap (ordered by due, then seq) ------------------------------------------------

  private less(a: Entry, b: Entry): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  private place(e: Entry, i: number): void {
    this.heap[i] = e;
    e.pos = i;
  }

  private removeAt(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    const last = h.pop()!;
    e.pos = -1;
    if (last === e) return;
    this.place(last, i);
    this.up(i);
    this.down(last.pos);
  }

  private up(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent]!;
      if (!this.less(e, p)) break;
      this.place(p, i);
      i = parent;
    }
    this.place(e, i);
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const e = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(h[r]!, h[l]!) ? r : l;
      if (!this.less(h[c]!, e)) break;
      this.place(h[c]!, i);
      i = c;
    }
    this.place(e, i);
  }
}
