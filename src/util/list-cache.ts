/**
 * The cache of lists fetched by URL (`to.lists: [{url}]`), in the state directory:
 * `<state>/lists/<key>.json` (what is known of the list: its source, when it was fetched and
 * checked, its validators, digest, size, entries and format, the last failure) and
 * `<key>-<digest16>.body` (the last good copy, decoded). `key` is the SHA-256 of the URL:
 * no part of a file name ever comes from the URL's text.
 *
 * Writes are crash-safe (util/files.ts: temporary file, fsync, rename; mode 0600 in a 0700
 * directory). A new copy is written under its own name first, then the record that names
 * it, then the old copy is removed: a crash at any point leaves the record naming a body
 * that is there (an orphan body is removed at the next write). A record that cannot be used
 * (not JSON, the wrong shape, another URL, a body that is missing or whose digest differs)
 * reads as no copy at all: the list is fetched again, never trusted half.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readRegularFileSync, writeFileAtomicSync } from './files.js';
import { isObject } from './shape.js';

/** the directory below the state directory */
export const LIST_CACHE_DIR = 'lists';
/** a record is a few hundred bytes; more is not ours */
const MAX_META = 64 * 1024;
/** the largest copy a list may have (schema-rules.ts maxBytes' maximum) */
export const MAX_LIST_BYTES = 268_435_456;

export interface ListCacheMeta {
  /** the record's layout */
  version: 1;
  url: string;
  /** when the copy held now was fetched (its content last changed) */
  fetchedAt: string;
  /** when the server last answered (200, or 304: the copy is current) */
  checkedAt: string;
  etag?: string;
  lastModified?: string;
  /** SHA-256 of the copy (decoded), hex */
  sha256: string;
  size: number;
  entries: number;
  /** the format it was read as (config/list-formats: plain, dnsmasq, sing-box, …) */
  format: string;
  /** the last fetch that failed since the last success (absent: none) */
  lastError?: { at: string; message: string };
  /** fetches that failed in a row since the last success */
  failures?: number;
}

export interface CachedList {
  meta: ListCacheMeta;
  bytes: Buffer;
}

