/**
 * GET /api/events (src/daemon/http/events.ts) over the daemon's real socket, against a fake
 * core whose events go through the real event log: the snapshot, ids, resume with
 * Last-Event-ID (100 events missed, all 100 once and in order), a gap after a restart, the
 * connection deltas and rates, heartbeats, backpressure, the end when the API closes; and the
 * gRPC Watch's `after` on the same log.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/client.js';
import type { DaemonEvent, TopDocument } from '../../../src/daemon/core.js';
import { EventLog } from '../../../src/daemon/event-log.js';
import { connectionsDelta, type ConnectionsDelta } from '../../../src/daemon/http/events.js';
import { startApiServer, type ApiServer } from '../../../src/daemon/server.js';
import { openSse, type SseClient } from '../../helpers/sse.js';
import { FakeCore, sampleTop } from './server-fake-core.js';

/** the fake core, its events through an event log as the daemon's are */
class LoggedCore extends FakeCore {
  log = new EventLog();
  override emit(e: DaemonEvent): void {
    this.log.append(e);
  }
  override subscribe(
    listener: (e: DaemonEvent, id: string) => void,
    o: { after?: string | undefined } = {},
  ): () => void {
    return this.log.subscribe(listener, o);
  }
  override get subscribers(): number {
    return this.log.subscribers;
  }
  lastEventId(): string {
    return this.log.lastId;
  }
  /** as after a restart of the daemon: a new run */
  restart(): void {
    this.log = new EventLog();
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(): Promise<{ core: LoggedCore; path: string; server: ApiServer }> {
  const d = mkdtempSync(join(tmpdir(), 'awg-sse-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  const path = join(d, 'awg.sock');
  const core = new LoggedCore();
  const server = await startApiServer(core, { socketPath: path });
  cleanups.push(() => server.close());
  return { core, path, server };
}

async function sse(path: string, url = '/api/events', headers: Record<string, string> = {}) {
  const c = await openSse(path, url, headers);
  cleanups.push(() => c.close());
  return c;
}

const ev = (n: number): DaemonEvent => ({
  type: 'network-changed',
  at: new Date().toISOString(),
  detail: `e${n}`,
});
const details = (c: SseClient) =>
  c.json<DaemonEvent>('network-changed').map((e) => (e.type === 'network-changed' ? e.detail : ''));

describe('GET /api/events', () => {
  it('streams a snapshot, then every event with its id and type', async () => {
    const { core, path } = await serve();
    core.limits = [{ ...core.statusValue.limits![0]! }];
    core.emit(ev(0)); // before the client: not replayed to a fresh one
    const c = await sse(path);
    expect(c.status).toBe(200);
    expect(c.res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(c.res.headers['cache-control']).toBe('no-store');
    expect(c.res.headers['x-accel-buffering']).toBe('no');
    await c.count('snapshot', 1);
    expect(c.retry).toBe(1000);
    const snap = c.json<Record<string, unknown>>('snapshot')[0]!;
    expect(snap).toEqual({
      status: core.statusValue,
      processes: core.processes,
      limits: core.limits,
    });
    // the snapshot stands for the log's position when the client came
    expect(c.events[0]).toMatchObject({ type: 'snapshot', lastEventId: `${core.log.run}.1` });
    const e1: DaemonEvent = { type: 'network-changed', at: 'T0', detail: 'link eth0 up' };
    core.emit(e1);
    core.emit({ type: 'reverted', at: 'T', reason: 'why' });
    await c.count(undefined, 3);
    expect(c.events.slice(1)).toEqual([
      {
        type: 'network-changed',
        data: JSON.stringify(e1),
        lastEventId: `${core.log.run}.2`,
        hasId: true,
      },
      {
        type: 'reverted',
        data: '{"type":"reverted","at":"T","reason":"why"}',
        lastEventId: `${core.log.run}.3`,
        hasId: true,
      },
    ]);
  });

  it('resume: disconnect, 100 events, reconnect with Last-Event-ID: all 100 once, in order', async () => {
    const { core, path } = await serve();
    const a = await sse(path);
    await a.count('snapshot', 1);
    for (let i = 1; i <= 5; i++) core.emit(ev(i));
    await a.count('network-changed', 5);
    const cursor = a.lastEventId;
    await a.close();
    await waitFor(() => core.subscribers === 0);
    for (let i = 6; i <= 105; i++) core.emit(ev(i));

    const b = await sse(path, '/api/events', { 'last-event-id': cursor });
    await b.count('network-changed', 100);
    core.emit(ev(106));
    await b.count('network-changed', 101);
    expect(details(b)).toEqual(Array.from({ length: 101 }, (_, i) => `e${i + 6}`));
    // a resume that could replay needs no snapshot, and sends no gap
    expect(b.events.map((e) => e.type).filter((t) => t !== 'network-changed')).toEqual([]);
    expect(new Set(b.events.map((e) => e.lastEventId)).size).toBe(101);

    // ?after= does the same (for clients that cannot set headers)
    const q = await sse(path, `/api/events?after=${encodeURIComponent(cursor)}`);
    await q.count('network-changed', 101);
    expect(details(q)).toEqual(details(b));
  });

  it('after a restart (a new run): a gap first, then a snapshot at the new position', async () => {
    const { core, path } = await serve();
    const a = await sse(path);
    core.emit(ev(1));
    await a.count('network-changed', 1);
    const cursor = a.lastEventId;
    await a.close();
    core.restart();
    core.emit(ev(2));
    const b = await sse(path, '/api/events', { 'last-event-id': cursor });
    await b.count('snapshot', 1);
    expect(b.events.map((e) => e.type)).toEqual(['gap', 'network-changed', 'snapshot']);
    expect(b.json('gap')[0]).toMatchObject({
      type: 'gap',
      after: cursor,
      reason: expect.stringMatching(/restarted/),
    });
    expect(b.events[2]!.lastEventId).toBe(`${core.log.run}.1`);
    expect(core.log.run).not.toBe(cursor.split('.')[0]);
  });

  it('a client further behind than the ring holds gets a gap', async () => {
    const { core, path } = await serve();
    core.log = new EventLog({ maxEvents: 10 });
    core.emit(ev(1));
    const old = core.log.lastId;
    for (let i = 2; i <= 30; i++) core.emit(ev(i));
    const b = await sse(path, '/api/events', { 'last-event-id': old });
    await b.count('snapshot', 1);
    expect(b.events[0]!.type).toBe('gap');
    expect(details(b)).toEqual(Array.from({ length: 10 }, (_, i) => `e${i + 21}`));
  });

  it('heartbeats as comments', async () => {
    const { path } = await serve();
    const c = await sse(path, '/api/events?heartbeat=50');
    await c.until((x) => x.comments.length >= 2, 'two heartbeats');
    expect(c.comments.slice(0, 2)).toEqual(['hb', 'hb']);
  });

  it('connections: the snapshot holds them, then deltas and rates per tick; the monitor runs only while asked', async () => {
    const { core, path } = await serve();
    const plain = await sse(path);
    await plain.count('snapshot', 1);
    expect(core.tops.size).toBe(0);

    const c = await sse(path, '/api/events?connections=1&interval=500');
    await waitFor(() => core.tops.size === 1);
    expect([...core.tops][0]!.req).toEqual({ intervalMs: 500, connections: true });
    const d1 = sampleTop();
    core.pushTop(d1);
    await c.count('rates', 1);
    const snap = c.json<{ connections: TopDocument['connections'] }>('snapshot')[0]!;
    // the closed one is not open
    expect(snap.connections.map((x) => x.id)).toEqual([d1.connections[0]!.id]);
    expect(c.events.map((e) => e.type)).toEqual(['snapshot', 'rates']);
    const rates = c.json<Record<string, unknown>>('rates')[0]!;
    expect(rates).not.toHaveProperty('connections');
    expect(rates).toMatchObject({ tunnels: d1.tunnels, rules: d1.rules, processes: d1.processes });

    const [tcp] = d1.connections;
    const moved = { ...tcp!, sent: tcp!.sent + 10 };
    const fresh = { ...tcp!, id: 'tcp/4/10.0.0.2:40001/192.0.2.1:443/78' };
    core.pushTop({ ...d1, at: '2026-11-22T05:00:03.000Z', connections: [moved, fresh] });
    await c.count('connections', 1);
    expect(c.json<ConnectionsDelta>('connections')[0]).toEqual({
      at: '2026-11-22T05:00:03.000Z',
      opened: [fresh],
      updated: [moved],
      closed: [],
    });
    // unchanged: no connections event, only rates
    core.pushTop({ ...d1, at: '2026-11-22T05:00:04.000Z', connections: [moved, fresh] });
    await c.count('rates', 3);
    expect(c.json('connections')).toHaveLength(1);
    core.pushTop({
      ...d1,
      at: '2026-11-22T05:00:05.000Z',
      connections: [{ ...moved, closed: true }],
    });
    await c.count('connections', 2);
    expect(c.json<ConnectionsDelta>('connections')[1]).toEqual({
      at: '2026-11-22T05:00:05.000Z',
      opened: [],
      updated: [],
      closed: [
        { ...moved, closed: true },
        { ...fresh, closed: true },
      ],
    });
    // deltas carry no id: a resume after them is a resume after the last logged event
    expect(c.events.filter((e) => e.type !== 'snapshot').every((e) => !e.hasId)).toBe(true);

    // a resumed client gets the whole set afresh
    const r = await sse(path, '/api/events?connections=1', { 'last-event-id': c.lastEventId });
    await waitFor(() => core.tops.size === 2);
    core.pushTop({ ...d1, at: '2026-11-22T05:00:06.000Z', connections: [fresh] });
    await r.count('connections', 1);
    expect(r.json<ConnectionsDelta>('connections')[0]).toEqual({
      at: '2026-11-22T05:00:06.000Z',
      reset: true,
      opened: [fresh],
      updated: [],
      closed: [],
    });
    expect(r.json('snapshot')).toEqual([]);

    await c.close();
    await r.close();
    await waitFor(() => core.tops.size === 0);
  });

  it('?rates=1 runs the monitor without connections', async () => {
    const { core, path } = await serve();
    const c = await sse(path, '/api/events?rates=1');
    await waitFor(() => core.tops.size === 1);
    expect([...core.tops][0]!.req).toEqual({ intervalMs: 1000, connections: false });
    core.pushTop({ ...sampleTop(), connections: [] });
    await c.count('rates', 1);
    expect(c.json('connections')).toEqual([]);
  });

  it('a client that does not read is cut once too much is unsent, and can resume', async () => {
    const { core, path } = await serve();
    // a ring that holds all it is sent here (the default holds 1 MiB): the resume replays
    core.log = new EventLog({ maxBytes: 16 * 1024 * 1024 });
    const c = await sse(path);
    await c.count('snapshot', 1);
    const cursor = c.lastEventId;
    c.res.pause();
    const big = 'x'.repeat(4000);
    for (let i = 0; i < 2000 && core.subscribers > 0; i++)
      core.emit({ type: 'network-changed', at: 'T', detail: `${i} ${big}` });
    expect(core.subscribers).toBe(0);
    c.res.resume();
    await c.closed;
    const r = await sse(path, '/api/events', { 'last-event-id': cursor });
    await r.count('network-changed', 1);
    expect(r.events[0]!.type).toBe('network-changed');
    expect(JSON.parse(r.events[0]!.data)).toMatchObject({ detail: `0 ${big}` });
  });

  it('the stream ends when the API closes', async () => {
    const { core, path, server } = await serve();
    const c = await sse(path);
    await c.count('snapshot', 1);
    await server.close();
    await c.closed;
    expect(c.ended).toBe(true);
    expect(core.subscribers).toBe(0);
  });
});

describe('gRPC Watch with after', () => {
  it('replays after the cursor, ids on the wire; a gap after a restart', async () => {
    const { core, path } = await serve();
    const client = await DaemonClient.open(path);
    cleanups.push(() => client.close());
    for (let i = 1; i <= 5; i++) core.emit(ev(i));
    const got: { e: DaemonEvent; id: string }[] = [];
    const off = await client.watch((e, id) => got.push({ e, id }), undefined, {
      after: `${core.log.run}.2`,
    });
    core.emit(ev(6));
    await waitFor(() => got.length === 4);
    expect(got.map((g) => g.id)).toEqual([3, 4, 5, 6].map((n) => `${core.log.run}.${n}`));
    off();

    const old = core.log.lastId;
    core.restart();
    core.emit(ev(7));
    const after: DaemonEvent[] = [];
    const off2 = await client.watch((e) => after.push(e), undefined, { after: old });
    await waitFor(() => after.length === 2);
    expect(after[0]).toMatchObject({ type: 'gap', after: old });
    expect(after[1]).toMatchObject({ detail: 'e7' });
    off2();
  });
});

describe('connectionsDelta', () => {
  it('opened, updated when bytes moved, closed when flagged or gone', () => {
    const known = new Map();
    const doc = sampleTop();
    const d = connectionsDelta(known, doc);
    expect(d.opened.map((c) => c.id)).toEqual([doc.connections[0]!.id]);
    expect(d.closed.map((c) => c.id)).toEqual([doc.connections[1]!.id]);
    expect(connectionsDelta(known, doc).opened).toEqual([]);
    const gone = connectionsDelta(known, { ...doc, connections: [] });
    expect(gone.closed).toEqual([{ ...doc.connections[0]!, closed: true }]);
    expect(known.size).toBe(0);
  });
});

/** poll a condition set by the server side (no timing asserted: the test's timeout bounds it) */
async function waitFor(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise((r) => setTimeout(r, 5));
}
