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
  ConntrackEvents,
  dumpConntrack,
  getConntrack,
  type CtEntry,
} from '../../native/conntrack.js';
import type { NetlinkSocket } from '../../native/netlink.js';

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
  /** the GET request of each entry, built once */
  private readonly requests = new Map<string, Buffer>();
  private lastDump = -Infinity;
  /** CPU-ish cost estimates, ms: one dump, one entry asked for */
  private dumpCost = 10;
  private getCost = 0.015;

  constructor(
    private readonly sock: NetlinkSocket,
    private readonly events: ConntrackEvents | undefined,
    private readonly clock: () => number,
  ) {}

  /** `needed(e)`: the entry's counters matter to this read */
  refresh(needed: (e: CtEntry) => boolean): CtRefresh {
    const now = this.clock();
    let lost = this.events === undefined;
    const ended: CtEntry[] = [];
    if (this.events) {
      const batch = this.events.take();
      lost ||= batch.lost;
      for (const ev of batch.events) {
        const k = tupleOf(ev.entry);
        if (ev.type === 'new') {
          if (!this.table.has(k)) this.table.set(k, ev.entry);
          continue;
        }
        const cur = this.table.get(k);
        // a destroy of an older entry on a tuple already reused leaves the new one
        if (cur && (cur.id === undefined || ev.entry.id === undefined || cur.id === ev.entry.id)) {
          this.table.delete(k);
          this.requests.delete(k);
        }
        ended.push(ev.entry);
      }
    }
    if (lost || now - this.lastDump >= RESYNC_MS) return this.dump(ended, now);
    const keys: string[] = [];
    for (const [k, e] of this.table) if (needed(e)) keys.push(k);
    if (keys.length * this.getCost > this.dumpCost) return this.dump(ended, now);
    if (keys.length > 0) {
      const reqs = keys.map((k) => {
        let r = this.requests.get(k);
        if (!r) {
          r = buildCtGet(this.table.get(k)!, 0);
          this.requests.set(k, r);
        }
        return r;
      });
      const t0 = this.clock();
      let got: (CtEntry | null)[];
      try {
        got = getConntrack(this.sock, reqs);
      } catch {
        // the answers did not fit the receive queue: count the whole table instead
        return this.dump(ended, now);
      }
      this.getCost = 0.8 * this.getCost + (0.2 * (this.clock() - t0)) / keys.length;
      keys.forEach((k, i) => {
        const e = got[i];
        if (e) this.table.set(k, e);
        else {
          // gone without a destroy event yet (it comes later, with the final counters)
          this.table.delete(k);
          this.requests.delete(k);
        }
      });
    }
    return { entries: [...this.table.values()], ended, how: 'get' };
  }

  private dump(ended: CtEntry[], now: number): CtRefresh {
    const t0 = this.clock();
    const all = dumpConntrack(this.sock);
    this.dumpCost = 0.5 * this.dumpCost + 0.5 * (this.clock() - t0);
    this.lastDump = now;
    const live = new Set<string>();
    this.table.clear();
    for (const e of all) {
      const k = tupleOf(e);
      live.add(k);
      this.table.set(k, e);
    }
    for (const k of this.requests.keys()) if (!live.has(k)) this.requests.delete(k);
    return { entries: all, ended, how: 'dump' };
  }
}
