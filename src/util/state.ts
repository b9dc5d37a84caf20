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
import { isObject } from './shape.js';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { crashPoint } from './crash-point.js';
import { join } from 'node:path';
import {
  FileRefusedError,
  fsyncDirSync,
  LIMITS,
  readTextFileSync,
  writeFileAtomicSync,
} from './files.js';

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
  /** reported after the record was set aside: what its owner recovered, and from which record */
  recovered?: { from: string; what: string };
}

/**
 * The key of the last apply's record (pipeline/applied.ts), written only after an apply
 * converged. The macOS drivers fall back to it when their own record is unusable: the route
 * driver to the routes it lists, the PF and DNS drivers to the copy of their record it keeps
 * (`owned`, what each driver's `owned()` returned then; resources/driver.ts).
 */
export const APPLIED_STATE_KEY = 'applied';

/**
 * The record `key` when `is` accepts its shape; undefined when there is none, or when it has
 * another shape, which is then set aside as unusable (`whose`: the driver it should belong to).
 */
export function checkedRecord<T>(
  state: StateStore,
  key: string,
  is: (r: unknown) => r is T,
  whose: string,
): T | undefined {
  const r = state.get<unknown>(key);
  if (r === undefined) return undefined;
  if (is(r)) return r;
  state.setAside(key, `not a record of ${whose}`);
  return undefined;
}

/** the copy of a driver's ownership record the last converged apply kept (unchecked), or undefined */
export function appliedCopy(state: StateStore, kind: string): unknown {
  const a = state.get<unknown>(APPLIED_STATE_KEY);
  return isObject(a) && isObject(a.owned) ? a.owned[kind] : undefined;
}

export interface StateStore {
  readonly dir: string;
  /** the record, or undefined when absent or unusable (then set aside and reported) */
  get<T>(key: string): T | undefined;
  set<T>(key: string, value: T): void;
  delete(key: string): void;
  keys(): string[];
  /** set the record aside as unusable (e.g. the wrong shape): moved away, reported, absent from now on */
  setAside(key: string, reason: string): CorruptState;
  /**
   * Report that what the unusable record `key` held was recovered from the record `from`
   * (`what`: the objects, named for the user). Reported once until `key` is written or set
   * aside again (a driver recovers on every read until its next write).
   */
  recovered(key: string, from: string, what: string): void;
}

export function describeCorrupt(c: CorruptState): string {
  if (c.recovered)
    return `state record ${c.file} was unusable; recovered from ${c.recovered.from}: ${c.recovered.what}`;
  return `state record ${c.file} is unusable (${c.reason}); ${c.movedTo ? `moved aside to ${c.movedTo} and ` : ''}ignored`;
}

const KEY_RE = /^[A-Za-z0-9_.-]+$/;
/** util/files.ts tmpName: `.<name>.<pid>.<8 hex>.tmp` */
const TMP_RE = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/;

export interface FileStateStoreOptions {
  /** told of every record set aside, and of what was recovered from another (the CLI prints it, the daemon logs it) */
  onCorrupt?: (c: CorruptState) => void;
}

export class FileStateStore implements StateStore {
  onCorrupt: ((c: CorruptState) => void) | undefined;
  private readonly told = new Set<string>();
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
    this.told.delete(key);
  }
  delete(key: string): void {
    const p = this.path(key);
    if (!existsSync(p)) return;
    rmSync(p, { force: true });
    crashPoint(`file:${key}.json:deleted`);
    fsyncDirSync(this.dir);
  }
  /**
   * Remove the temporary files of atomic writes that never reached their rename (a process
   * killed between the two; util/files.ts): called by the directory's owner once it holds the
   * owner lock (pipeline/owner.ts), when no other writer can be in the middle of one.
   */
  sweepTemps(): string[] {
    if (!existsSync(this.dir)) return [];
    const gone: string[] = [];
    for (const f of readdirSync(this.dir)) {
      const m = TMP_RE.exec(f);
      if (!m || Number(m[1]) === process.pid) continue;
      rmSync(join(this.dir, f), { force: true });
      gone.push(f);
    }
    return gone;
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
    this.told.delete(key);
    this.onCorrupt?.(c);
    return c;
  }
  recovered(key: string, from: string, what: string): void {
    if (this.told.has(key)) return;
    this.told.add(key);
    this.onCorrupt?.({
      key,
      file: this.path(key),
      reason: 'recovered',
      recovered: { from: this.path(from), what },
    });
  }
}

export class MemoryStateStore implements StateStore {
  readonly dir = ':memory:';
  private readonly data = new Map<string, string>();
  /** the records set aside, in order (tests) */
  readonly corrupt: CorruptState[] = [];
  /** the recoveries reported, in order (tests; every report, not once per key) */
  readonly recoveries: CorruptState[] = [];
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
  recovered(key: string, from: string, what: string): void {
    this.recoveries.push({
      key,
      file: `${this.dir}/${key}`,
      reason: 'recovered',
      recovered: { from: `${this.dir}/${from}`, what },
    });
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
  /**
   * `durable: false`: no fsync (a copy whose reader checks it whole and can do without it: after
   * a crash the file is the old one, none, or one its check refuses)
   */
  write(state: StateStore, name: string, text: string, o: { durable?: boolean } = {}): void {
    if (state.dir === ':memory:') return state.set(name, text);
    mkdirSync(state.dir, { recursive: true, mode: 0o700 });
    writeFileAtomicSync(join(state.dir, name), text, {
      mode: 0o600,
      ...(o.durable === false ? { durable: false } : {}),
    });
  },
  remove(state: StateStore, name: string): void {
    if (state.dir === ':memory:') return state.delete(name);
    rmSync(join(state.dir, name), { force: true });
  },
};
