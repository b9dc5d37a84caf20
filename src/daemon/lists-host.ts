/**
 * The daemon's lists by URL: the cache in its state directory (util/list-cache.ts), what the
 * config reader takes from it (the last good copies: pipeline/list-update.ts cacheSource),
 * the refresh scheduler (list-refresh.ts) and how a list's fetch goes out: directly, or
 * through the tunnel its `via` names (resources/engine/via.ts: bound to the tunnel's link,
 * or through the running proxy tunnel's upstream). The daemon hands it each config it runs
 * (follow) and asks it for the status's lists, a plan's lists and `awg lists update`.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UrlListRef } from '../config/list-ref.js';
import type { UrlListSource } from '../config/load-destinations.js';
import type { Prepared } from '../pipeline/prepare.js';
import { cacheSource, updateList, type ListUpdateOutcome } from '../pipeline/list-update.js';

export { planLists } from '../pipeline/list-update.js';
import { viaConnector, viaRouteOf, type ViaDialer } from '../resources/engine/via.js';
import type { LinkPinOf } from '../resources/engine/link-pin.js';
import { ListCache } from '../util/list-cache.js';
import type { Timer } from './confirm.js';
import type { DaemonEvent, UpdateListsResponse, UrlListStatus } from './core.js';
import { ListRefresher } from './list-refresh.js';

export interface ListsHostOptions {
  /** the state directory (`:memory:`: a directory of this process under the temp dir) */
  stateDir: string;
  emit(e: DaemonEvent): void;
  /** a copy changed: wake the loop (`lists`) */
  wake(): void;
  /** the config followed now (its engines and secrets: the routes of `via`) */
  current(): Pick<Prepared, 'desired' | 'config' | 'secrets'> | undefined;
  /** a running proxy tunnel's upstream */
  proxyDialer(tunnel: string): ViaDialer | undefined;
  /** how a fetch holds to a tunnel's link on this platform (undefined: Linux's, SO_BINDTODEVICE) */
  linkPin?: (() => LinkPinOf | undefined) | undefined;
  /** tests: the fetch of one list, the clock and the timers */
  fetch?: ((ref: UrlListRef, cache: ListCache) => Promise<ListUpdateOutcome>) | undefined;
  now?: (() => number) | undefined;
  timer?: Timer | undefined;
}

export class ListsHost {
  readonly cache: ListCache;
  /** what the config reader takes: each URL list's last good copy */
  readonly source: UrlListSource;
  private readonly refresher: ListRefresher;

  constructor(private readonly o: ListsHostOptions) {
    this.cache = new ListCache(
      o.stateDir === ':memory:' ? join(tmpdir(), `awg-lists-${process.pid}`) : o.stateDir,
    );
    this.source = cacheSource(this.cache);
    this.refresher = new ListRefresher({
      cache: this.cache,
      fetch: (ref) => (o.fetch ? o.fetch(ref, this.cache) : this.fetch(ref)),
      wake: o.wake,
      emit: o.emit,
      now: o.now,
      timer: o.timer,
    });
  }

  /** the lists of the config the daemon runs now (none: nothing is refreshed) */
  follow(p: Pick<Prepared, 'urlLists'> | undefined): void {
    this.refresher.follow(p?.urlLists);
  }

  status(): UrlListStatus[] {
    return this.refresher.status();
  }

  async update(req: { list?: string | undefined }): Promise<UpdateListsResponse> {
    const done = await this.refresher.update(req.list);
    const at = new Date(this.o.now?.() ?? Date.now()).toISOString();
    return {
      results: done.map(({ name, outcome: r }) => ({
        type: 'list' as const,
        at,
        list: name,
        result: r.result,
        ...(r.meta ? { entries: r.meta.entries } : {}),
        ...(r.error ? { error: r.error } : {}),
        ...(r.refused ? { refused: true } : {}),
      })),
      lists: this.status(),
    };
  }

  close(): void {
    this.refresher.close();
  }

  private async fetch(ref: UrlListRef): Promise<ListUpdateOutcome> {
    const p = ref.via !== undefined ? this.o.current() : undefined;
    if (ref.via !== undefined && !p)
      return { url: ref.url, result: 'failed', changed: false, error: 'no config runs' };
    const connect = p
      ? viaConnector(
          await viaRouteOf(ref.via!, {
            desired: p.desired,
            config: p.config,
            proxyDialer: (t) => this.o.proxyDialer(t),
            secret: (k) => p.secrets.get(k),
          }),
          this.o.linkPin?.(),
        )
      : undefined;
    return updateList(ref, this.cache, { connect });
  }
}
