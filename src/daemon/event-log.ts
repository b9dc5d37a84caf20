/**
 * The daemon's event log: every event the daemon emits gets an id `<run>.<seq>` and is held in
 * a bounded ring (by count and by bytes) so that a subscriber can resume after the last id it
 * saw (the Watch call's `after`, the SSE stream's Last-Event-ID). `run` is random per start of
 * the daemon, `seq` counts from 1 within a run; ids are ordered within a run.
 *
 * Delivery: each subscriber has a cursor (the next seq it gets). Subscribing replays what the
 * ring holds after the cursor, then the same loop delivers live events, so the seam between
 * replay and live neither loses nor repeats an event, also when a listener emits or subscribes
 * while it is being called (re-entrant appends are queued, not delivered out of order).
 *
 * When a cursor cannot be honoured (another run: the daemon restarted; evicted: too old; or not
 * an id of this log) the subscriber first gets a `gap` event, then everything the ring holds.
 * The gap's id is the position it jumps to, so a client that stores it resumes after it.
 * Pure: no I/O, no timers.
 */
import { randomBytes } from 'node:crypto';
import type { DaemonEvent } from './core.js';

/** events held for replay (the SSE bench: 100 clients resume within it) */
export const EVENT_LOG_MAX_EVENTS = 4096;
/** bytes of JSON held for replay (the objects and their cached JSON take about three times that) */
export const EVENT_LOG_MAX_BYTES = 1024 * 1024;

export interface EventLogOptions {
  maxEvents?: number | undefined;
  maxBytes?: number | undefined;
  /** this run's id (default: 8 random hex digits) */
  run?: string | undefined;
  /** the gap event's time (default now) */
  now?: (() => string) | undefined;
}

interface Entry {
  seq: number;
  e: DaemonEvent;
  bytes: number;
}

interface Subscriber {
  listener: (e: DaemonEvent, id: string) => void;
  /** the seq it gets next */
  next: number;
  /** a gap to deliver before anything else */
  gap?: DaemonEvent | undefined;
  /** false once unsubscribed (it may be called no more, even mid-pump) */
  active: boolean;
}

const json = new WeakMap<DaemonEvent, string>();

/** the event as JSON, computed once per event (the log sizes it; every SSE client sends it) */
export function eventJson(e: DaemonEvent): string {
  let s = json.get(e);
  if (s === undefined) {
    s = JSON.stringify(e);
    json.set(e, s);
  }
  return s;
}

/** `<run>.<seq>` split, or undefined when it is not of that form */
export function parseEventId(id: string): { run: string; seq: number } | undefined {
  const m = /^([0-9a-zA-Z-]{1,64})\.(\d{1,15})$/.exec(id);
  if (!m) return undefined;
  return { run: m[1]!, seq: Number(m[2]) };
}

export class EventLog {
  readonly run: string;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly now: () => string;
  /** the ring: entries[head..] are held, seqs consecutive */
  private entries: Entry[] = [];
  private head = 0;
  private bytes = 0;
  private seq = 0;
  private readonly subs = new Set<Subscriber>();
  private pumping = false;

  constructor(o: EventLogOptions = {}) {
    this.run = o.run ?? randomBytes(4).toString('hex');
    this.maxEvents = Math.max(1, o.maxEvents ?? EVENT_LOG_MAX_EVENTS);
    this.maxBytes = Math.max(1, o.maxBytes ?? EVENT_LOG_MAX_BYTES);
    this.now = o.now ?? (() => new Date().toISOString());
  }

  /** the id of the newest event (`<run>.0` before the first) */
  get lastId(): string {
    return this.idOf(this.seq);
  }

  /** how many events the ring holds now */
  get held(): number {
    return this.entries.length - this.head;
  }

  /** how many subscribe now */
  get subscribers(): number {
    return this.subs.size;
  }

  idOf(seq: number): string {
    return `${this.run}.${seq}`;
  }

  /** Record `e` and deliver it to every subscriber; returns its id. */
  append(e: DaemonEvent): string {
    const seq = ++this.seq;
    const bytes = eventJson(e).length;
    this.entries.push({ seq, e, bytes });
    this.bytes += bytes;
    // evict by count and by bytes; the newest stays even when larger than the byte bound
    while (this.held > 1 && (this.held > this.maxEvents || this.bytes > this.maxBytes)) {
      this.bytes -= this.entries[this.head]!.bytes;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    this.pump();
    return this.idOf(seq);
  }

  /**
   * Every event from now on (and with `after`, the held ones after it first) until the
   * returned function is called. See the file comment for `gap`.
   */
  subscribe(
    listener: (e: DaemonEvent, id: string) => void,
    o: { after?: string | undefined } = {},
  ): () => void {
    const s: Subscriber = { listener, next: this.seq + 1, active: true };
    const after = o.after ?? '';
    if (after !== '') {
      const c = parseEventId(after);
      const first = this.firstSeq;
      const reason =
        c === undefined
          ? 'the cursor is not an event id of this daemon'
          : c.run !== this.run
            ? 'the daemon restarted: the cursor is of an earlier run'
            : c.seq > this.seq
              ? 'the cursor is newer than any event of this run'
              : c.seq < first - 1
                ? 'the events after the cursor are no longer held (the client fell too far behind)'
                : undefined;
      if (reason === undefined) s.next = c!.seq + 1;
      else {
        s.next = first;
        s.gap = { type: 'gap', at: this.now(), after, reason };
      }
    }
    this.subs.add(s);
    this.pump();
    return () => {
      s.active = false;
      this.subs.delete(s);
    };
  }

  /** the oldest seq held (seq + 1 when none is) */
  private get firstSeq(): number {
    return this.entries[this.head]?.seq ?? this.seq + 1;
  }

  private entry(seq: number): Entry | undefined {
    const first = this.firstSeq;
    if (seq < first || seq > this.seq) return undefined;
    return this.entries[this.head + (seq - first)];
  }

  /** deliver to every subscriber what it has not had yet; re-entrant calls leave it to the outer one */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        let more = false;
        for (const s of [...this.subs]) {
          while (s.active && (s.gap || s.next <= this.seq)) {
            if (s.gap) {
              const gap = s.gap;
              s.gap = undefined;
              this.call(s, gap, this.idOf(s.next - 1));
              continue;
            }
            const entry = this.entry(s.next);
            if (!entry) {
              // evicted while it waited (listeners emitted more than the ring holds)
              const after = this.idOf(s.next - 1);
              s.next = this.firstSeq;
              s.gap = {
                type: 'gap',
                at: this.now(),
                after,
                reason: 'the events after the cursor are no longer held',
              };
              continue;
            }
            s.next++;
            this.call(s, entry.e, this.idOf(entry.seq));
          }
        }
        for (const s of this.subs) if (s.gap || s.next <= this.seq) more = true;
        if (!more) break;
      }
    } finally {
      this.pumping = false;
    }
  }

  private call(s: Subscriber, e: DaemonEvent, id: string): void {
    try {
      s.listener(e, id);
    } catch {
      /* a subscriber never breaks the log */
    }
  }
}
