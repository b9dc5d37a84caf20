/**
 * A `to.lists` entry in one shape: a file (`path`, `{file}`) or a URL (`{url}`), with its
 * forced format and geosite/geoip category. The string form `FILE.dat:CATEGORY` selects a
 * category (`geosite.dat:ru-blocked`); any other string is a path as written.
 */
import type { ListRef } from './schema-rules.js';
import type { ListFormat } from './list-formats/types.js';

export interface FileListRef {
  kind: 'file';
  /** as written in the config (relative to the file that names it) */
  file: string;
  format?: ListFormat | undefined;
  category?: string | undefined;
}

export interface UrlListRef {
  kind: 'url';
  url: string;
  format?: ListFormat | undefined;
  category?: string | undefined;
  sha256?: string | undefined;
  refresh: string;
  via?: string | undefined;
  maxBytes: number;
  maxEntries: number;
}

export type NormalListRef = FileListRef | UrlListRef;

const DAT_CATEGORY = /^(.*\.dat):([A-Za-z0-9!_.-]+(?:@[A-Za-z0-9!_.-]+)?)$/;

export function normalListRef(ref: ListRef): NormalListRef {
  if (typeof ref === 'string') {
    const m = DAT_CATEGORY.exec(ref);
    return m ? { kind: 'file', file: m[1]!, category: m[2]! } : { kind: 'file', file: ref };
  }
  if ('file' in ref) return { kind: 'file', ...ref };
  return { kind: 'url', ...ref };
}

/** how a list is named in messages and status: its path or URL, with `:category` */
export function listRefLabel(ref: NormalListRef): string {
  const base = ref.kind === 'file' ? ref.file : ref.url;
  return ref.category ? `${base}:${ref.category}` : base;
}
