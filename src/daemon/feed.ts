/**
 * The daemon's event feed: its subscribers (Watch clients, the SSE stream, `--metrics`, `awg
 * up`'s printer) and the traffic feed, the `traffic` event polled only while someone
 * subscribes: one status read per period, sent only when a counter moved (traffic.ts
 * trafficEvent). Every event goes through the event log (event-log.ts), which gives it its id
 * and holds it for subscribers that resume after an id.
 */
import type { DaemonEvent, StatusResponse } from './core.js';
import { EventLog } from './event-log.js';
import { trafficEvent, TRAFFIC_EVENT_MS } from './traffic.js';

export interface EventFeedOptions {
  /** the counters as they stand (the daemon's status) */
  status: () => Promise<Pick<StatusResponse, 'rules' | 'tunnels'>>;
  /** period of the `traffic` event while someone subscribes (default TRAFFIC_EVENT_MS; 0: none) */
  trafficIntervalMs?: number | undefined;
  /** the log the events go through (default: a new one) */
  log?: EventLog | undefined;
}

export class EventFeed {
  readonly log: EventLog;
  private subscribers = 0;
  private timer: NodeJS.Timeout | undefined;
  /** the counters of the last traffic event (trafficEvent's key) */
  private key = '';
  private busy = false;
  private closed = false;

  constructor(private readonly o: EventFeedOptions) {
    this.log = o.log ?? new EventLog();
  }

  /** returns the unsubscribe function; `after`: resume after that id (event-log.ts) */
  subscribe(
    listener: (e: DaemonEvent, id: string) => void,
    o: { after?: string | undefined } = {},
  ): () => void {
    const off = this.log.subscribe(listener, o);
    this.subscribers++;
    const every = this.o.trafficIntervalMs ?? TRAFFIC_EVENT_MS;
    if (every > 0 && !this.timer && !this.closed) {
      // counters are polled only while someone listens: one status read per period
      this.timer = setInterval(() => void this.tick(), every);
      this.timer.unref();
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      off();
      this.subscribers--;
      if (this.subscribers === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** record the event and send it to every subscriber (one that throws breaks nothing); its id */
  emit(e: DaemonEvent): string {
    return this.log.append(e);
  }

  /** No more traffic polls (the daemon stops); other events still reach the subscribers. */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.busy || this.closed) return;
    this.busy = true;
    try {
      const r = trafficEvent(await this.o.status(), this.key, new Date().toISOString());
      this.key = r.key;
      if (r.event) this.emit(r.event);
    } catch {
      /* the next period tries again */
    } finally {
      this.busy = false;
    }
  }
}
