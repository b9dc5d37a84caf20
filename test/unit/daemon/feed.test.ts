/**
 * The event feed without a daemon: events reach every subscriber (one that throws breaks
 * nothing); the traffic poll runs only while someone subscribes, sends a `traffic` event only
 * when a counter moved, and stops for good when the feed closes (fake timers, a fake status).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DaemonEvent, StatusResponse } from '../../../src/daemon/core.js';
import { EventFeed } from '../../../src/daemon/feed.js';
import { TRAFFIC_EVENT_MS } from '../../../src/daemon/traffic.js';

const rule = (txBytes: number) => ({
  name: 'web',
  target: 'vpn',
  route: 'vpn',
  txPackets: 1,
  txBytes,
  rxPackets: 1,
  rxBytes: 2,
});

describe('event feed', () => {
  let counters: Pick<StatusResponse, 'rules' | 'tunnels'>;
  let reads: number;
  const status = async () => (reads++, counters);
  const traffic = (events: DaemonEvent[]) => events.filter((e) => e.type === 'traffic');

  beforeEach(() => {
    vi.useFakeTimers();
    counters = { rules: [rule(100)], tunnels: [] };
    reads = 0;
  });
  afterEach(() => vi.useRealTimers());

  it('every subscriber gets every event; one that throws breaks nothing; unsubscribe stops it', () => {
    const feed = new EventFeed({ status, trafficIntervalMs: 0 });
    const a: DaemonEvent[] = [];
    const b: DaemonEvent[] = [];
    feed.subscribe(() => {
      throw new Error('broken subscriber');
    });
    const unsubA = feed.subscribe((e) => a.push(e));
    feed.subscribe((e) => b.push(e));
    const e: DaemonEvent = { type: 'reverted', at: 'now', reason: 'test' };
    feed.emit(e);
    unsubA();
    feed.emit(e);
    expect(a).toEqual([e]);
    expect(b).toEqual([e, e]);
  });

  it('polls only while someone subscribes, and sends only moved counters', async () => {
    const feed = new EventFeed({ status, trafficIntervalMs: 10 });
    await vi.advanceTimersByTimeAsync(50);
    expect(reads).toBe(0);
    const events: DaemonEvent[] = [];
    const unsub = feed.subscribe((e) => events.push(e));
    await vi.advanceTimersByTimeAsync(10);
    expect(reads).toBe(1);
    expect(traffic(events)).toEqual([
      { type: 'traffic', at: expect.any(String), rules: [rule(100)], tunnels: [] },
    ]);
    // standing still: read, not sent
    await vi.advanceTimersByTimeAsync(30);
    expect(reads).toBe(4);
    expect(traffic(events)).toHaveLength(1);
    // moved: sent once
    counters = { rules: [rule(150)], tunnels: [] };
    await vi.advanceTimersByTimeAsync(20);
    expect(traffic(events)).toHaveLength(2);
    expect(traffic(events)[1]).toMatchObject({ rules: [rule(150)] });
    // the last subscriber left: no more reads
    unsub();
    const then = reads;
    await vi.advanceTimersByTimeAsync(100);
    expect(reads).toBe(then);
  });

  it('nothing to count (no rules, no tunnels) sends nothing; a failed read is retried next period', async () => {
    counters = { tunnels: [] };
    let fail = true;
    const feed = new EventFeed({
      status: async () => {
        reads++;
        if (fail) throw new Error('nft gone');
        return counters;
      },
      trafficIntervalMs: 10,
    });
    const events: DaemonEvent[] = [];
    feed.subscribe((e) => events.push(e));
    await vi.advanceTimersByTimeAsync(20);
    expect(reads).toBe(2);
    fail = false;
    await vi.advanceTimersByTimeAsync(20);
    expect(reads).toBe(4);
    expect(events).toEqual([]);
    feed.close();
  });

  it('closed: no more polling, not even for a new subscriber; events still go out', async () => {
    const feed = new EventFeed({ status, trafficIntervalMs: 10 });
    const events: DaemonEvent[] = [];
    feed.subscribe((e) => events.push(e));
    feed.close();
    feed.subscribe((e) => events.push(e));
    await vi.advanceTimersByTimeAsync(100);
    expect(reads).toBe(0);
    feed.emit({ type: 'reverted', at: 'now', reason: 'after close' });
    expect(events).toHaveLength(2);
  });

  it('default period: TRAFFIC_EVENT_MS; 0: no poll at all', async () => {
    const feed = new EventFeed({ status });
    feed.subscribe(() => {});
    await vi.advanceTimersByTimeAsync(TRAFFIC_EVENT_MS - 1);
    expect(reads).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(reads).toBe(1);
    feed.close();
    const off = new EventFeed({ status, trafficIntervalMs: 0 });
    off.subscribe(() => {});
    await vi.advanceTimersByTimeAsync(TRAFFIC_EVENT_MS * 3);
    expect(reads).toBe(1);
  });
});
