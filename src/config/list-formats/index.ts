/**
 * A list's bytes to a rule's destinations, whatever its format: the format is forced
 * (`format:`) or detected from the content by the readers in order, plain text last.
 *
 * Detection order (docs/lists.md): magic bytes first (`SRS`: a sing-box binary rule-set),
 * then the v2ray `.dat` structure (no magic: a probe of the first entries tells geosite from
 * geoip), then JSON (a sing-box source rule-set), then dnsmasq lines (`server=/…/` and the
 * like); anything else is a plain list. A category (`FILE.dat:CATEGORY`, `category:`) means a
 * `.dat`: only geosite and geoip are tried, and a file that is neither is refused at the byte
 * where the probe stopped.
 */
import { collectList, parseDestinationBytes, type ParsedDestinations } from '../lists.js';
import { dnsmasqReader } from './dnsmasq.js';
import { probeDat } from './geodat.js';
import { geoipReader } from './geoip.js';
import { geositeReader } from './geosite.js';
import { bytePlace } from './reading.js';
import { singBoxReader } from './sing-box.js';
import { srsReader } from './srs.js';
import type { ListFormat, ListReader } from './types.js';

export type { ListFormat } from './types.js';
export { LIST_FORMATS } from './types.js';

/** entries read at most from one list unless its `maxEntries` says otherwise */
export const DEFAULT_MAX_ENTRIES = 2_000_000;

/** the readers of the formats other than plain, in detection order */
const READERS: readonly ListReader[] = [
  srsReader,
  geositeReader,
  geoipReader,
  singBoxReader,
  dnsmasqReader,
];

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

/** a NUL, or more than a few other control bytes, near the start: not a text list */
function binary(bytes: Uint8Array): boolean {
  let controls = 0;
  for (const c of bytes.subarray(0, 8192)) {
    if (c === 0) return true;
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && ++controls > 4) return true;
  }
  return false;
}

/**
 * parseListBytes reads `bytes` with these options as a plain list (parseDestinationBytes: line
 * by line), neither refusing them nor handing them to another format's reader
 */
export function readsAsPlain(
  bytes: Uint8Array,
  opts: { format?: ListFormat | undefined; category?: string | undefined },
): boolean {
  if (opts.category !== undefined) return false;
  if (opts.format !== undefined) return opts.format === 'plain';
  return detectListFormat(bytes) === 'plain' && !binary(bytes);
}

/** a list that could not be read at all: one error at its place */
function refused(
  file: string,
  opts: ListParseOptions,
  format: ListFormat,
  message: string,
  offset: number,
): ParsedList {
  const c = collectList(file, { path: opts.path, maxIssues: opts.maxIssues });
  c.sink.problem(message, bytePlace(offset), 'error');
  return { format, ...c.finish() };
}

/** Parse a list's content; `file` names it in issues (`file:line:col`). */
export function parseListBytes(
  bytes: Uint8Array,
  file: string,
  opts: ListParseOptions = {},
): ParsedList {
  let format = opts.format;
  const category = opts.category;
  if (category !== undefined && format !== undefined && format !== 'geosite' && format !== 'geoip')
    return refused(
      file,
      opts,
      format,
      `a category (:${category}) is for geosite and geoip lists; this one is ${format}`,
      0,
    );
  if (format === undefined && category !== undefined) {
    const p = probeDat(bytes);
    if (!('kind' in p))
      return refused(
        file,
        opts,
        'geosite',
        `names a category (:${category}), but is not a v2ray geosite or geoip .dat file: ${p.why} (byte ${p.offset})`,
        p.offset,
      );
    format = p.kind;
  }
  format ??= detectListFormat(bytes);
  const reader = READERS.find((r) => r.format === format);
  if (format === 'plain' || !reader) {
    if (opts.format === undefined && binary(bytes))
      return refused(
        file,
        opts,
        'plain',
        'binary content in none of the list formats (plain, dnsmasq, sing-box, srs, geosite, geoip); a damaged .dat? name its format (format:) or category (FILE.dat:CATEGORY)',
        0,
      );
    return {
      format: 'plain',
      ...parseDestinationBytes(bytes, file, { path: opts.path, maxIssues: opts.maxIssues }),
    };
  }
  const c = collectList(file, { path: opts.path, maxIssues: opts.maxIssues });
  reader.read(bytes, c.sink, {
    category,
    maxEntries: opts.maxEntries ?? DEFAULT_MAX_ENTRIES,
  });
  return { format, ...c.finish() };
}
