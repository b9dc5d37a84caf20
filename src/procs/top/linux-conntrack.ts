/**
 * The conntrack table as the reading needs it, kept cheaply. A ctnetlink dump walks every
 * bucket of the kernel's connection hash (one table for all namespaces; 262144 buckets on a
 * host with 24 GiB), which costs ~10 ms of CPU even when the namespace has no entry. So:
 * - one dump at the start, then the NEW and DESTROY events keep the list of entries (a
 *   destroyed entry arrives with its final counters);
 * - each read asks only for the entries whose counters it needs (UDP, and TCP flows without
 *   a local socket; a local TCP socket has its own counts), by tuple, in batches;
 * - a dump instead when that would cost more (many entries to ask for, by the costs measured
 *   so far), when events were lost, every RESYNC_MS, and always when the events cannot be
 *   had (no CAP_NET_ADMIN, or net.netfilter.nf_conntrack_events = 0).
 */
import {
  buildCtGet,
  dumpConntrack,
  getConntrack,
  type ConntrackEvents,
  type CtEntry,
  type CtEventBatch,
} from '../../native/conntrack.js';
import type { NetlinkSocket } from '../../native/netlink.js';

/** What the table reads through; linuxCtIo on a real socket, a fake in unit tests. */
export interface CtIo {
  dump(): CtEntry[];
  /** the entries now (null: gone), by the tuple `key` the table gives each */
  get(items: readonly { key: string; entry: CtEntry }[]): (CtEntry | null)[];
  /** the entry behind `key` is gone: what was kept for asking about it can go */
  forget(key: string): void;
  /** absent: no events (every refresh dumps) */
  events?: { take(): CtEventBatch };
}

/** ctnetlink on `sock` (and its events); each entry's GET request is built once. */
export function linuxCtIo(sock: NetlinkSocket, events: ConntrackEvents | undefined): CtIo {
  const requests = new Map<string, Buffer>();
  return {
    dump: () => dumpConntrack(sock),
    get: (items) =>
      getConntrack(
        sock,
        items.map(({ key, entry }) => {
          let r = requests.get(key);
          if (!r) {
            r = buildCtGet(entry, 0);
            requests.set(key, r);
          }
          return r;
        }),
      ),
    forget: (key) => void requests.delete(key),
    ...(events ? { events } : {}),
  };
}

/** a dump at least this often (ms), in case an event was missed without the kernel saying so */
export const RESYNC_MS = 60_000;

export interface CtRefresh {
  entries: CtEntry[];
  /** entries destroyed since the last refresh, with their final counters */
  ended: CtEntry[];
  /** how the counters were read this time */
  how: 'dump' | 'get';
}

const tupleOf = (e: CtEntry): string =>
  `${e.proto} ${e.orig.src} ${e.orig.sport} ${e.orig.dst} ${e.orig.dport} ${e.zone ?? 0}`;

export class ConntrackTable {
  private readonly table = new Map<string, CtEntry>();
  private lastDump = -Infinity;
  /** cost estimates, ms: one dump, one entry asked for */
  private dumpCost = 10;
  private getCost = 0.015;

  constructor(
    private readonly io: CtIo,
    private readonly clock: () => number,
  ) {}

  /** `needed(e)`: the entry's counters matter to this read */
  refresh(needed: (e: CtEntry) => boolean): CtRefresh {
    const now = this.clock();
    let lost = this.io.events === undefined;
    const ended: CtEntry[] = [];
    if (this.io.events) {
      const batch = this.io.events.take();
      lost ||= batch.lost;
      for (const ev of batch.events) {
        const k = tupleOf(ev.entry);
        if (ev.type === 'new') {
          if (!this.table.has(k)) this.table.set(k, ev.entry);
          continue;
        }
        const cur = this.table.get(k);
        // a destroy of an older entry on a tuple already reused leaves the new one
        if (cur && (cur.id === undefined || ev.entry.id === undefined || cur.id === ev.entry.id))
          this.drop(k);
        ended.push(ev.entry);
      }
    }
    if (lost || now - this.lastDump >= RESYNC_MS) return this.dump(ended, now);
    const items: { key: string; entry: CtEntry }[] = [];
    for (const [key, entry] of this.table) if (needed(entry)) items.push({ key, entry });
    if (items.length * this.getCost > this.dumpCost) return this.dump(ended, now);
    if (items.length > 0) {
      const t0 = this.clock();
      let got: (CtEntry | null)[];
      try {
        got = this.io.get(items);
      } catch {
        // the answers did not fit the receive queue: count the whole table instead
        return this.dump(ended, now);
      }
      this.getCost = 0.8 * this.getCost + (0.2 * (this.clock() - t0)) / items.length;
      items.forEach(({ key }, i) => {
        const e = got[i];
        // gone without a destroy event yet: that comes later, with the final counters
        if (e) this.table.set(key, e);
        else this.drop(key);
      });
    }
    return { entries: [...this.table.values()], ended, how: 'get' };
  }

  private drop(key: string): void {
    this.table.delete(key);
    this.io.forget(key);
  }

  private dump(ended: CtEntry[], now: number): CtRefresh {
    const t0 = this.clock();
    const all = this.io.dump();
    this.dumpCost = 0.5 * this.dumpCost + 0.5 * (this.clock() - t0);
    this.lastDump = now;
    const live = new Set<string>();
    for (const e of all) live.add(tupleOf(e));
    for (const k of this.table.keys()) if (!live.has(k)) this.io.forget(k);
    this.table.clear();
    for (const e of all) this.table.set(tupleOf(e), e);
    return { entries: all, ended, how: 'dump' };
  }
}
