/**
 * GET /api/events: the daemon's events as server-sent events (docs/api.md, "Events"),
 * authorised as Watch.
 *
 * - Every event of the daemon's event log (event-log.ts) as `id: <run>.<seq>`, `event: <type>`,
 *   `data: <the DaemonEvent as JSON>`. A client resumes with `Last-Event-ID` (or `?after=`):
 *   the events since come first, or a `gap` event when they are gone (the daemon restarted,
 *   or the client fell further behind than the replay ring holds).
 * - A `snapshot` event (status, processes, limits, and the open connections when they are
 *   asked for) when the client has no state to resume: a fresh connection, or after a gap.
 *   Its id is the log's position it stands for, so a client that resumes after it misses
 *   nothing. It is read after the subscription began: events that follow it may already be in it.
 * - `?connections=1`: per monitor tick a `connections` event with the changes only
 *   ({opened, updated, closed}; updated: bytes moved; none sent when nothing changed) and a
 *   `rates` event (rates per tunnel, rule and process, for charts); `?rates=1`: the `rates`
 *   only. The traffic monitor (core.top, top-feed.ts) runs only while some client asks.
 *   These two are not in the event log and carry no id (a resume does not move past them):
 *   they are derived state at a high rate, and would push the events a client must not miss
 *   out of the replay ring. A client that resumes gets the open connections afresh: a
 *   `connections` event with `reset: true` and every open connection in `opened`.
 * - A heartbeat comment (`: hb`) every 15 s (`?heartbeat=MS` for tests and proxies), and a
 *   `retry:` hint. A client whose unsent data passes SSE_MAX_BUFFERED bytes (plus its
 *   replay, which is written at once) is cut: it resumes with its Last-Event-ID. The stream ends when the daemon's API closes.
 */
import { toAwgError } from '../../errors.js';
import type { DaemonEvent, TopDocument } from '../core.js';
import { eventJson } from '../event-log.js';
import type { Route, RouteContext } from './server.js';

export const SSE_HEARTBEAT_MS = 15_000;
/** the reconnection delay a browser's EventSource uses */
export const SSE_RETRY_MS = 1_000;
/** unsent bytes a client may have before it is cut */
export const SSE_MAX_BUFFERED = 1024 * 1024;
/** the monitor's interval for `connections`/`rates` (`?interval=MS`, 100 ms – 60 s) */
export const SSE_INTERVAL_MS = 1_000;

type Connection = TopDocument['connections'][number];

/** the `connections` event: the changes of one monitor tick */
export interface ConnectionsDelta {
  at: string;
  /** true: the set was not followed (resume); `opened` holds every open connection */
  reset?: true;
  opened: Connection[];
  /** open before, and their byte counts moved */
  updated: Connection[];
  /** ended (final counts), or gone from the monitor */
  closed: Connection[];
}

/** the `rates` event: the monitor's document without its connections */
export type RatesEvent = Omit<TopDocument, 'connections'>;

/**
 * The delta of one document against the connections known (updated in place). A connection
 * opened and closed within one interval is only in `closed`.
 */
export function connectionsDelta(
  known: Map<string, Connection>,
  doc: TopDocument,
  reset = false,
): ConnectionsDelta {
  const opened: Connection[] = [];
  const updated: Connection[] = [];
  const closed: Connection[] = [];
  const seen = new Set<string>();
  if (reset) known.clear();
  for (const c of doc.connections) {
    seen.add(c.id);
    const prev = known.get(c.id);
    if (c.closed) {
      known.delete(c.id);
      if (!reset) closed.push(c);
    } else if (!prev) {
      known.set(c.id, c);
      opened.push(c);
    } else if (prev.sent !== c.sent || prev.received !== c.received) {
      known.set(c.id, c);
      updated.push(c);
    }
  }
  for (const [id, c] of known)
    if (!seen.has(id)) {
      known.delete(id);
      closed.push({ ...c, closed: true });
    }
  return { at: doc.at, ...(reset ? { reset: true as const } : {}), opened, updated, closed };
}

function frame(event: string, data: string, id?: string): string {
  return `${id !== undefined && id !== '' ? `id: ${id}\n` : ''}event: ${event}\ndata: ${data}\n\n`;
}

function intParam(url: URL, name: string, min: number, max: number, dflt: number): number {
  const v = Number(url.searchParams.get(name) ?? '');
  return Number.isFinite(v) && v > 0 ? Math.min(max, Math.max(min, Math.round(v))) : dflt;
}

const truthy = (v: string | null) => v !== null && v !== '0' && v !== 'false';

