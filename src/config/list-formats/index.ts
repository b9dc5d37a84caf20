/**
 * A list's bytes to a rule's destinations, whatever its format: the format is forced
 * (`format:`) or detected from the content by the readers in order, plain text last.
 */
import { collectList, parseDestinationBytes, type ParsedDestinations } from '../lists.js';
import type { ListFormat, ListReader } from './types.js';

export type { ListFormat } from './types.js';
export { LIST_FORMATS } from './types.js';

/** entries read at most from one list unless its `maxEntries` says otherwise */
export const DEFAULT_MAX_ENTRIES = 2_000_000;

/** the readers of the formats other than plain, in detection order */
const READERS: readonly ListReader[] = [];

export interface ListParseOptions {
  /** forced format; detected when absent */
  format?: ListFormat | undefined;
  /** geosite/geoip category */
  category?: string | undefined;
  /** dotted path of the config value that named the list (`rules[2].to.lists[0]`) */
  path?: string | undefined;
  maxEntries?: number | undefined;
  maxIssues?: number | undefined;
}

export interface ParsedList extends ParsedDestinations {
  format: ListFormat;
}

export function detectListFormat(bytes: Uint8Array): ListFormat {
  return READERS.find((r) => r.detect(bytes))?.format ?? 'plain';
}

/** Parse a list's content; `file` names it in issues (`file:line:col`). */
export function parseListBytes(
  bytes: Uint8Array,
  file: string,
  opts: ListParseOptions = {},
): ParsedList {
  const format = opts.format ?? detectListFormat(bytes);
  const reader = READERS.find((r) => r.format === format);
  if (format === 'plain' || !reader)
    return {
      format: 'plain',
      ...parseDestinationBytes(bytes, file, { path: opts.path, maxIssues: opts.maxIssues }),
    };
  const c = collectList(file, { path: opts.path, maxIssues: opts.maxIssues });
  reader.read(bytes, c.sink, {
    category: opts.category,
    maxEntries: opts.maxEntries ?? DEFAULT_MAX_ENTRIES,
  });
  return { format, ...c.finish() };
}
