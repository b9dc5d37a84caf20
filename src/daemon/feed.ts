/**
 * The daemon's event feed: its subscribers (Watch clients, `--metrics`, `awg up`'s printer) and
 * the traffic feed, the `traffic` event polled only while someone subscribes: one status read
 * per period, sent only when a counter moved (traffic.ts trafficEvent).
 */
import type { DaemonEvent, StatusResponse } from './core.js';
import { trafficEvent, TRAFFIC_EVENT_MS } from './traffic.js';

export interface EventFeedOptions {
  /** the counters as they stand (the daemon's status) */
  status: () => Promise<Pick<StatusResponse, 'rules' | 'tunnels'>>;
  /** period of the `traffic` event while someone subscribes (default TRAFFIC_EVENT_MS; 0: none) */
  trafficIntervalMs?: number | undefined;
}

export class EventFeed {
  private readonly listeners = new Set<(e: DaemonEvent) => void>();
  private timer: NodeJS.Timeout | undefined;
  /** the counters of the last traffic event (trafficEvent's key) */
  private key = '';
  private busy = false;
  private closed = false;

  constructor(private readonly o: EventFeedOptions) {}

  /** returns the unsubscribe function */
  subscribe(listener: (e: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    const every = this.o.trafficIntervalMs ?? TRAFFIC_EVENT_MS;
    if (every > 0 && !this.timer && !this.closed) {
      // counters are polled only while someone listens: one status read per period
      this.timer = setInterval(() => void this.tick(), every);
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  emit(e: DaemonEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        /* a subscriber never breaks the loop */
      }
    }
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
