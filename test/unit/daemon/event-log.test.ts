/**
 * The event log (src/daemon/event-log.ts): ids, the bounded ring, replay after a cursor then
 * live with nothing lost or repeated at the seam, and a gap when the cursor cannot be honoured.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { EventLog, parseEventId } from '../../../src/daemon/event-log.js';

const ev = (n: number): DaemonEvent => ({ type: 'network-changed', at: 'now', detail: `e${n}` });
const nOf = (e: DaemonEvent) => (e.type === 'network-changed' ? Number(e.detail.slice(1)) : -1);

function collect(log: EventLog, after?: string) {
  const got: { e: DaemonEvent; id: string }[] = [];
  const off = log.subscribe((e, id) => got.push({ e, id }), { after });
  return { got, off, ns: () => got.filter((g) => g.e.type !== 'gap').map((g) => nOf(g.e)) };
}

describe('event log', () => {
  it('ids are <run>.<seq>, ordered, of a random run per log', () => {
    const a = new EventLog();
    const b = new EventLog();
    expect(a.run).toMatch(/^[0-9a-f]{8}$/);
    expect(a.run).not.toBe(b.run);
    expect(a.lastId).toBe(`${a.run}.0`);
    expect(a.append(ev(1))).toBe(`${a.run}.1`);
    expect(a.append(ev(2))).toBe(`${a.run}.2`);
    expect(parseEventId(a.lastId)).toEqual({ run: a.run, seq: 2 });
    expect(parseEventId('nonsense')).toBeUndefined();
  });

  it('without a cursor: live events only', () => {
    const log = new EventLog({ run: 'r' });
    log.append(ev(1));
    const c = collect(log);
    log.append(ev(2));
    expect(c.got).toEqual([{ e: ev(2), id: 'r.2' }]);
  });

  it('resumes after a cursor: the held events after it, then live, each once', () => {
    const log = new EventLog({ run: 'r' });
    for (let i = 1; i <= 5; i++) log.append(ev(i));
    const c = collect(log, 'r.2');
    log.append(ev(6));
    expect(c.got.map((g) => g.id)).toEqual(['r.3', 'r.4', 'r.5', 'r.6']);
    expect(c.ns()).toEqual([3, 4, 5, 6]);
    const none = collect(log, 'r.6');
    expect(none.got).toEqual([]);
  });

  it('a cursor of another run (the daemon restarted): a gap, then everything held', () => {
    const log = new EventLog({ run: 'new', now: () => 'T' });
    log.append(ev(1));
    const c = collect(log, 'old.42');
    expect(c.got[0]).toEqual({
      e: {
        type: 'gap',
        at: 'T',
        after: 'old.42',
        reason: 'the daemon restarted: the cursor is of an earlier run',
      },
      id: 'new.0',
    });
    expect(c.ns()).toEqual([1]);
  });

  it('an evicted cursor: a gap, then what is held; bounded by count and by bytes', () => {
    const log = new EventLog({ run: 'r', maxEvents: 3 });
    for (let i = 1; i <= 10; i++) log.append(ev(i));
    expect(log.held).toBe(3);
    const c = collect(log, 'r.2');
    expect(c.got[0]!.e).toMatchObject({ type: 'gap', after: 'r.2' });
    expect(c.got[0]!.id).toBe('r.7');
    expect(c.ns()).toEqual([8, 9, 10]);
    // the last held cursor but one still resumes without a gap
    expect(collect(log, 'r.7').got.map((g) => g.e.type)).toEqual([
      'network-changed',
      'network-changed',
      'network-changed',
    ]);

    const small = new EventLog({ run: 'r', maxBytes: 3 * JSON.stringify(ev(1)).length });
    for (let i = 1; i <= 9; i++) small.append(ev(i));
    expect(small.held).toBe(3);
  });

  it('a cursor from the future or of another shape is a gap too', () => {
    const log = new EventLog({ run: 'r' });
    log.append(ev(1));
    expect(collect(log, 'r.9').got[0]!.e.type).toBe('gap');
    expect(collect(log, 'garbage').got[0]!.e.type).toBe('gap');
  });

  it('events appended by a listener during its replay are neither lost nor doubled', () => {
    const log = new EventLog({ run: 'r' });
    for (let i = 1; i <= 3; i++) log.append(ev(i));
    const got: number[] = [];
    const other = collect(log);
    log.subscribe(
      (e) => {
        got.push(nOf(e));
        // while replaying 2, a new event appears; while replaying 3, another subscriber joins
        if (nOf(e) === 2) log.append(ev(4));
        if (nOf(e) === 3) log.append(ev(5));
      },
      { after: 'r.1' },
    );
    log.append(ev(6));
    expect(got).toEqual([2, 3, 4, 5, 6]);
    expect(other.ns()).toEqual([4, 5, 6]);
  });

  it('a listener that throws or unsubscribes mid-delivery breaks nothing', () => {
    const log = new EventLog({ run: 'r' });
    log.subscribe(() => {
      throw new Error('broken');
    });
    const got: number[] = [];
    const off = log.subscribe((e) => {
      got.push(nOf(e));
      off();
      log.append(ev(99));
    });
    const b = collect(log);
    log.append(ev(1));
    expect(got).toEqual([1]);
    expect(b.ns()).toEqual([1, 99]);
  });

  it('property: a client that reconnects with its last id gets every event once, in order', () => {
    type Op =
      | { op: 'emit'; n: number }
      | { op: 'drop' }
      | { op: 'connect' }
      | { op: 'emit-in-listener'; n: number };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('emit' as const), n: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ op: fc.constant('drop' as const) }),
      fc.record({ op: fc.constant('connect' as const) }),
      fc.record({
        op: fc.constant('emit-in-listener' as const),
        n: fc.integer({ min: 1, max: 3 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 60 }),
        fc.integer({ min: 1, max: 40 }),
        (ops, ring) => {
          const log = new EventLog({ run: 'r', maxEvents: ring });
          let emitted = 0;
          const emit = () => log.append(ev(++emitted));
          // the client: its last id (at first the log's position, as the SSE snapshot's id), what it saw
          let last = log.lastId;
          const seen: number[] = [];
          let gaps = 0;
          let pendingInListener = 0;
          const listener = (e: DaemonEvent, id: string) => {
            last = id;
            if (e.type === 'gap') gaps++;
            else seen.push(nOf(e));
            while (pendingInListener > 0) {
              pendingInListener--;
              emit();
            }
          };
          let off: (() => void) | undefined = log.subscribe(listener);
          for (const o of ops) {
            if (o.op === 'emit') for (let i = 0; i < o.n; i++) emit();
            if (o.op === 'emit-in-listener') {
              pendingInListener = o.n;
              emit();
            }
            if (o.op === 'drop') {
              off?.();
              off = undefined;
            }
            if (o.op === 'connect' && !off) off = log.subscribe(listener, { after: last });
          }
          pendingInListener = 0;
          if (!off) off = log.subscribe(listener, { after: last });
          // order kept, nothing doubled
          for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]!);
          // the client ends caught up
          expect(seen.at(-1) ?? 0).toBe(emitted);
          // nothing lost unless a gap said so; with a ring this large, nothing lost at all
          if (gaps === 0) expect(seen).toEqual(Array.from({ length: emitted }, (_, i) => i + 1));
          if (ring >= emitted) expect(gaps).toBe(0);
          off();
        },
      ),
      { numRuns: 300 },
    );
  });
});
