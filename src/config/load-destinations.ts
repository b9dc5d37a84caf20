/**
 * Every rule's destinations (config/load.ts runs this once the config is valid): inline
 * values, list files and lists by URL, read and parsed. A list is read once however many
 * rules name it.
 *
 * Files: read here (LoadOptions.readList); bad lines are issues at `list:line:col`, a missing
 * or unreadable file an issue at the `to.lists[j]` value that names it.
 *
 * URLs: never fetched here. Their last good copy comes from the caller (LoadOptions.urlList:
 * the cache in the state directory, util/list-cache.ts), parsed like a file and named by its
 * URL in messages. Without a copy (not fetched yet, or the loader was given no cache) the list
 * contributes nothing and the load says so in a warning: a rule whose destinations are all
 * such lists fits nothing until one arrives, and the rest of the config applies as usual. A
 * copy that no longer parses, or holds more than `maxEntries`, is treated the same way
 * (warnings, never errors: what a server serves must never fail the whole config).
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Issue } from '../errors.js';
import { FileRefusedError, LIMITS, readRegularFileSync } from '../util/files.js';
import { listRefLabel, normalListRef, type UrlListRef } from './list-ref.js';
import type { ListFormat } from './list-formats/types.js';
import { parseListBytes, type ParsedList } from './list-formats/index.js';
import { parseEdited } from './list-increment.js';
import {
  destinationLimits,
  mergeDestinations,
  parseInlineDestinations,
  type DestinationSet,
} from './lists.js';
import type { MergedPositions } from './overlay.js';
import { formatPath, lineCol, type PathKey } from './positions.js';
import type { Config } from './schema.js';

/** a URL list's last good copy, as the caller hands it to the loader */
export interface UrlListCopy {
  bytes: Uint8Array;
  fetchedAt: string;
  checkedAt: string;
  /** the last fetch failed since this copy (the copy stays in use: `stale`) */
  lastError?: { at: string; message: string } | undefined;
}

/** the copy of a URL list (undefined: none yet) */
export type UrlListSource = (url: string) => UrlListCopy | undefined;

/**
 * What a load made of one URL list: `ok` (a copy is in use), `stale` (a copy is in use, the
 * last fetch failed), `pending` (no usable copy: the list contributes nothing).
 */
export interface UrlListLoad {
  ref: UrlListRef;
  /** the URL (with `:category`), as messages name it */
  label: string;
  /** the rules that name it: index, name (`rule-<index>` when unnamed), dotted path of the entry */
  rules: { index: number; name: string; path: string }[];
  state: 'ok' | 'stale' | 'pending';
  format?: ListFormat;
  entries?: number;
  fetchedAt?: string;
  checkedAt?: string;
  /** pending: why there is no copy in use; stale: the last fetch's failure */
  error?: string;
}

/**
 * Parses of list files kept from an earlier process (config/parsed-lists.ts: in the state
 * directory). The loader asks before parsing a file and offers each parse it made; what it
 * gets back is only ever the parse of the same bytes (config/list-snapshot.ts).
 */
export interface ParsedListStore {
  /** the parse of `bytes`, read from `file` with `o`, when one was kept and passes its checks */
  get(file: string, o: ListReadOptions, bytes: Uint8Array): ParsedList | undefined;
  /** keep a parse for the next process (one with issues is not kept) */
  put(file: string, o: ListReadOptions, bytes: Uint8Array, parsed: ParsedList): void;
  /**
   * the last parse kept for `file` read with `o`, whatever its bytes now, with the bytes it is
   * the parse of (when both were kept and pass their checks): the start of an edit's parse
   * (list-increment.ts)
   */
  base?(file: string, o: ListReadOptions): { bytes: Uint8Array; parsed: ParsedList } | undefined;
}

/** what, besides its bytes, a list's parse depends on */
export interface ListReadOptions {
  format?: ListFormat | undefined;
  category?: string | undefined;
}

