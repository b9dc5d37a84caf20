/**
 * The conntrack table of the reading over a fake ctnetlink: a dump at the start, events
 * after, gets for what a read needs, a dump again when that is cheaper, when events were
 * lost, and every RESYNC_MS.
 */
import { describe, expect, it } from 'vitest';
import type { CtEntry, CtEvent } from '../../../../src/native/conntrack.js';
import { ConntrackTable, RESYNC_MS, type CtIo } from '../../../../src/procs/top/linux-conntrack.js';

function entry(sport: number, proto = 17, id = sport, bytes = 0): CtEntry {
  return {
    family: 4,
    proto,
    orig: { src: '10.200.1.2', dst: '10.200.9.1', sport, dport: 53 },
    reply: { src: '10.200.9.1', dst: '10.200.1.2', sport: 53, dport: sport },
    id,
    mark: 0,
    origCounters: { packets: 1, bytes },
    replyCounters: { packets: 0, bytes: 0 },
  };
}

class FakeIo implements CtIo {
  kernel = new Map<number, CtEntry>();
  queued: CtEvent[] = [];
  lost = false;
  dumps = 0;
  asked: number[] = [];
  forgotten: string[] = [];
  failGet = false;
  events = {
    take: () => {
      const out = { events: this.queued, lost: this.lost };
      this.queued = [];
      this.lost = false;
      return out;
    },
  };
  dump(): CtEntry[] {
    this.dumps++;
    return [...this.kernel.values()];
  }
  get(items: readonly { key: string; entry: CtEntry }[]): (CtEntry | null)[] {
    if (this.failGet) throw new Error('ENOBUFS');
    return items.map(({ entry }) => {
      this.asked.push(entry.orig.sport);
      return this.kernel.get(entry.orig.sport) ?? null;
    });
  }
  forget(key: string): void {
    this.forgotten.push(key);
  }
  add(e: CtEntry): void {
    this.kernel.set(e.orig.sport, e);
    // a NEW event has no counters yet
    const { origCounters: _o, replyCounters: _r, ...fresh } = e;
    this.queued.push({ type: 'new', entry: fresh });
  }
  remove(sport: number): void {
    const e = this.kernel.get(sport)!;
    this.kernel.delete(sport);
    this.queued.push({ type: 'destroy', entry: e });
  }
}

const all = () => true;
const sports = (es: CtEntry[]) => es.map((e) => e.orig.sport).sort((a, b) => a - b);

describe('conntrack table', () => {
  it('dumps first, then follows events and asks only for the entries a read needs', () => {
    const io = new FakeIo();
    let now = 0;
    const t = new ConntrackTable(io, () => now);
    io.kernel.set(1, entry(1, 17, 1, 100));
    io.kernel.set(2, entry(2, 6, 2, 100));
    const r0 = t.refresh(all);
    expect([r0.how, io.dumps, sports(r0.entries)]).toEqual(['dump', 1, [1, 2]]);

    now += 1000;
    io.kernel.set(1, entry(1, 17, 1, 300));
    io.add(entry(3, 17, 3, 50));
    const r1 = t.refresh((e) => e.proto === 17);
    expect([r1.how, io.dumps]).toEqual(['get', 1]);
    expect(io.asked.sort()).toEqual([1, 3]);
    expect(r1.entries.find((e) => e.orig.sport === 1)?.origCounters?.bytes).toBe(300);
    expect(r1.entries.find((e) => e.orig.sport === 3)?.origCounters?.bytes).toBe(50);
    expect(sports(r1.entries)).toEqual([1, 2, 3]);

    // a destroyed entry leaves the table and comes once with its final counters
    now += 1000;
    io.kernel.set(3, entry(3, 17, 3, 80));
    io.remove(3);
    io.asked = [];
    const r2 = t.refresh((e) => e.proto === 17);
    expect(sports(r2.entries)).toEqual([1, 2]);
    expect(r2.ended.map((e) => e.origCounters?.bytes)).toEqual([80]);
    expect(io.asked).toEqual([1]);
    expect(t.refresh(all).ended).toEqual([]);
  });

  it('drops an entry a get finds gone; a destroy of an older entry keeps the new one', () => {
    const io = new FakeIo();
    const t = new ConntrackTable(io, () => 0);
    io.kernel.set(1, entry(1));
    io.kernel.set(2, entry(2, 17, 20));
    t.refresh(all);
    io.kernel.delete(1);
    // entry 2's tuple reused by id 21: the late destroy of id 20 must not drop it
    io.queued.push({ type: 'destroy', entry: entry(2, 17, 20) });
    io.add(entry(2, 17, 21));
    io.kernel.set(2, entry(2, 17, 21));
    const r = t.refresh(all);
    expect(sports(r.entries)).toEqual([2]);
    expect(r.entries[0]?.id).toBe(21);
    expect(io.forgotten.length).toBeGreaterThan(0);
  });

  it('dumps again when events were lost, every RESYNC_MS, and when a get fails', () => {
    const io = new FakeIo();
    let now = 0;
    const t = new ConntrackTable(io, () => now);
    io.kernel.set(1, entry(1));
    t.refresh(all);
    io.lost = true;
    expect(t.refresh(all).how).toBe('dump');
    now += RESYNC_MS - 1;
    expect(t.refresh(all).how).toBe('get');
    now += 1;
    expect(t.refresh(all).how).toBe('dump');
    io.failGet = true;
    now += 1;
    expect(t.refresh(all).how).toBe('dump');
  });

  it('dumps every time without events', () => {
    const io = new FakeIo();
    const noEvents: CtIo = { dump: () => io.dump(), get: (i) => io.get(i), forget: () => {} };
    const t = new ConntrackTable(noEvents, () => 0);
    t.refresh(all);
    t.refresh(all);
    expect(io.dumps).toBe(2);
  });

  it('dumps when asking entry by entry would cost more than the dump it measured', () => {
    const io = new FakeIo();
    let now = 0;
    // the clock moves only inside a dump (it costs 1 ms) and a get (1 ms per entry asked)
    const t = new ConntrackTable(io, () => now);
    for (let i = 1; i <= 50; i++) io.kernel.set(i, entry(i));
    const dump = io.dump.bind(io);
    io.dump = () => {
      now += 1;
      return dump();
    };
    const get = io.get.bind(io);
    io.get = (items) => {
      now += items.length;
      return get(items);
    };
    t.refresh(all);
    io.dumps = 0;
    // estimates learned: a few reads until a get of 50 is known to cost more than a dump
    const hows = Array.from({ length: 6 }, () => t.refresh(all).how);
    expect(hows).toContain('get');
    expect(hows.at(-1)).toBe('dump');
    // needing few entries, it gets them
    expect(t.refresh((e) => e.orig.sport === 1).how).toBe('get');
  });
});
