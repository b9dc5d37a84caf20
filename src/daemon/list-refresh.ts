/**
 * The refresh of lists by URL (`to.lists: [{url, refresh}]`): the daemon keeps each list of
 * the config it follows fresh in the state directory's cache (util/list-cache.ts), one timer
 * per list:
 * - a list with no copy, or a copy not confirmed for longer than its `refresh`, is fetched
 *   at once (at start, after a config change that adds it); otherwise when its refresh
 *   interval since the last check has passed, with up to 10% jitter so lists and hosts do
 *   not all ask at the same second;
 * - a failed fetch is retried with backoff (30 s doubling, at most the refresh interval);
 *   the last good copy stays in use (`stale`), and so does an empty list (`pending`);
 * - a new copy wakes the loop (`lists`), which reads the config again: the loader takes the
 *   copy (pipeline/list-update.ts cacheSource) and the run applies the difference (the
 *   static sets change in place: resources/firewall/set-contents.ts).
 * Each fetch is an event (`list`); the status lists every list with its state.
 * `update()` fetches now, whatever the timers say (`awg lists update` through the API).
 */
import type { UrlListRef } from '../config/list-ref.js';
import type { UrlListLoad } from '../config/load.js';
import { parseDuration } from '../config/duration.js';
import { listDisplayName, type ListUpdateOutcome } from '../pipeline/list-update.js';
import type { ListCache, ListCacheMeta } from '../util/list-cache.js';
import type { DaemonEvent, UrlListStatus } from './core.js';
import type { Timer } from './confirm.js';

/** the first retry after a failure; doubled per failure, at most the refresh interval */
export const RETRY_BASE_MS = 30_000;
/** a timer longer than this is set in steps (setTimeout's range, and clock changes) */
const MAX_TIMER_MS = 3_600_000;

export interface ListRefreshOptions {
  cache: Pick<ListCache, 'readMeta'>;
  /** fetch one list into the cache (pipeline/list-update.ts updateList, with its route) */
  fetch(ref: UrlListRef): Promise<ListUpdateOutcome>;
  /** a copy changed: the loop reads the config again */
  wake(): void;
  emit(e: DaemonEvent): void;
  now?: (() => number) | undefined;
  timer?: Timer | undefined;
  /** 0 ≤ x < 1 (jitter) */
  random?: (() => number) | undefined;
}

interface Entry {
  ref: UrlListRef;
  name: string;
  rules: string[];
  intervalMs: number;
  cancel?: (() => void) | undefined;
  nextAt?: number | undefined;
  running?: Promise<ListUpdateOutcome> | undefined;
  /** failures in a row since the last success, and since the daemon started */
  failures: number;
  failuresTotal: number;
  lastError?: string | undefined;
}

const defaultTimer: Timer = (ms, fn) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return () => clearTimeout(t);
};

const iso = (ms: number) => new Date(ms).toISOString();

export class ListRefresher {
  private readonly lists = new Map<string, Entry>();
  private closed = false;
  private readonly now: () => number;
  private readonly timer: Timer;
  private readonly random: () => number;

  constructor(private readonly o: ListRefreshOptions) {
    this.now = o.now ?? Date.now;
    this.timer = o.timer ?? defaultTimer;
    this.random = o.random ?? Math.random;
  }

  /** Keep these lists fresh (the URL lists of the config read last); others are dropped. */
  follow(loads: readonly UrlListLoad[] | undefined): void {
    if (this.closed) return;
    const seen = new Set<string>();
    for (const l of loads ?? []) {
      const key = l.ref.url;
      if (seen.has(key)) {
        this.lists.get(key)!.rules.push(...l.rules.map((r) => r.name));
        continue;
      }
      seen.add(key);
      const intervalMs = Math.max(60_000, parseDuration(l.ref.refresh) ?? 6 * 3_600_000);
      const had = this.lists.get(key);
      if (had) {
        const moved = had.intervalMs !== intervalMs || had.ref.via !== l.ref.via;
        Object.assign(had, { ref: l.ref, rules: l.rules.map((r) => r.name), intervalMs });
        if (moved && !had.running) this.schedule(had);
        continue;
      }
      const e: Entry = {
        ref: l.ref,
        name: listDisplayName(l.ref),
        rules: l.rules.map((r) => r.name),
        intervalMs,
        failures: 0,
        failuresTotal: 0,
      };
      this.lists.set(key, e);
      this.schedule(e);
    }
    for (const [key, e] of this.lists)
      if (!seen.has(key)) {
        e.cancel?.();
        this.lists.delete(key);
      }
  }