export interface DestinationLoadOptions {
  /** read a `to.lists` file (default: a regular file of at most LIMITS.list bytes) */
  readList?: ((path: string) => string | Uint8Array) | undefined;
  /** parses of list files kept from earlier (absent: every list is parsed) */
  parsedLists?: ParsedListStore | undefined;
  /** the last good copy of a URL list (absent: none is read; every URL list is pending) */
  urlList?: UrlListSource | undefined;
}

export interface DestinationLoad {
  destinations: Map<string, DestinationSet>;
  /** the list files read (absolute paths), for watchers */
  files: string[];
  urlLists: UrlListLoad[];
  issues: Issue[];
}

/** The path a `to.lists` entry names: relative paths resolve against the file that names it. */
export function listFilePath(list: string, namingFile: string): string {
  return isAbsolute(list) ? list : resolve(dirname(namingFile), list);
}

function readProblem(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return e instanceof FileRefusedError
    ? `not read: the file is ${e.reason}`
    : code === 'ENOENT'
      ? 'file not found'
      : `cannot read: ${(e as Error).message}`;
}

/** what a pending list's warning asks for */
export const NOT_FETCHED = 'not fetched yet: run `awg lists update` or start the daemon';

export function loadDestinations(
  config: Config,
  positions: MergedPositions,
  opts: DestinationLoadOptions,
): DestinationLoad {
  const read = opts.readList ?? ((p: string) => readRegularFileSync(p, { maxBytes: LIMITS.list }));
  const destinations = new Map<string, DestinationSet>();
  const issues: Issue[] = [];
  // a list (a file with its format and category) is read once however many rules name it
  const cache = new Map<string, DestinationSet | undefined>();
  const files = new Set<string>();
  const urls = new Map<string, { load: UrlListLoad; set?: DestinationSet; warnings?: Issue[] }>();
  config.rules.forEach((r, i) => {
    if (!r.to) return;
    const name = r.name ?? `rule-${i}`;
    const sets: DestinationSet[] = [];
    const urlSets: DestinationSet[] = [];
    for (const kind of ['domains', 'cidrs'] as const) {
      const values = r.to[kind];
      if (values) sets.push(parseInlineDestinations(values, kind, '', '').set);
    }
    let pending = 0;
    (r.to.lists ?? []).forEach((entry, j) => {
      const ref = normalListRef(entry);
      const path: PathKey[] = ['rules', i, 'to', 'lists', j];
      const at = positions.locate(path);
      const issueAt = (message: string, severity: Issue['severity']): Issue => ({
        file: at.file,
        ...lineCol(at),
        path: formatPath(path),
        message,
        severity,
      });
      if (ref.kind === 'url') {
        const key = `${ref.url}\n${ref.format ?? ''}\n${ref.category ?? ''}`;
        let u = urls.get(key);
        if (!u) {
          u = loadUrlList(ref, formatPath(path), opts.urlList);
          urls.set(key, u);
          issues.push(...(u.warnings ?? []));
          if (u.load.state === 'pending')
            issues.push(issueAt(`list ${u.load.label}: ${u.load.error}`, 'warning'));
          else if (u.load.state === 'stale')
            issues.push(
              issueAt(
                `list ${u.load.label}: the last fetch failed (${u.load.error}); the copy of ${u.load.fetchedAt} stays in use`,
                'warning',
              ),
            );
        }
        u.load.rules.push({ index: i, name, path: formatPath(path) });
        if (u.set) urlSets.push(u.set);
        else pending++;
        return;
      }
      const file = listFilePath(ref.file, at.file);
      // one file read as two categories (geosite.dat:a, geosite.dat:b) is two lists
      const key = `${file}\0${ref.format ?? ''}\0${ref.category ?? ''}`;
      files.add(file);
      if (cache.has(key)) {
        const cached = cache.get(key);
        if (cached) sets.push(cached);
        return;
      }
      let bytes: Uint8Array;
      try {
        const got = read(file);
        bytes = typeof got === 'string' ? Buffer.from(got) : got;
      } catch (e) {
        cache.set(key, undefined);
        issues.push(issueAt(`list ${file}: ${readProblem(e)}`, 'error'));
        return;
      }
      const how = { format: ref.format, category: ref.category };
      let parsed = opts.parsedLists?.get(file, how, bytes);
      if (!parsed) {
        const o = { path: formatPath(path), ...how };
        // lines of addresses inserted, removed or replaced since the last parse kept: that
        // parse, with the change made in it
        const base = opts.parsedLists?.base?.(file, how);
        parsed =
          (base && parseEdited(base.parsed, base.bytes, bytes, file, o)) ??
          parseListBytes(bytes, file, o);
        opts.parsedLists?.put(file, how, bytes, parsed);
      }
      issues.push(...parsed.issues);
      cache.set(key, parsed.set);
      sets.push(parsed.set);
    });
    const toAt = positions.locate(['rules', i, 'to']);
    const ruleIssue = (message: string, severity: Issue['severity']): Issue => ({
      file: toAt.file,
      ...lineCol(toAt),
      path: formatPath(['rules', i, 'to']),
      message,
      severity,
    });
    // each list stays under the keyword/regex caps on its own; their union may not: what the
    // config itself holds is an error, what lists by URL add is left out (a warning)
    let merged = mergeDestinations(sets);
    const over = destinationLimits(merged);
    if (over) issues.push(ruleIssue(over, 'error'));
    else if (urlSets.length) {
      const all = mergeDestinations([...sets, ...urlSets]);
      const urlOver = destinationLimits(all);
      if (urlOver) {
        issues.push(ruleIssue(`${urlOver}; its lists by URL are left out`, 'warning'));
        pending += urlSets.length;
      } else merged = all;
    }
    // a list without a copy and nothing else to fit: the rule fits nothing yet
    if (pending > 0 && !hasAny(merged))
      issues.push(
        ruleIssue(
          `rule ${name} is inactive (matches no destination) until its lists are fetched`,
          'warning',
        ),
      );
    destinations.set(name, merged);
  });
  return {
    destinations,
    files: [...files],
    urlLists: [...urls.values()].map((u) => u.load),
    issues,
  };
}

