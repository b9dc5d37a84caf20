/**
 * Parses of list files, kept in the state directory for the next process (`awg apply`, `awg
 * diff`): `<state>/parsed-lists/<key>.bin`, one file per list file and read options, `key` the
 * SHA-256 of the list's absolute path, format and category (no part of a file name comes from
 * the path's text). Each holds the snapshot of the last parse of that file (list-snapshot.ts),
 * which is used only for the same bytes, read by the same program: an edited list is parsed
 * and its file rewritten; a file that is damaged, cut, of another version or otherwise fails a
 * check is ignored (the list is parsed, the file rewritten). The loader asks this store through
 * load-destinations.ts ParsedListStore; it never reads the state directory itself.
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
  return {
    get(file: string, r: ListReadOptions, bytes: Uint8Array): ParsedList | undefined {
      let data: Buffer;
      try {
        data = readRegularFileSync(fileOf(file, r), { maxBytes: MAX_SNAPSHOT, noFollow: true });
      } catch {
        return undefined;
      }
      return decodeParsedList(data, bytes, keyOf(r));
    },
    put(file: string, r: ListReadOptions, bytes: Uint8Array, parsed: ParsedList): void {
      if (o.write === false) return;
      const data = encodeParsedList(parsed, bytes, keyOf(r));
      if (!data) return;
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        writeFileAtomicSync(fileOf(file, r), data, { mode: 0o600, durable: false });
      } catch {
        /* a cache: not kept, the next process parses */
      }
    },
  };
}
