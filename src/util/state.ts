/**
 * Durable state between runs (saved originals of sysctls and DNS, what we last applied).
 * One JSON file per key under the state directory, so several instances in different network
 * namespaces never collide when given different directories (`--state-dir` / AWG_STATE_DIR).
 *
 * Writes are crash-safe (util/files.ts: temp file, fsync, rename, fsync of the directory).
 * A record that cannot be used — not valid JSON (torn by a crash of an older version, edited
 * by hand), not a regular file, over LIMITS.state — is never a crash: it is moved aside to
 * `<key>.json.corrupt-<timestamp>` (kept for inspection), reported through `onCorrupt`, and
 * reads as absent from then on. Callers that check a record's shape do the same through
 * `setAside`. I/O errors (EACCES, EIO) still throw: they say nothing about the content.
 */
import { defaultPaths } from './paths.js';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FileRefusedError, fsyncDirSync, LIMITS, readTextFileSync, writeFileAtomicSync } from './files.js';

/** /var/lib/awg (macOS: /Library/Application Support/awg; util/paths.ts) */
export const DEFAULT_STATE_DIR = defaultPaths().stateDir;

/** a record set aside as unusable */
export interface CorruptState {
  key: string;
  /** the record's file (or `:memory:/<key>`) */
  file: string;
  /** where it went; undefined when it could not be moved (then it stays, and is ignored) */
  movedTo?: string;
  /** why: a JSON syntax error, the file type, the size, or the caller's shape check */
  reason: string;
}

/** the key of the last apply's record (pipeline/applied.ts); the macOS route driver reads its routes when its own record is gone */
export const APPLIED_STATE_KEY = 'applied';

export interface StateStore {
  readonly dir: string;
  /** the record, or undefined when absent or unusable (then set aside and reported) */
  get<T>(key: string): T | undefined;
  set<T>(key: string, value: T): void;
  delete(key: string): void;
  keys(): string[];
  /** set the record aside as unusable (e.g. the wrong shape): moved away, reported, absent from now on */
  setAside(key: string, reason: string): CorruptState;
}

export function describeCorrupt(c: CorruptState): string {
  return `state record ${c.file} is unusable (${c.reason}); ${c.movedTo ? `moved aside to ${c.movedTo} and ` : ''}ignored`;
}

const KEY_RE = /^[A-Za-z0-9_.-]+$/;

export interface FileStateStoreOptions {
  /** told of every record set aside (the CLI prints it, the daemon logs it) */
  onCorrupt?: (c: CorruptState) => void;
}

export class FileStateStore implements StateStore {
  onCorrupt: ((c: CorruptState) => void) | undefined;
  constructor(
    readonly dir: string,
    o: FileStateStoreOptions = {},
  ) {
    this.onCorrupt = o.onCorrupt;
  }
  private path(key: string): string {
    if (!KEY_RE.test(key)) throw new Error(`invalid state key ${key}`);
    return join(this.dir, `${key}.json`);
  }
  get<T>(key: string): T | undefined {
    let text: string;
    try {
      text = readTextFileSync(this.path(key), { maxBytes: LIMITS.state, noFollow: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (e instanceof FileRefusedError) {
        this.setAside(key, `it is ${e.reason}`);
        return undefined;
      }
      throw e;
    }
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      this.setAside(key, text.trim() === '' ? 'empty' : `not valid JSON: ${(e as Error).message}`);
      return undefined;
    }
  }
  set<T>(key: string, value: T): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomicSync(this.path(key), JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  }
  delete(key: string): void {
    const p = this.path(key);
    if (!existsSync(p)) return;
    rmSync(p, { force: true });
    fsyncDirSync(this.dir);
  }
  keys(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -5));
  }
  setAside(key: string, reason: string): CorruptState {
    const file = this.path(key);
    const movedTo = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    let c: CorruptState;
    try {
      renameSync(file, movedTo);
      c = { key, file, movedTo, reason };
    } catch (e) {
      // left in place (nothing is deleted on a guess): reported again on the next read
      c = { key, file, reason: `${reason}; could not be moved: ${(e as Error).message}` };
    }
    try {
      fsyncDirSync(this.dir);
    } catch {
      /* best effort */
    }
    this.onCorrupt?.(c);
    return c;
  }
}

export class MemoryStateStore implements StateStore {
  readonly dir = ':memory:';
  private readonly data = new Map<string, string>();
  /** the records set aside, in order (tests) */
  readonly corrupt: CorruptState[] = [];
  get<T>(key: string): T | undefined {
    const v = this.data.get(key);
    return v === undefined ? undefined : (JSON.parse(v) as T);
  }
  set<T>(key: string, value: T): void {
    this.data.set(key, JSON.stringify(value));
  }
  delete(key: string): void {
    this.data.delete(key);
  }
  keys(): string[] {
    return [...this.data.keys()];
  }
  setAside(key: string, reason: string): CorruptState {
    this.data.delete(key);
    const c = { key, file: `${this.dir}/${key}`, reason };
    this.corrupt.push(c);
    return c;
  }
}

/**
 * A plain (not JSON) file kept in the state directory beside the records, for something other
 * than awg to read (a ruleset a boot job loads), or a key of an in-memory store (tests).
 * Written atomically with mode 0600; read without following a link, bounded like the records.
 */
export const stateFile = {
  path: (state: StateStore, name: string): string => join(state.dir, name),
  /** the text; undefined when absent; throws on other errors */
  read(state: StateStore, name: string): string | undefined {
    if (state.dir === ':memory:') return state.get<string>(name);
    try {
      return readTextFileSync(join(state.dir, name), { maxBytes: LIMITS.state, noFollow: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  },
  write(state: StateStore, name: string, text: string): void {
    if (state.dir === ':memory:') return state.set(name, text);
    mkdirSync(state.dir, { recursive: true, mode: 0o700 });
    writeFileAtomicSync(join(state.dir, name), text, { mode: 0o600 });
  },
  remove(state: StateStore, name: string): void {
    if (state.dir === ':memory:') return state.delete(name);
    rmSync(join(state.dir, name), { force: true });
  },
};
