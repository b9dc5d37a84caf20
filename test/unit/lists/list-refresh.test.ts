/**
 * The refresh scheduler of lists by URL with a fake clock and fake timers: no sleeps; each
 * step waits for the event the scheduler emits after a fetch.
 */
import { describe, expect, it } from 'vitest';
import { normalListRef, type UrlListRef } from '../../../src/config/list-ref.js';
import type { UrlListLoad } from '../../../src/config/load.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { ListRefresher, RETRY_BASE_MS } from '../../../src/daemon/list-refresh.js';
import type { ListUpdateOutcome } from '../../../src/pipeline/list-update.js';
import type { ListCacheMeta } from '../../../src/util/list-cache.js';

const H = 3_600_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');

function rig() {
  let now = T0;
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  const metas = new Map<string, ListCacheMeta>();
  const events: DaemonEvent[] = [];
  const waiters: ((e: DaemonEvent) => void)[] = [];
  let wakes = 0;
  /** what the next fetch of a URL answers (default: a new copy) */
  const answers = new Map<string, (ref: UrlListRef) => ListUpdateOutcome>();
  const fetched: string[] = [];
  let gate: Promise<void> | undefined;
  const meta = (url: string, entries = 1): ListCacheMeta => ({
    version: 1,
    url,
    fetchedAt: new Date(now).toISOString(),
    checkedAt: new Date(now).toISOString(),
    sha256: 'a'.repeat(64),
    size: 1,
    entries,
    format: 'plain',
  });
  const r = new ListRefresher({
    cache: { readMeta: (url) => metas.get(url) },
    async fetch(ref) {
      fetched.push(ref.url);
      if (gate) await gate;
      const a = answers.get(ref.url);
      if (a) return a(ref);
      metas.set(ref.url, meta(ref.url, 3));
      return { url: ref.url, result: 'fetched', changed: true, meta: metas.get(ref.url) };
    },
    wake: () => void wakes++,
    emit: (e) => {
      events.push(e);
      waiters.splice(0).forEach((w) => w(e));
    },
    now: () => now,
    timer: (ms, fn) => {
      const t = { at: now + ms, fn, live: true };
      timers.push(t);
      return () => void (t.live = false);
    },
    random: () => 0,
  });
  return {
    r,
    metas,
    meta,
    events,
    answers,
    fetched,
    get wakes() {
      return wakes;
    },
    setGate(g: Promise<void> | undefined) {
      gate = g;
    },
    /** the timers still armed, as offsets from now */
    pending: () => timers.filter((t) => t.live).map((t) => t.at - now),
    /** move the clock to the next armed timer and fire it; resolves with the event its fetch emits */
    next(): Promise<DaemonEvent> {
      const due = timers.filter((t) => t.live).sort((a, b) => a.at - b.at)[0];
      if (!due) throw new Error('no timer armed');
      const seen = new Promise<DaemonEvent>((res) => waiters.push(res));
      now = Math.max(now, due.at);
      due.live = false;
      due.fn();
      return seen;
    },
    advance(ms: number) {
      now += ms;
    },
  };
}

const load = (url: string, refresh = '1h', rules = ['r']): UrlListLoad => ({
  ref: normalListRef({ url, refresh, maxBytes: 1000, maxEntries: 1000 } as never) as UrlListRef,
  label: url,
  rules: rules.map((name, index) => ({ index, name, path: `rules[${index}].to.lists[0]` })),
  state: 'pending',
});

const A = 'https://lists.example/a.txt';
const B = 'https://u:pw@lists.example/b.txt?token=s3cret';