/** one URL list from its copy: parsed (a copy that does not parse or is too long: pending) */
function loadUrlList(
  ref: UrlListRef,
  path: string,
  source: UrlListSource | undefined,
): { load: UrlListLoad; set?: DestinationSet; warnings?: Issue[] } {
  const label = listRefLabel(ref);
  const base = { ref, label, rules: [] };
  const copy = source?.(ref.url);
  if (!copy) return { load: { ...base, state: 'pending', error: NOT_FETCHED } };
  const parsed = parseListBytes(copy.bytes, ref.url, {
    path,
    format: ref.format,
    category: ref.category,
    maxEntries: ref.maxEntries,
  });
  const times = { fetchedAt: copy.fetchedAt, checkedAt: copy.checkedAt };
  const errors = parsed.issues.filter((x) => x.severity === 'error');
  const why = errors.length
    ? `its cached copy does not parse (${errors.length} error${errors.length === 1 ? '' : 's'}, first: ${errors[0]!.line ?? 1}:${errors[0]!.col ?? 1}: ${errors[0]!.message}); it is fetched again`
    : parsed.set.counts.entries > ref.maxEntries
      ? `its cached copy holds ${parsed.set.counts.entries} entries, more than maxEntries ${ref.maxEntries}; it is fetched again`
      : undefined;
  if (why)
    return { load: { ...base, state: 'pending', format: parsed.format, ...times, error: why } };
  return {
    load: {
      ...base,
      state: copy.lastError ? 'stale' : 'ok',
      format: parsed.format,
      entries: parsed.set.counts.entries,
      ...times,
      ...(copy.lastError ? { error: copy.lastError.message } : {}),
    },
    set: parsed.set,
    warnings: parsed.issues,
  };
}

/** the set holds some destination */
function hasAny(d: DestinationSet): boolean {
  return d.v4.length + d.v6.length + d.domains.size > 0;
}
