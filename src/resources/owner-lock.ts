/**
 * One owner per host: the live-owner lock every awg process that changes the host holds
 * while it does (`awg apply` and `awg down` in direct mode, `awg up`, `awg daemon`).
 *
 * The lock is a file per scope (OwnerNatives.scope: a network namespace on Linux, the host on
 * macOS), `<run dir>/owner-<scope>.lock`, locked with flock: the kernel releases it when its
 * holder exits, SIGKILL included, so a dead owner's lock is simply taken over. The file holds
 * the holder's record (pid, its start time and boot id, the command, the state directory, the
 * daemon's socket) for the message a refused process prints, and it stays after the holder
 * exits: the next owner reads who was there before. A state directory other than the
 * previous owner's is refused while that one still has an applied record (its objects are
 * here, and its saved originals with them), so two state directories never remove each
 * other's objects; the objects' own tags (owner-tag.ts) say the same where a lock file is
 * missing (a reboot cleared /run, but the early unit loaded the kill switch).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  realpathSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AwgError } from '../errors.js';
import type { OwnerNatives } from '../native/owner-lock.js';
export type { OwnerNatives };
import { currentBootId, processIdentity, sameProcess } from './engine/process-identity.js';
import { isObject } from '../util/shape.js';
import { defaultPaths } from '../util/paths.js';

/** what holds or held the lock */
export type OwnerCommand = 'daemon' | 'up' | 'apply' | 'down';

export interface OwnerRecord {
  version: 1;
  pid: number;
  /** the holder's identity (engine/process-identity.ts); absent where /proc is not */
  bootId?: string;
  startTime?: string;
  command: OwnerCommand;
  /** the state directory, absolute (real path when it exists) */
  stateDir: string;
  /** ownerIdOf(stateDir): the tag on the objects (owner-tag.ts) */
  ownerId: string;
  /** a daemon's or `awg up`'s API socket */
  socket?: string;
  since: string;
  /** set by a holder that let go of the lock on purpose */
  released?: string;
}

/** the commands that end on their own: a second one waits for them a while */
const SHORT_LIVED: ReadonlySet<OwnerCommand> = new Set(['apply', 'down']);

/** `/run/awg` (macOS `/var/run/awg`): the API socket's directory; $AWG_RUN_DIR overrides it */
export function runDirFrom(env: NodeJS.ProcessEnv = process.env): string {
  return env.AWG_RUN_DIR ?? join(defaultPaths().socket, '..');
}

/** the state directory as one spelling: absolute, links resolved when it exists */
export function canonicalStateDir(dir: string): string {
  const abs = resolve(dir);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

/** the owner tag of a state directory: 12 hex digits of the SHA-256 of its canonical path */
export function ownerIdOf(stateDir: string): string {
  return createHash('sha256').update(canonicalStateDir(stateDir)).digest('hex').slice(0, 12);
}

/** the owner tag of the objects a state store's owner makes; none for an in-memory store (tests) */
export function ownerTagOf(state: { readonly dir: string }): string | undefined {
  return state.dir === ':memory:' ? undefined : ownerIdOf(state.dir);
}

function validRecord(r: unknown): r is OwnerRecord {
  return (
    isObject(r) &&
    r.version === 1 &&
    Number.isSafeInteger(r.pid) &&
    typeof r.command === 'string' &&
    typeof r.stateDir === 'string' &&
    typeof r.ownerId === 'string' &&
    typeof r.since === 'string'
  );
}

/** the record in an open lock file, or undefined (empty, not ours, torn) */
function readRecord(fd: number): OwnerRecord | undefined {
  const size = Math.min(fstatSync(fd).size, 64 * 1024);
  if (size === 0) return undefined;
  const b = Buffer.alloc(size);
  const n = readSync(fd, b, 0, size, 0);
  try {
    const r: unknown = JSON.parse(b.subarray(0, n).toString('utf8'));
    return validRecord(r) ? r : undefined;
  } catch {
    return undefined;
  }
}

function writeRecord(fd: number, r: OwnerRecord): void {
  const b = Buffer.from(JSON.stringify(r) + '\n');
  ftruncateSync(fd, 0);
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, b.length - off, off);
  fsyncSync(fd);
}

/** "`awg daemon` (pid 4242, since …, state directory …, socket …)" */
export function describeOwner(r: OwnerRecord): string {
  const bits = [
    `pid ${r.pid}`,
    `since ${r.since}`,
    `state directory ${r.stateDir}`,
    ...(r.socket ? [`socket ${r.socket}`] : []),
  ];
  return `\`awg ${r.command}\` (${bits.join(', ')})`;
}

function busy(holder: OwnerRecord | undefined, scope: string): AwgError {
  const who = holder ? describeOwner(holder) : 'another awg process (its record is unreadable)';
  const hint =
    holder?.command === 'daemon' || holder?.command === 'up'
      ? `use it: awg apply/diff/status/down talk to it${holder.socket ? ` (--socket ${holder.socket})` : ''}; or stop it first`
      : 'wait until it has finished, then run the command again';
  return new AwgError(
    'conflict',
    `${who} owns awg's objects here (${scope}): refusing to act beside it`,
    {
      hint,
    },
  );
}

