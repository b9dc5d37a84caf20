/**
 * The daemon's traffic monitor (the Top call): one Monitor (procs/top/aggregate.ts) shared by
 * every subscriber, reading the platform's traffic source once per tick however many
 * subscribe, and not at all while nobody does (the source is closed; the next subscriber
 * starts a new monitor, whose totals count from then).
 *
 * The tick is the shortest interval a subscriber asks for; a subscriber at a longer one gets
 * every n-th document with the rates over its own span (rerate). The first reading is the
 * baseline: nobody gets it, so a subscriber's first document comes at most one tick after it
 * subscribed (one interval, when it started the monitor). A source that cannot be made or read
 * ends every subscription with the error.
 */
import { toAwgError, type AwgError } from '../errors.js';
import { Monitor, rerate } from '../procs/top/aggregate.js';
import type { TopDocument } from '../procs/top/document.js';
import type { TrafficSource } from '../procs/top/reading.js';
import type { TopContext } from '../procs/top/routing.js';
import type { TopRequest } from './core.js';

export interface TopFeedOptions {
  /** the platform's traffic source: made for the first subscriber, closed after the last */
  source: () => Promise<TrafficSource>;
  /** where flows go now (the config followed, tunnel health, runtime limits) */
  context: () => TopContext;
  /** the documents' wall clock (default Date.now) */
  clock?: () => number;
  /** the monotonic clock of the ticks, ms (default performance.now) */
  now?: () => number;
  /** the shortest interval served (default 100 ms) */
  minIntervalMs?: number;
}

interface Subscriber {
  intervalMs: number;
  connections: boolean;
  onDoc: (d: TopDocument) => void;
  onEnd: (err?: AwgError) => void;
  /** the last document it got */
  last?: TopDocument;
}

interface Run {
  source?: TrafficSource | undefined;
  monitor: Monitor;
  timer?: NodeJS.Timeout | undefined;
  /** performance.now() of the last reading, and the delay the pending timer was set for */
  lastRead?: number;
  delay?: number;
  busy: boolean;
  stopped: boolean;
}

export class TopFeed {
  private readonly subs = new Set<Subscriber>();
  private run: Run | undefined;
  private closed = false;

  private readonly now: () => number;

  constructor(private readonly o: TopFeedOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** documents for `req` until the returned function is called; `onEnd` once if it ends first */
  subscribe(
    req: TopRequest,
    onDoc: (d: TopDocument) => void,
    onEnd: (err?: AwgError) => void,
  ): () => void {
    const s: Subscriber = {
      intervalMs: Math.max(this.o.minIntervalMs ?? 100, req.intervalMs),
      connections: req.connections,
      onDoc,
      onEnd,
    };
    if (this.closed) {
      onEnd();
      return () => {};
    }
    this.subs.add(s);
    if (!this.run) this.start();
    else this.reschedule();
    return () => this.leave(s);
  }

  /** how many subscribe now (tests, status) */
  get subscribers(): number {
    return this.subs.size;
  }

  /** whether the source is being read (someone subscribes) */
  get reading(): boolean {
    return this.run !== undefined;
  }

  /** The daemon stops: every subscription ends, the source closes. */
  close(): void {
    this.closed = true;
    const subs = [...this.subs];
    this.subs.clear();
    this.stop();
    for (const s of subs) s.onEnd();
  }

  private get tick(): number {
    return Math.min(...[...this.subs].map((s) => s.intervalMs));
  }

  private leave(s: Subscriber): void {
    if (!this.subs.delete(s)) return;
    if (this.subs.size === 0) this.stop();
  }

  private start(): void {
    const run: Run = {
      monitor: new Monitor(this.o.clock ? { clock: this.o.clock } : {}),
      busy: false,
      stopped: false,
    };
    this.run = run;
    this.o.source().then(
      (source) => {
        run.source = source;
        if (run.stopped) return this.release(run);
        void this.read(run);
      },
      (e: unknown) => this.fail(run, e),
    );
  }

  private stop(): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    run.stopped = true;
    if (run.timer) clearTimeout(run.timer);
    // a read under way closes the source when it returns
    if (!run.busy) this.release(run);
  }

  private fail(run: Run, e: unknown): void {
    if (run.stopped) return;
    const err = toAwgError(e, 'driver');
    const subs = [...this.subs];
    this.subs.clear();
    this.stop();
    for (const s of subs) s.onEnd(err);
  }

  /** the next reading: one tick after the last, sooner when a faster subscriber came */
  private schedule(run: Run): void {
    if (run.stopped || run.busy || run.lastRead === undefined || this.subs.size === 0) return;
    const delay = Math.max(0, run.lastRead + this.tick - this.now());
    if (run.timer) clearTimeout(run.timer);
    run.delay = this.tick;
    run.timer = setTimeout(() => {
      run.timer = undefined;
      void this.read(run);
    }, delay);
  }

  private reschedule(): void {
    const run = this.run;
    if (run?.timer && run.delay !== undefined && this.tick < run.delay) this.schedule(run);
  }

  private async read(run: Run): Promise<void> {
    if (run.stopped || !run.source) return;
    run.busy = true;
    let doc: TopDocument | undefined;
    let err: unknown;
    try {
      const reading = await run.source.read();
      run.lastRead = this.now();
      const connections = [...this.subs].some((s) => s.connections);
      if (!run.stopped) doc = run.monitor.update(reading, this.o.context(), { connections });
    } catch (e) {
      err = e ?? new Error('the traffic source failed');
    }
    run.busy = false;
    if (run.stopped) return this.release(run);
    if (err !== undefined || !doc) return this.fail(run, err);
    if (doc.intervalMs > 0) this.deliver(doc);
    this.schedule(run);
  }

  private release(run: Run): void {
    const source = run.source;
    run.source = undefined;
    source?.close();
  }

  private deliver(doc: TopDocument): void {
    const tick = this.tick;
    for (const s of [...this.subs]) {
      let out = doc;
      if (s.last) {
        const since = Date.parse(doc.at) - Date.parse(s.last.at);
        // due when its interval has (nearly) passed: ticks jitter by a few milliseconds
        if (since < s.intervalMs - tick / 2) continue;
        if (since > doc.intervalMs + tick / 2) out = rerate(s.last, doc);
      }
      if (!s.connections && out.connections.length) out = { ...out, connections: [] };
      s.last = out;
      try {
        s.onDoc(out);
      } catch {
        /* a subscriber never breaks the feed */
      }
    }
  }
}
