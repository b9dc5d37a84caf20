/**
 * The daemon's shared traffic monitor (src/daemon/top-feed.ts), on fake timers and a fake
 * source: nothing is read while nobody subscribes; the first reading is a baseline nobody gets;
 * subscribers share one reading per tick; a slower subscriber gets its rates over its own span;
 * the last one to leave closes the source; a failing source ends every subscription.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AwgError } from '../../../src/errors.js';
import { TopFeed } from '../../../src/daemon/top-feed.js';
import { TopDocument } from '../../../src/procs/top/document.js';
import { FakeTrafficSource, steadySource } from '../../../src/procs/top/source.fake.js';
import { context } from '../procs/top/top-fixture.js';

describe('TopFeed', () => {
  let sources: FakeTrafficSource[];
  const feed = (
    make = () =>
      steadySource([{ pid: 100, name: 'firefox', cgroup: '/awg/web', up: 1000, down: 4000 }]),
  ) =>
    new TopFeed({
      source: async () => {
        const s = make();
        sources.push(s);
        return s;
      },
      context: () => context(),
      now: () => Date.now(),
    });
  const sub = (f: TopFeed, intervalMs: number, connections = false) => {
    const docs: TopDocument[] = [];
    const ends: (AwgError | undefined)[] = [];
    const off = f.subscribe(
      { intervalMs, connections },
      (d) => docs.push(TopDocument.parse(d)),
      (e) => ends.push(e),
    );
    return { docs, ends, off };
  };

  beforeEach(() => {
    vi.useFakeTimers();
    sources = [];
  });
  afterEach(() => vi.useRealTimers());

  it('reads nothing while nobody subscribes; the baseline reading is nobody’s; then a document per interval', async () => {
    const f = feed();
    await vi.advanceTimersByTimeAsync(5000);
    expect(sources).toEqual([]);
    const a = sub(f, 1000);
    await vi.advanceTimersByTimeAsync(0);
    expect(sources[0]!.reads).toBe(1);
    expect(a.docs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(a.docs).toHaveLength(1);
    expect(a.docs[0]!.processes[0]).toMatchObject({ pid: 100, upload: 1000, download: 4000 });
    await vi.advanceTimersByTimeAsync(2000);
    expect(a.docs).toHaveLength(3);
    expect(a.docs[2]!.processes[0]).toMatchObject({ sent: 3000, received: 12_000 });
    a.off();
    expect(f.reading).toBe(false);
    expect(sources[0]!.closed).toBe(true);
    const reads = sources[0]!.reads;
    await vi.advanceTimersByTimeAsync(5000);
    expect(sources[0]!.reads).toBe(reads);
  });

  it('subscribers share one reading per tick; one at a longer interval gets rates over its own span', async () => {
    const f = feed();
    const fast = sub(f, 1000);
    const slow = sub(f, 3000, true);
    await vi.advanceTimersByTimeAsync(6000);
    // one baseline and six ticks for both
    expect(sources).toHaveLength(1);
    expect(sources[0]!.reads).toBe(7);
    expect(fast.docs).toHaveLength(6);
    expect(fast.docs.every((d) => d.connections.length === 0)).toBe(true);
    // the slow one: the first tick's document, then every third
    expect(slow.docs.map((d) => d.processes[0]!.sent)).toEqual([1000, 4000]);
    expect(slow.docs[1]!.intervalMs).toBe(3000);
    // the fake source's flow grows by 1000 B per reading: 3000 B over 3 s
    expect(slow.docs[1]!.processes[0]!.upload).toBe(1000);
    expect(slow.docs[1]!.connections).toHaveLength(1);
    fast.off();
    slow.off();
  });

  it('a faster subscriber shortens the pending tick', async () => {
    const f = feed();
    const slow = sub(f, 10_000);
    await vi.advanceTimersByTimeAsync(1000);
    const fast = sub(f, 1000);
    await vi.advanceTimersByTimeAsync(0);
    // the pending 10 s tick was moved: the next reading is one second after the last
    expect(fast.docs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(fast.docs).toHaveLength(2);
    expect(slow.docs).toHaveLength(1);
    fast.off();
    slow.off();
  });

  it('the last one out closes the source; the next subscriber starts a new monitor', async () => {
    const f = feed();
    const a = sub(f, 1000);
    await vi.advanceTimersByTimeAsync(2000);
    a.off();
    await vi.advanceTimersByTimeAsync(10_000);
    const b = sub(f, 1000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sources).toHaveLength(2);
    expect(sources[0]!.closed).toBe(true);
    expect(b.docs[0]!.since).not.toBe(a.docs[0]!.since);
    expect(b.docs[0]!.processes[0]!.sent).toBe(1000);
    b.off();
  });

  it('a source that fails ends every subscription with its error; close() ends them quietly', async () => {
    const f = feed();
    const a = sub(f, 1000);
    const b = sub(f, 2000);
    await vi.advanceTimersByTimeAsync(1000);
    sources[0]!.failNext = new Error('netlink: ENOBUFS');
    await vi.advanceTimersByTimeAsync(1000);
    expect(a.ends).toHaveLength(1);
    expect(a.ends[0]!.message).toContain('ENOBUFS');
    expect(b.ends[0]!.kind).toBe('driver');
    expect(f.subscribers).toBe(0);
    expect(sources[0]!.closed).toBe(true);

    const c = sub(f, 1000);
    await vi.advanceTimersByTimeAsync(1000);
    f.close();
    expect(c.ends).toEqual([undefined]);
    expect(sources[1]!.closed).toBe(true);
    const late = sub(f, 1000);
    expect(late.ends).toEqual([undefined]);
  });

  it('a source that cannot be made ends the subscription with why', async () => {
    const f = new TopFeed({
      source: () => Promise.reject(new Error('unsupported here')),
      context: () => context(),
    });
    const a = sub(f, 1000);
    await vi.advanceTimersByTimeAsync(0);
    expect(a.ends[0]!.message).toBe('unsupported here');
    expect(f.reading).toBe(false);
  });
});