  /**
   * Fetch now: every list, or those whose URL or name is `which`; resolves with each one's
   * outcome once all are done (a fetch already under way is joined, not doubled).
   */
  async update(
    which?: string,
  ): Promise<{ name: string; outcome: ListUpdateOutcome; status: UrlListStatus }[]> {
    const pick = [...this.lists.values()].filter(
      (e) => which === undefined || e.ref.url === which || e.name === which,
    );
    const done = await Promise.all(pick.map((e) => this.run(e)));
    return pick.map((e, i) => ({ name: e.name, outcome: done[i]!, status: this.statusOf(e) }));
  }

  /** what the status says of each list */
  status(): UrlListStatus[] {
    return [...this.lists.values()].map((e) => this.statusOf(e));
  }

  /** the lists followed (by URL) */
  get urls(): string[] {
    return [...this.lists.keys()];
  }

  close(): void {
    this.closed = true;
    for (const e of this.lists.values()) e.cancel?.();
    this.lists.clear();
  }

  private meta(e: Entry): ListCacheMeta | undefined {
    try {
      return this.o.cache.readMeta(e.ref.url);
    } catch {
      return undefined;
    }
  }

  private statusOf(e: Entry): UrlListStatus {
    const m = this.meta(e);
    const error = e.lastError ?? m?.lastError?.message;
    const checked = m ? Date.parse(m.checkedAt) : NaN;
    return {
      list: e.name,
      rules: [...e.rules],
      state: !m ? 'pending' : error ? 'stale' : 'ok',
      ...(m ? { format: m.format, entries: m.entries, fetchedAt: m.fetchedAt } : {}),
      ...(m ? { checkedAt: m.checkedAt } : {}),
      ...(Number.isFinite(checked)
        ? { ageSec: Math.max(0, Math.round((this.now() - checked) / 1000)) }
        : {}),
      ...(error ? { error } : {}),
      failures: e.failures,
      failuresTotal: e.failuresTotal,
      ...(e.nextAt !== undefined ? { nextCheckAt: iso(e.nextAt) } : {}),
      refresh: e.ref.refresh,
      ...(e.ref.via !== undefined ? { via: e.ref.via } : {}),
    };
  }

  /** set the list's timer: now when it has no copy or its copy is overdue, else when due */
  private schedule(e: Entry, afterMs?: number): void {
    e.cancel?.();
    e.cancel = undefined;
    if (this.closed || !this.lists.has(e.ref.url)) return;
    let delay = afterMs;
    if (delay === undefined) {
      const m = this.meta(e);
      const checked = m ? Date.parse(m.checkedAt) : NaN;
      const due = Number.isFinite(checked) ? checked + e.intervalMs : this.now();
      delay = Math.max(0, due - this.now());
      if (delay > 0) delay += Math.floor(this.random() * e.intervalMs * 0.1);
    }
    e.nextAt = this.now() + delay;
    const step = Math.min(delay, MAX_TIMER_MS);
    e.cancel = this.timer(step, () => {
      e.cancel = undefined;
      if (step < delay) return this.schedule(e, Math.max(0, e.nextAt! - this.now()));
      void this.run(e);
    });
  }

  private run(e: Entry): Promise<ListUpdateOutcome> {
    if (e.running) return e.running;
    e.cancel?.();
    e.cancel = undefined;
    e.nextAt = undefined;
    const p = this.fetchOnce(e);
    e.running = p;
    return p;
  }

  private async fetchOnce(e: Entry): Promise<ListUpdateOutcome> {
    let out: ListUpdateOutcome;
    try {
      out = await this.o.fetch(e.ref);
    } catch (err) {
      out = { url: e.ref.url, result: 'failed', changed: false, error: (err as Error).message };
    }
    // done before anyone hears of it: a fetch asked for from here on is a new one
    e.running = undefined;
    if (this.closed || this.lists.get(e.ref.url) !== e) return out;
    const at = iso(this.now());
    if (out.result === 'failed') {
      e.failures++;
      e.failuresTotal++;
      e.lastError = out.error ?? 'failed';
      const backoff = Math.min(e.intervalMs, RETRY_BASE_MS * 2 ** Math.min(e.failures - 1, 20));
      this.schedule(e, backoff + Math.floor(this.random() * backoff * 0.1));
    } else {
      e.failures = 0;
      e.lastError = undefined;
      this.schedule(e);
    }
    const entries = out.meta?.entries;
    this.o.emit({
      type: 'list',
      at,
      list: e.name,
      result: out.result,
      ...(entries !== undefined ? { entries } : {}),
      ...(out.error ? { error: out.error } : {}),
      ...(out.refused ? { refused: true } : {}),
    });
    if (out.changed) this.o.wake();
    return out;
  }
}
