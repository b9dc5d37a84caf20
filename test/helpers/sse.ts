/**
 * A small server-sent-events client for tests: GET over a Unix socket, the stream parsed as
 * the HTML standard's EventSource does (lines end with CRLF, LF or CR; `:` starts a comment;
 * `field: value` with one leading space dropped; `data` lines joined with LF; a blank line
 * dispatches; an event without data is not dispatched; `id` without NUL sets the last event
 * id, which stays for the events that follow; `retry` only when all digits).
 */
import { request, type IncomingMessage } from 'node:http';

export interface SseEvent {
  type: string;
  data: string;
  /** the last event id when it was dispatched (SSE: kept from earlier events) */
  lastEventId: string;
  /** whether this event had an id field itself */
  hasId: boolean;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  lastEventId = '';
  ended = false;
  private buf = '';
  private pendingCR = false;
  private data: string[] = [];
  private type = '';
  private idSet = false;
  private waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  constructor(
    readonly res: IncomingMessage,
    private readonly abort: () => void,
    private readonly o: SseOptions = {},
  ) {
    res.setEncoding('utf8');
    res.on('data', (c: string) => this.feed(c));
    this.closed = new Promise((resolve) => {
      const done = () => {
        this.ended = true;
        this.wake();
        resolve();
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  /** the events (by type, when given) parsed as JSON */
  json<T = unknown>(type?: string): T[] {
    return this.events.filter((e) => !type || e.type === type).map((e) => JSON.parse(e.data) as T);
  }

  /** resolves when `pred` holds (checked after every dispatch and comment); rejects if the stream ends first */
  async until(pred: (c: SseClient) => boolean, what = 'the condition'): Promise<void> {
    while (!pred(this)) {
      if (this.ended)
        throw new Error(`the SSE stream ended before ${what} (${this.events.length} events)`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** wait until `n` events of `type` (any type when undefined) have come */
  count(type: string | undefined, n: number): Promise<void> {
    return this.until(
      (c) => c.events.filter((e) => !type || e.type === type).length >= n,
      `${n} ${type ?? ''} events`,
    );
  }

  close(): Promise<void> {
    this.abort();
    return this.closed;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private feed(chunk: string): void {
    let s = chunk;
    if (this.pendingCR && s.startsWith('\n')) s = s.slice(1);
    this.pendingCR = false;
    this.buf += s;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // a CR at the very end may be the first half of a CRLF
      if (m[0] === '\r' && m.index === this.buf.length - 1) this.pendingCR = true;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
    this.wake();
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).replace(/^ /, ''));
      return;
    }
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') {
      if (!value.includes('\0')) {
        this.lastEventId = value;
        this.idSet = true;
      }
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) this.retry = Number(value);
    }
  }

  private dispatch(): void {
    const hasId = this.idSet;
    this.idSet = false;
    const type = this.type || 'message';
    this.type = '';
    if (!this.data.length) return;
    const data = this.data.join('\n');
    this.data = [];
    const e = { type, data, lastEventId: this.lastEventId, hasId };
    this.o.onEvent?.(e);
    if (this.o.keep !== false) this.events.push(e);
  }
}

export interface SseOptions {
  /** called at each dispatch */
  onEvent?: ((e: SseEvent) => void) | undefined;
  /** false: do not keep the events in `events` (long runs) */
  keep?: boolean | undefined;
}

/** Open an SSE stream: resolves with the client once the response's headers have come. */
export function openSse(
  socketPath: string,
  path: string,
  headers: Record<string, string> = {},
  o: SseOptions = {},
): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const r = request(
      { socketPath, method: 'GET', path, headers: { accept: 'text/event-stream', ...headers } },
      (res) => resolve(new SseClient(res, () => r.destroy(), o)),
    );
    r.on('error', reject);
    r.end();
  });
}
