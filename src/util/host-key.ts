/**
 * The per-host secret that keys secret fingerprints (config/fingerprint.ts): 32 random bytes
 * in `<state dir>/fingerprint.key`, readable by its owner only, created on first use. With it
 * a fingerprint in a plan, in `awg status` or in a state file shows that a secret changed but
 * cannot be checked against guesses by whoever reads it.
 *
 * Creation is crash-safe and race-free: the key is written to a temp file (O_EXCL, 0600),
 * fsynced, then `link()`ed to its name, so the name only ever points at a complete key, and
 * of two processes creating it at once the second one's link fails (EEXIST) and it reads
 * the first one's; then the directory is fsynced. A key file that is not ours alone (not a
 * regular file, another owner, group or other permission bits, not 32 bytes) is never used:
 * it is moved aside (`fingerprint.key.rejected-<ms>`) and a new key is created, which changes
 * every fingerprint once (`onReplaced` says why).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { AwgError } from '../errors.js';
import { fsyncDirSync } from './files.js';
import type { StateStore } from './state.js';

export const FINGERPRINT_KEY_FILE = 'fingerprint.key';
const KEY_BYTES = 32;

const cache = new Map<string, Buffer>();
const memoryKeys = new WeakMap<StateStore, Buffer>();

/** why a key file with these attributes must not be used, or undefined when it is fine */
function unfit(st: Stats): string | undefined {
  if (!st.isFile()) return 'not a regular file';
  const uid = process.geteuid?.();
  if (uid !== undefined && st.uid !== uid) return `owned by uid ${st.uid}, not ${uid}`;
  if (st.mode & 0o077) return `mode ${(st.mode & 0o777).toString(8)} lets others read or write it`;
  if (st.size !== KEY_BYTES) return `${st.size} bytes, not ${KEY_BYTES}`;
  return undefined;
}

/** the key, or why the file cannot be used; ENOENT is thrown */
function readKey(path: string): { key: Buffer } | { why: string } {
  let fd: number;
  try {
    // no symlink is followed: what is checked is what is read
    fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') return { why: 'a symbolic link' };
    throw e;
  }
  try {
    const why = unfit(fstatSync(fd));
    if (why) return { why };
    const key = readFileSync(fd);
    return key.length === KEY_BYTES ? { key } : { why: `${key.length} bytes, not ${KEY_BYTES}` };
  } finally {
    closeSync(fd);
  }
}

function create(dir: string, path: string): void {
  const tmp = join(
    dir,
    `${FINGERPRINT_KEY_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
    0o600,
  );
  try {
    writeSync(fd, randomBytes(KEY_BYTES));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (e) {
    // another process created it first: use theirs
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
  fsyncDirSync(dir);
}

/** The fingerprint key of the state directory `dir` (read, or created on first use). */
export function fingerprintKeyIn(
  dir: string,
  opts: { onReplaced?: (why: string) => void } = {},
): Buffer {
  const hit = cache.get(dir);
  if (hit) return hit;
  const path = join(dir, FINGERPRINT_KEY_FILE);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (let attempt = 0; ; attempt++) {
      let got: { key: Buffer } | { why: string };
      try {
        got = readKey(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        create(dir, path);
        continue;
      }
      if ('key' in got) {
        cache.set(dir, got.key);
        return got.key;
      }
      if (attempt > 2)
        throw new AwgError(
          'permission',
          `${path}: ${got.why}; cannot make a usable fingerprint key there`,
        );
      renameSync(path, `${path}.rejected-${Date.now()}`);
      fsyncDirSync(dir);
      opts.onReplaced?.(
        `${path} was ${got.why}: moved aside, a new key was created (fingerprints of secrets change once)`,
      );
    }
  } catch (e) {
    if (e instanceof AwgError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new AwgError(
      code === 'EACCES' || code === 'EPERM' ? 'permission' : 'driver',
      `cannot read or create the fingerprint key ${path}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/**
 * The fingerprint key for a state store: the key file of its directory, or, for a store
 * that has none (MemoryStateStore in tests), a random key that lives as long as the store.
 */
export function fingerprintKeyOf(
  state: StateStore,
  opts: { onReplaced?: (why: string) => void } = {},
): Buffer {
  if (state.dir === ':memory:') {
    let k = memoryKeys.get(state);
    if (!k) memoryKeys.set(state, (k = randomBytes(KEY_BYTES)));
    return k;
  }
  return fingerprintKeyIn(state.dir, opts);
}