describe('the list refresh scheduler', () => {
  it('no copy: fetched at once; a new copy wakes the loop; the next check one refresh later', async () => {
    const x = rig();
    x.r.follow([load(A)]);
    expect(x.pending()).toEqual([0]);
    expect(x.r.status()[0]).toMatchObject({ state: 'pending', failures: 0, refresh: '1h' });
    const e = await x.next();
    expect(e).toMatchObject({ type: 'list', list: A, result: 'fetched', entries: 3 });
    expect(x.wakes).toBe(1);
    expect(x.pending()).toEqual([H]);
    expect(x.r.status()[0]).toMatchObject({
      state: 'ok',
      entries: 3,
      ageSec: 0,
      nextCheckAt: new Date(T0 + H).toISOString(),
    });
  });

  it('a copy checked recently: first check when its refresh is due; an overdue one at once', () => {
    const x = rig();
    x.metas.set(A, x.meta(A));
    x.advance(10 * 60_000);
    x.r.follow([load(A)]);
    expect(x.pending()).toEqual([50 * 60_000]);
    const y = rig();
    y.metas.set(A, y.meta(A));
    y.advance(2 * H);
    y.r.follow([load(A)]);
    expect(y.pending()).toEqual([0]);
  });

  it('failures back off (30 s doubling, at most the refresh); the copy stays: stale, then ok again', async () => {
    const x = rig();
    x.metas.set(A, x.meta(A, 5));
    x.advance(H);
    x.r.follow([load(A, '5m')]);
    x.answers.set(A, (ref) => ({
      url: ref.url,
      result: 'failed',
      changed: false,
      error: 'connect ECONNREFUSED',
      meta: x.metas.get(ref.url),
    }));
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const e = await x.next();
      expect(e).toMatchObject({ result: 'failed', error: 'connect ECONNREFUSED', entries: 5 });
      delays.push(x.pending()[0]!);
    }
    expect(delays).toEqual([RETRY_BASE_MS, 60_000, 120_000, 240_000, 300_000]);
    expect(x.wakes).toBe(0);
    expect(x.r.status()[0]).toMatchObject({
      state: 'stale',
      entries: 5,
      error: 'connect ECONNREFUSED',
      failures: 5,
      failuresTotal: 5,
    });
    x.answers.delete(A);
    expect(await x.next()).toMatchObject({ result: 'fetched' });
    expect(x.r.status()[0]).toMatchObject({ state: 'ok', failures: 0, failuresTotal: 5 });
    expect(x.r.status()[0]!.error).toBeUndefined();
  });

  it('a list that never got a copy stays pending through failures', async () => {
    const x = rig();
    x.answers.set(A, (ref) => ({
      url: ref.url,
      result: 'failed',
      changed: false,
      error: 'HTTP 404',
    }));
    x.r.follow([load(A)]);
    await x.next();
    expect(x.r.status()[0]).toMatchObject({ state: 'pending', error: 'HTTP 404', failures: 1 });
  });

  it('update() fetches now and joins a fetch under way; one list by URL or name', async () => {
    const x = rig();
    x.metas.set(A, x.meta(A));
    x.metas.set(B, x.meta(B));
    x.r.follow([load(A), load(B)]);
    let open!: () => void;
    x.setGate(new Promise<void>((r) => (open = r)));
    const one = x.r.update(A);
    const again = x.r.update('https://lists.example/b.txt?…');
    const both = x.r.update();
    expect(x.fetched).toEqual([A, B]);
    open();
    const [a, b, all] = await Promise.all([one, again, both]);
    expect(a.map((r) => r.name)).toEqual([A]);
    expect(b.map((r) => r.name)).toEqual(['https://lists.example/b.txt?…']);
    expect(all.map((r) => r.outcome.result)).toEqual(['fetched', 'fetched']);
    expect(x.fetched).toEqual([A, B]);
    // the name never shows the credentials or the query
    expect(JSON.stringify(x.r.status())).not.toMatch(/pw|s3cret/);
  });

  it('follow: a list gone is dropped (its timer cancelled); a changed refresh reschedules; rules merge', () => {
    const x = rig();
    x.metas.set(A, x.meta(A));
    x.metas.set(B, x.meta(B));
    x.r.follow([load(A), load(B)]);
    expect(x.pending().sort()).toEqual([H, H]);
    x.r.follow([load(A, '2h', ['one']), load(A, '2h', ['two'])]);
    // timers wait an hour at most: the check itself is due in two
    expect(x.pending()).toEqual([H]);
    expect(x.r.status()[0]!.nextCheckAt).toBe(new Date(T0 + 2 * H).toISOString());
    expect(x.r.status()).toEqual([
      expect.objectContaining({ rules: ['one', 'two'], refresh: '2h' }),
    ]);
    x.r.follow(undefined);
    expect(x.pending()).toEqual([]);
    expect(x.r.status()).toEqual([]);
  });

  it('a refresh longer than a timer may wait is set in steps', async () => {
    const x = rig();
    x.metas.set(A, x.meta(A));
    x.r.follow([load(A, '3d')]);
    expect(x.pending()).toEqual([H]);
    let fired = false;
    void x.next().then(() => (fired = true));
    expect(x.pending()).toEqual([H]);
    expect(fired).toBe(false);
    expect(x.fetched).toEqual([]);
  });
});
