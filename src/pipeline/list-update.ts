/**
 * Bring one URL list's cached copy up to date (the daemon's refresh, `awg lists update`):
 * a conditional GET (util/list-fetch.ts), then the checks a new copy passes before it
 * replaces the one in use: the `sha256` pin, the parse (config/list-formats: no errors) and
 * `maxEntries`. A copy that fails one is refused and the last good copy stays, its record
 * noting the failure (`stale`); a failure never empties a list. Content the server sends
 * again unchanged (no validators, same bytes) only marks the copy checked.
 */
import type { UrlListRef } from '../config/list-ref.js';
import { parseListBytes } from '../config/list-formats/index.js';
import type { UrlListLoad, UrlListSource } from '../config/load-destinations.js';
import type { PlanListDoc } from '../model/plan-document.js';
import { ListCache, sha256Hex, type ListCacheMeta } from '../util/list-cache.js';
import { fetchList, redactUrl, type Connector } from '../util/list-fetch.js';

export type ListUpdateResult = 'fetched' | 'not-modified' | 'failed';

export interface ListUpdateOutcome {
  url: string;
  result: ListUpdateResult;
  /** the copy in use changed (a wake for the loop) */
  changed: boolean;
  /** the record of the copy in use after the update (absent: there is none) */
  meta?: ListCacheMeta | undefined;
  /** failed: why (the last good copy, if any, stays) */
  error?: string;
  /** failed because the server's copy was refused (pin, parse, maxEntries), not unreachable */
  refused?: boolean;
}

export interface ListUpdateOptions {
  /** how to reach the server (default: directly) */
  connect?: Connector | undefined;
  now?: (() => Date) | undefined;
  /** extra CA certificates (tests) */
  ca?: string | Buffer | undefined;
  deadlineMs?: number | undefined;
  idleMs?: number | undefined;
}

class Refused extends Error {}

export async function updateList(
  ref: UrlListRef,
  cache: ListCache,
  o: ListUpdateOptions = {},
): Promise<ListUpdateOutcome> {
  const at = () => (o.now?.() ?? new Date()).toISOString();
  const had = cache.read(ref.url);
  try {
    const r = await fetchList({
      url: ref.url,
      maxBytes: ref.maxBytes,
      ...(had?.meta.etag ? { etag: had.meta.etag } : {}),
      ...(had?.meta.lastModified ? { lastModified: had.meta.lastModified } : {}),
      connect: o.connect,
      ca: o.ca,
      deadlineMs: o.deadlineMs,
      idleMs: o.idleMs,
    });
    const validators = {
      ...(r.etag ? { etag: r.etag } : {}),
      ...(r.lastModified ? { lastModified: r.lastModified } : {}),
    };
    if (r.kind === 'not-modified' && had) {
      const meta = cache.touch(ref.url, at(), validators);
      return { url: ref.url, result: 'not-modified', changed: false, meta };
    }
    if (r.kind === 'not-modified') throw new Error('HTTP 304 without a copy to keep');
    const sha = sha256Hex(r.bytes);
    if (ref.sha256 && sha !== ref.sha256.toLowerCase())
      throw new Refused(
        `the fetched copy's SHA-256 ${sha} is not the pinned ${ref.sha256.toLowerCase()}`,
      );
    if (had && had.meta.sha256 === sha) {
      const meta = cache.touch(ref.url, at(), validators);
      return { url: ref.url, result: 'not-modified', changed: false, meta };
    }
    const parsed = parseListBytes(r.bytes, ref.url, {
      format: ref.format,
      category: ref.category,
      maxEntries: ref.maxEntries,
    });
    const errors = parsed.issues.filter((i) => i.severity === 'error');
    if (errors.length)
      throw new Refused(
        `the fetched copy does not parse as ${ref.format ?? parsed.format} (${errors.length} error${errors.length === 1 ? '' : 's'}; first at ${errors[0]!.line ?? 1}:${errors[0]!.col ?? 1}: ${errors[0]!.message})`,
      );
    if (parsed.set.counts.entries > ref.maxEntries)
      throw new Refused(
        `the fetched copy holds ${parsed.set.counts.entries} entries, more than maxEntries ${ref.maxEntries}`,
      );
    const meta = cache.write(
      ref.url,
      r.bytes,
      { entries: parsed.set.counts.entries, format: parsed.format, ...validators },
      at(),
    );
    return { url: ref.url, result: 'fetched', changed: true, meta };
  } catch (e) {
    const message = ((e as Error).message || String(e)).replaceAll(ref.url, redactUrl(ref.url));
    let meta: ListCacheMeta | undefined;
    try {
      meta = cache.recordFailure(ref.url, at(), message);
    } catch {
      meta = had?.meta;
    }
    return {
      url: ref.url,
      result: 'failed',
      changed: false,
      meta,
      error: message,
      ...(e instanceof Refused ? { refused: true } : {}),
    };
  }
}

/** the loader's view of the cache in state directory `stateDir` (reads only) */
export function cacheSourceIn(stateDir: string): UrlListSource {
  return cacheSource(new ListCache(stateDir));
}

/** the loader's view of the cache (config/load-destinations.ts UrlListSource) */
export function cacheSource(cache: ListCache): UrlListSource {
  return (url) => {
    let c;
    try {
      c = cache.read(url);
    } catch {
      return undefined;
    }
    if (!c) return undefined;
    return {
      bytes: c.bytes,
      fetchedAt: c.meta.fetchedAt,
      checkedAt: c.meta.checkedAt,
      ...(c.meta.lastError ? { lastError: c.meta.lastError } : {}),
    };
  };
}

/** how a list is named in status, metrics and events: its URL without credentials or query */
export function listDisplayName(ref: Pick<UrlListRef, 'url' | 'category'>): string {
  return `${redactUrl(ref.url)}${ref.category ? `:${ref.category}` : ''}`;
}

/** a plan's lists: the copy each URL list of the config was read with (PlanDocument.lists) */
export function planLists(p: { urlLists?: readonly UrlListLoad[] | undefined }): PlanListDoc[] {
  return (p.urlLists ?? []).map((l) => ({
    list: listDisplayName(l.ref),
    rules: l.rules.map((r) => r.name),
    state: l.state,
    ...(l.format !== undefined ? { format: l.format } : {}),
    ...(l.entries !== undefined ? { entries: l.entries } : {}),
    ...(l.fetchedAt !== undefined ? { fetchedAt: l.fetchedAt } : {}),
    ...(l.checkedAt !== undefined ? { checkedAt: l.checkedAt } : {}),
    ...(l.error !== undefined ? { error: l.error } : {}),
  }));
}
