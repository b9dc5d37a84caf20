/**
 * The contract between a list's bytes and a rule's destinations. A reader (one per format,
 * in this directory) walks a list and hands each entry to a sink in the entry's own terms;
 * the collector (config/lists.ts) checks every value against the list grammar, deduplicates
 * and merges. Readers never throw on hostile input: a problem goes to the sink with its
 * place, and a reader stops at the first structural error of a binary format.
 */

/** the formats a list can be in; `format:` forces one, otherwise it is detected from content */
export const LIST_FORMATS = ['plain', 'dnsmasq', 'sing-box', 'srs', 'geosite', 'geoip'] as const;
export type ListFormat = (typeof LIST_FORMATS)[number];

/**
 * Where an entry or a problem is. Text formats: 1-based line and column. Binary formats
 * (`srs`, `geosite`, `geoip`): `offset`, the byte offset into the (decompressed, for srs)
 * stream, with line 1 and col offset+1 so `file:line:col` stays well-formed.
 */
export interface ListPlace {
  line: number;
  col: number;
  offset?: number;
}

/**
 * What an entry means:
 * - `domain`: the name and every name under it (sing-box `domain_suffix`, dnsmasq
 *   `server=/d/`, geosite `domain:`, our plain lines);
 * - `wildcard`: the names under it only (`*.d`; a sing-box suffix written `.d`);
 * - `full`: that exact name only (sing-box `domain`, geosite `full:`);
 * - `keyword`: any name containing the text (sing-box `domain_keyword`, geosite plain);
 * - `regex`: any name the regular expression matches (sing-box `domain_regex`, geosite
 *   `regexp:`), run in the linear-time engine (util/linear-regex.ts): one it cannot run is
 *   refused at its place;
 * - `address`: an address or prefix in text form (`203.0.113.0/24`, `2001:db8::1`).
 */
export type ListEntryKind = 'domain' | 'wildcard' | 'full' | 'keyword' | 'regex' | 'address';

export interface ListSink {
  /** one entry; the collector validates `value` and reports a bad one at `at` */
  entry(kind: ListEntryKind, value: string, at: ListPlace): void;
  /** something the reader could not take (a refused construct, a damaged structure) */
  problem(message: string, at: ListPlace, severity: 'error' | 'warning'): void;
}

export interface ReadOptions {
  /** geosite/geoip category (`ru-blocked`, `cn`), with an optional `@attribute` filter */
  category?: string | undefined;
  /** entries read at most: more is an error (a bomb or the wrong file), not a truncation */
  maxEntries: number;
}

export interface ListReader {
  format: ListFormat;
  /** does this content look like the format? (cheap: magic bytes or the first lines) */
  detect(bytes: Uint8Array): boolean;
  read(bytes: Uint8Array, sink: ListSink, opts: ReadOptions): void;
}