/** the cache's key of a URL: its SHA-256, hex (the only part of a file name tied to it) */
export function listKey(url: string): string {
  return createHash('sha256').update(url, 'utf8').digest('hex');
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const str = (v: unknown): v is string => typeof v === 'string';
const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** the record's shape, checked field by field (a record from disk is never trusted as typed) */
export function isListCacheMeta(m: unknown): m is ListCacheMeta {
  if (!isObject(m) || m.version !== 1 || !str(m.url)) return false;
  if (!str(m.fetchedAt) || !ISO.test(m.fetchedAt) || !str(m.checkedAt) || !ISO.test(m.checkedAt))
    return false;
  if (!str(m.sha256) || !/^[0-9a-f]{64}$/.test(m.sha256)) return false;
  if (!count(m.size) || m.size > MAX_LIST_BYTES || !count(m.entries)) return false;
  if (!str(m.format) || !/^[a-z][a-z-]{0,15}$/.test(m.format)) return false;
  if (m.etag !== undefined && !str(m.etag)) return false;
  if (m.lastModified !== undefined && !str(m.lastModified)) return false;
  if (m.failures !== undefined && !count(m.failures)) return false;
  const e = m.lastError;
  return e === undefined || (isObject(e) && str(e.at) && str(e.message));
}

export class ListCache {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, LIST_CACHE_DIR);
  }

  private metaPath(url: string): string {
    return join(this.dir, `${listKey(url)}.json`);
  }

  private bodyPath(url: string, sha256: string): string {
    return join(this.dir, `${listKey(url)}-${sha256.slice(0, 16)}.body`);
  }

  /** the record of `url`; undefined when there is none or it is unusable */
  readMeta(url: string): ListCacheMeta | undefined {
    let text: string;
    try {
      text = readRegularFileSync(this.metaPath(url), {
        maxBytes: MAX_META,
        noFollow: true,
      }).toString('utf8');
    } catch {
      return undefined;
    }
    try {
      const m = JSON.parse(text) as unknown;
      return isListCacheMeta(m) && m.url === url ? m : undefined;
    } catch {
      return undefined;
    }
  }

  /** the last good copy of `url` with its record; undefined when there is none usable */
  read(url: string): CachedList | undefined {
    const meta = this.readMeta(url);
    if (!meta) return undefined;
    let bytes: Buffer;
    try {
      bytes = readRegularFileSync(this.bodyPath(url, meta.sha256), {
        maxBytes: meta.size,
        noFollow: true,
      });
    } catch {
      return undefined;
    }
    if (bytes.length !== meta.size || sha256Hex(bytes) !== meta.sha256) return undefined;
    return { meta, bytes };
  }

  /**
   * Keep `bytes` as the copy of `url` (fetched at `at`) with `fields`; the previous copy goes
   * once the record names the new one.
   */
  write(
    url: string,
    bytes: Uint8Array,
    fields: Pick<ListCacheMeta, 'entries' | 'format' | 'etag' | 'lastModified'>,
    at: string,
  ): ListCacheMeta {
    this.ensureDir();
    const sha256 = sha256Hex(bytes);
    const meta: ListCacheMeta = {
      version: 1,
      url,
      fetchedAt: at,
      checkedAt: at,
      ...(fields.etag !== undefined ? { etag: fields.etag } : {}),
      ...(fields.lastModified !== undefined ? { lastModified: fields.lastModified } : {}),
      sha256,
      size: bytes.length,
      entries: fields.entries,
      format: fields.format,
    };
    writeFileAtomicSync(this.bodyPath(url, sha256), bytes, { mode: 0o600 });
    this.writeMeta(meta);
    this.removeOtherBodies(url, sha256);
    return meta;
  }

  /** the server said the copy is current (304, or the same bytes again): checked now */
  touch(
    url: string,
    at: string,
    validators: Pick<ListCacheMeta, 'etag' | 'lastModified'> = {},
  ): ListCacheMeta | undefined {
    const had = this.readMeta(url);
    if (!had) return undefined;
    const { lastError: _e, failures: _f, ...rest } = had;
    const meta: ListCacheMeta = {
      ...rest,
      checkedAt: at,
      ...(validators.etag !== undefined ? { etag: validators.etag } : {}),
      ...(validators.lastModified !== undefined ? { lastModified: validators.lastModified } : {}),
    };
    this.writeMeta(meta);
    return meta;
  }

  /** a fetch failed: the record (when there is a copy) says so; the copy stays */
  recordFailure(url: string, at: string, message: string): ListCacheMeta | undefined {
    const had = this.readMeta(url);
    if (!had) return undefined;
    const meta: ListCacheMeta = {
      ...had,
      lastError: { at, message: message.slice(0, 500) },
      failures: (had.failures ?? 0) + 1,
    };
    this.writeMeta(meta);
    return meta;
  }

  /** the keys (records) held, for tests and housekeeping */
  keys(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => /^[0-9a-f]{64}\.json$/.test(f))
      .map((f) => f.slice(0, 64));
  }

  private writeMeta(meta: ListCacheMeta): void {
    this.ensureDir();
    writeFileAtomicSync(this.metaPath(meta.url), JSON.stringify(meta, null, 2) + '\n', {
      mode: 0o600,
    });
  }

  private ensureDir(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** the bodies of `url` but the one with digest `sha256` (older copies, orphans of a crash) */
  private removeOtherBodies(url: string, sha256: string): void {
    const key = listKey(url);
    const keep = `${key}-${sha256.slice(0, 16)}.body`;
    for (const f of readdirSync(this.dir))
      if (f.startsWith(`${key}-`) && f.endsWith('.body') && f !== keep)
        rmSync(join(this.dir, f), { force: true });
  }
}