export interface AcquireOptions {
  natives: OwnerNatives;
  command: OwnerCommand;
  stateDir: string;
  socket?: string | undefined;
  /** the lock file's directory (default runDirFrom()) */
  runDir?: string | undefined;
  /** how long to wait for a short-lived holder (apply, down) to finish; default 30 s */
  waitMs?: number | undefined;
  /** whether another state directory still records an apply (its objects are on this host) */
  hasApplied: (stateDir: string) => boolean;
  /** told of a lock taken over from a holder that died holding it */
  onTakeover?: (previous: OwnerRecord) => void;
}

/** The lock, held until `release()` or the process's exit. */
export class OwnerLock {
  private closed = false;
  constructor(
    private readonly fds: number[],
    readonly path: string,
    readonly record: OwnerRecord,
    /** who held it before (a released or a dead holder), if the file said */
    readonly previous: OwnerRecord | undefined,
  ) {}

  /** let go on purpose: the record says so, and the next owner starts without a warning */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.fds) {
      try {
        writeRecord(fd, { ...this.record, released: new Date().toISOString() });
      } catch {
        /* the lock goes with the descriptor either way */
      }
      closeSync(fd);
    }
  }
}

/**
 * Open `path` (created 0600; a regular file of this user, never a link) and flock it, waiting
 * for a short-lived holder until `deadline`; returns the descriptor, or throws what `busy`
 * makes of the holder's record.
 */
async function lockFile(
  path: string,
  natives: OwnerNatives,
  deadline: number,
  busy: (holder: OwnerRecord | undefined) => AwgError,
): Promise<number> {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    const f = fstatSync(fd);
    if (!f.isFile() || f.uid !== process.getuid?.())
      throw new AwgError('permission', `${path} is not a regular file of this user`);
    for (;;) {
      if (natives.tryLock(fd)) return fd;
      const holder = readRecord(fd);
      if (!holder || !SHORT_LIVED.has(holder.command) || Date.now() >= deadline) throw busy(holder);
      await sleep(100);
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/**
 * Take the lock of this scope, or throw AwgError('conflict') naming the process that holds it
 * (a short-lived holder is waited for up to `waitMs`), or the state directory whose objects
 * are here. The state directory is locked too (`owner.lock` in it): one directory serves one
 * owner, whichever namespace it is in.
 */
export async function acquireOwner(o: AcquireOptions): Promise<OwnerLock> {
  const scope = o.natives.scope();
  const dir = o.runDir ?? runDirFrom();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // anyone who could write there could hold the lock (or swap the file) and stop awg
  const d = lstatSync(dir);
  if (!d.isDirectory() || d.mode & 0o022 || d.uid !== process.getuid?.())
    throw new AwgError(
      'permission',
      `the owner lock's directory ${dir} is not a directory of this user that only it may write (mode ${(d.mode & 0o7777).toString(8)}, uid ${d.uid})`,
    );
  const path = join(dir, `owner-${scope}.lock`);
  const deadline = Date.now() + (o.waitMs ?? 30_000);
  const fd = await lockFile(path, o.natives, deadline, (h) => busy(h, scope));
  const fds = [fd];
  try {
    const previous = readRecord(fd);
    const stateDir = canonicalStateDir(o.stateDir);
    if (previous && previous.stateDir !== stateDir && o.hasApplied(previous.stateDir))
      throw new AwgError(
        'conflict',
        `awg's objects here (${scope}) were applied from the state directory ${previous.stateDir} (last by ${describeOwner(previous)}), not ${stateDir}: refusing to take them over`,
        {
          hint: `use --state-dir ${previous.stateDir}, or remove them first with \`awg down --state-dir ${previous.stateDir}\``,
        },
      );
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    fds.push(
      await lockFile(join(stateDir, 'owner.lock'), o.natives, deadline, (h) =>
        busy(h, `the state directory ${stateDir}, from another network namespace`),
      ),
    );
    if (previous && !previous.released && previous.pid !== process.pid) o.onTakeover?.(previous);
    const me = processIdentity(process.pid);
    const record: OwnerRecord = {
      version: 1,
      pid: process.pid,
      ...(me ? { bootId: me.bootId, startTime: me.startTime } : {}),
      command: o.command,
      stateDir,
      ownerId: ownerIdOf(stateDir),
      ...(o.socket ? { socket: o.socket } : {}),
      since: new Date().toISOString(),
    };
    for (const f of fds) writeRecord(f, record);
    return new OwnerLock(fds, path, record, previous);
  } catch (e) {
    for (const f of fds) closeSync(f);
    throw e;
  }
}

/**
 * The holder of this scope's lock now, if any (`awg status`): the record when its process is
 * alive and has not released it.
 */
export function currentOwner(
  natives: OwnerNatives,
  runDir: string = runDirFrom(),
): OwnerRecord | undefined {
  const path = join(runDir, `owner-${natives.scope()}.lock`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const r = readRecord(fd);
    if (!r || r.released) return undefined;
    if (r.bootId && r.bootId !== currentBootId()) return undefined;
    return r.bootId && r.startTime ? (sameProcess(r) ? r : undefined) : r;
  } finally {
    closeSync(fd);
  }
}