async function serveEvents(ctx: RouteContext): Promise<undefined> {
  const { req, res, url, core } = ctx;
  const header = req.headers['last-event-id'];
  const after =
    (typeof header === 'string' && header !== '' ? header : undefined) ??
    (url.searchParams.get('after') || undefined);
  const deltas = truthy(url.searchParams.get('connections'));
  const rates = deltas || truthy(url.searchParams.get('rates'));
  const intervalMs = intParam(url, 'interval', 100, 60_000, SSE_INTERVAL_MS);
  const heartbeatMs = intParam(url, 'heartbeat', 50, SSE_HEARTBEAT_MS, SSE_HEARTBEAT_MS);

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
    'x-content-type-options': 'nosniff',
  });

  let ended = false;
  const cleanups: (() => void)[] = [];
  const end = (cut: boolean) => {
    if (ended) return;
    ended = true;
    for (const c of cleanups.splice(0).reverse()) c();
    if (cut) res.destroy();
    else res.end();
  };
  res.once('close', () => end(true));

  // the replay is written at once (the log's byte bound bounds it); the bound is above it
  let limit = SSE_MAX_BUFFERED;
  const write = (s: string) => {
    if (ended) return;
    res.write(s);
    // now, not on the next tick (Node's http corks a response's writes until then): the
    // daemon may be busy for a while after an event (a run plans right after reconcile-started)
    res.socket?.uncork();
    // too far behind: cut; the client resumes with its Last-Event-ID
    if (res.writableLength > limit) end(true);
  };
  /** frames wait here while the snapshot is read (undefined: written at once) */
  let held: string[] | undefined = [];
  const out = (s: string) => (held ? held.push(s) : write(s));

  write(`retry: ${SSE_RETRY_MS}\n\n`);

  // the log first: the replay and the gap come synchronously, before anything else can happen
  let gap = false;
  const off = core.subscribe(
    (e: DaemonEvent, id: string) => {
      if (e.type === 'gap' && held && held.length === 0) gap = true;
      out(frame(e.type, eventJson(e), id));
    },
    { after },
  );
  cleanups.push(off);
  const position = core.lastEventId?.();
  const snapshot = after === undefined || gap;
  // the gap and the replay (older than the snapshot) go first
  const replayed = held;
  held = snapshot ? [] : undefined;
  limit += replayed.reduce((n, f) => n + f.length, 0);
  if (replayed.length) write(replayed.join(''));

  const hb = setInterval(() => write(': hb\n\n'), heartbeatMs);
  hb.unref();
  cleanups.push(() => clearInterval(hb));
  cleanups.push(ctx.onClose(() => end(false)));

  // the monitor: connections and rates, only while asked for
  const known = new Map<string, Connection>();
  let firstDoc: ((d: TopDocument | undefined) => void) | undefined;
  const firstDocP =
    snapshot && deltas
      ? new Promise<TopDocument | undefined>((r) => (firstDoc = r))
      : Promise.resolve(undefined);
  let resetNext = !snapshot;
  if (rates) {
    const stopTop = core.top(
      { intervalMs, connections: deltas },
      (doc) => {
        if (ended) return;
        if (firstDoc) {
          const r = firstDoc;
          firstDoc = undefined;
          connectionsDelta(known, doc, true);
          r(doc);
        } else if (deltas) {
          const d = connectionsDelta(known, doc, resetNext);
          if (resetNext || d.opened.length || d.updated.length || d.closed.length)
            out(frame('connections', JSON.stringify(d)));
          resetNext = false;
        }
        const { connections: _c, ...r } = doc;
        out(frame('rates', JSON.stringify(r satisfies RatesEvent)));
      },
      (err) => {
        firstDoc?.(undefined);
        firstDoc = undefined;
        out(
          frame(
            'monitor-ended',
            JSON.stringify(err ? { error: { kind: err.kind, message: err.message } } : {}),
          ),
        );
      },
    );
    cleanups.push(stopTop);
  }

  if (snapshot) {
    const part = async <T>(f: () => Promise<T>) => {
      try {
        return { value: await f() };
      } catch (e) {
        const err = toAwgError(e);
        return { error: { kind: err.kind, message: err.message } };
      }
    };
    const [status, processes, limits, doc] = await Promise.all([
      part(() => core.status()),
      part(() => core.listProcesses()),
      part(() => core.listLimits()),
      firstDocP,
    ]);
    if (ended) return undefined;
    const errors = {
      ...(status.error ? { status: status.error } : {}),
      ...(processes.error ? { processes: processes.error } : {}),
      ...(limits.error ? { limits: limits.error } : {}),
    };
    const snap = {
      ...(status.value ? { status: status.value } : {}),
      ...(processes.value ? { processes: processes.value } : {}),
      ...(limits.value ? { limits: limits.value } : {}),
      ...(doc ? { connections: [...known.values()] } : {}),
      ...(Object.keys(errors).length ? { errors } : {}),
    };
    write(frame('snapshot', JSON.stringify(snap), position));
    const rest = held ?? [];
    held = undefined;
    if (rest.length) write(rest.join(''));
  }
  return undefined;
}

export const EVENT_ROUTES: readonly Route[] = [
  { method: 'GET', path: '/api/events', rpc: 'Watch', handle: serveEvents },
];
