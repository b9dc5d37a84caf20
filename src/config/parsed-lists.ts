/**
 * Parses of list files, kept in the state directory for the next process or read (`awg apply`,
 * `awg diff`, the daemon's reads of its config): `<state>/parsed-lists/<key>.bin`, one file per list file and read options, `key` the
 * SHA-256 of the list's absolute path, format and category (no part of a file name comes from
 * the path's text). Each holds the snapshot of the last parse of that file (list-snapshot.ts),
 * which is used only for the same bytes, read by the same program; a file that is damaged,
 * cut, of another version or otherwise fails a check is ignored (the list is parsed, the file
 * rewritten). Beside it, `<key>.list` holds the bytes it parsed: an edited list whose edit only
 * inserted lines of addresses is parsed from the old parse and those lines
 * (list-increment.ts), once the snapshot has checked that the copy is what it parsed; any
 * other edit is parsed whole. Either way the files are rewritten. The loader asks this store
 * through load-destinations.ts ParsedListStore; it never reads the state directory itself.
 *
 * Written without fsync (a temporary file renamed over the old one, mode 0600 in a 0700
 * directory): after a crash the file is the old one, none, or one its digest refuses.
 * The file of a list no longer named stays until the state directory is removed (a few MiB at
 * most per list; `awg down` leaves it, so the next apply of the same list is quick too).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LIMITS, readRegularFileSync, writeFileAtomicSync } from '../util/files.js';
import type { ParsedList } from './list-formats/index.js';
import type { ListReadOptions, ParsedListStore } from './load-destinations.js';
import { decodeParsedList, encodeParsedList, sha256, type SnapshotKey } from './list-snapshot.js';

/** beside each snapshot `<key>.bin`, the list's bytes it is the parse of (`<key>.list`) */
const bytesOf = (snapshot: string) => snapshot.replace(/\.bin$/, '.list');

/** the directory below the state directory */
export const PARSED_LISTS_DIR = 'parsed-lists';
/** a snapshot is at most ≈ 2× its list (16-byte IPv6 bounds for a short line): more is not ours */
const MAX_SNAPSHOT = 2 * LIMITS.list + 1024 * 1024;

export interface ParsedListsOptions {
  /** the program's version: a snapshot of another is not used */
  program: string;
  /** false: only read (awg diff); default true */
  write?: boolean;
}

/** The store in `stateDir`. */
export function parsedListsIn(stateDir: string, o: ParsedListsOptions): ParsedListStore {
  const dir = join(stateDir, PARSED_LISTS_DIR);
  const fileOf = (file: string, r: ListReadOptions) =>
    join(
      dir,
      `${sha256(Buffer.from(`${file}\0${r.format ?? ''}\0${r.category ?? ''}`, 'utf8'))
        .toString('hex')
        .slice(0, 32)}.bin`,
    );
  const keyOf = (r: ListReadOptions): SnapshotKey => ({
    program: o.program,
    format: r.format,
    category: r.category,
  });
  const read = (path: string, maxBytes: number): Buffer | undefined => {
    try {
      return readRegularFileSync(path, { maxBytes, noFollow: true });
    } catch {
      return undefined;
    }
  };
  return {
    get(file: string, r: ListReadOptions, bytes: Uint8Array): ParsedList | undefined {
      const data = read(fileOf(file, r), MAX_SNAPSHOT);
      return data && decodeParsedList(data, bytes, keyOf(r));
    },
    put(file: string, r: ListReadOptions, bytes: Uint8Array, parsed: ParsedList): void {
      if (o.write === false) return;
      const data = encodeParsedList(parsed, bytes, keyOf(r));
      if (!data) return;
      const path = fileOf(file, r);
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        // the bytes first: a snapshot never names bytes newer than the copy beside it
        writeFileAtomicSync(bytesOf(path), bytes, { mode: 0o600, durable: false });
        writeFileAtomicSync(path, data, { mode: 0o600, durable: false });
      } catch {
        /* a cache: not kept, the next process parses */
      }
    },
    base(file: string, r: ListReadOptions) {
      const path = fileOf(file, r);
      const data = read(path, MAX_SNAPSHOT);
      const bytes = data && read(bytesOf(path), LIMITS.list);
      // the snapshot checks that the copy is the bytes it parsed (their SHA-256)
      const parsed = bytes && decodeParsedList(data, bytes, keyOf(r));
      return parsed && bytes ? { bytes, parsed } : undefined;
    },
  };
}
