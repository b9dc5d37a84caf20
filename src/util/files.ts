/**
 * Reading files a user names and writing files that must survive a crash.
 *
 * Reads (config, secrets, wg-quick INI, recorded observations, our own state): regular files
 * only, and never more than a stated number of bytes. The path is stat'ed first, so a FIFO,
 * a device or a socket is refused without being opened (opening a tty or a tape has side
 * effects); it is then opened with O_NONBLOCK (a FIFO swapped in after the stat cannot
 * block the open), the descriptor is fstat'ed and refused unless regular, and at most
 * `maxBytes` + 1 bytes are read, so `/dev/zero`, a FIFO or a 2 GiB file give an error naming
 * the file at once instead of a hang or the heap. `noFollow` adds O_NOFOLLOW (our own state:
 * a symlink there was not made by us).
 *
 * Writes (state records, resolv.conf, unit files): a temporary file in the same directory,
 * written, fchmod'ed (the exact mode, whatever the umask), fsync'ed, renamed over the target,
 * then the directory fsync'ed: after a crash or power loss the target holds either the old
 * or the new bytes, never a torn mix or an empty file.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { crashPoint } from './crash-point.js';

/** the byte limits of every file read through this module */
export const LIMITS = {
  /** a YAML config (the 10,000-prefix benchmark config is 0.3 MiB) */
  config: 4 * 1024 * 1024,
  /** a `{file:}` secret: a key is 45 bytes, a password a few dozen */
  secret: 64 * 1024,
  /** a wg-quick / awg-quick INI for `awg import` */
  ini: 1024 * 1024,
  /** one state record (the applied record of 20,000 resources is a few MiB) */
  state: 64 * 1024 * 1024,
  /** a destination list of a rule's `to.lists` (100,000 lines are 2-3 MiB) */
  list: 64 * 1024 * 1024,
  /** a recorded observation (`awg diff --observed`) */
  observed: 64 * 1024 * 1024,
} as const;

export interface ReadOptions {
  /** refuse files longer than this many bytes */
  maxBytes: number;
  /** O_NOFOLLOW: refuse a symlink as the last component */
  noFollow?: boolean;
}

/** A file refused before or instead of being read; `code` says why (errno-like). */
export class FileRefusedError extends Error {
  constructor(
    readonly path: string,
    readonly code: 'ENOTREG' | 'EFBIG',
    /** what the file is, e.g. `a FIFO, not a regular file`, `larger than the 4 MiB limit` */
    readonly reason: string,
  ) {
    super(`${path} is ${reason}`);
    this.name = 'FileRefusedError';
  }
}

function typeName(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

function refuseType(path: string, st: Stats): FileRefusedError {
  return new FileRefusedError(path, 'ENOTREG', `${typeName(st)}, not a regular file`);
}

function refuseSize(path: string, max: number): FileRefusedError {
  return new FileRefusedError(path, 'EFBIG', `larger than the ${humanBytes(max)} limit`);
}

export function humanBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** the next read: up to 1 MiB, and never past the first byte beyond the limit */
const chunk = (total: number, max: number) => Math.min(1024 * 1024, max + 1 - total);

const openFlags = (o: ReadOptions) =>
  constants.O_RDONLY | constants.O_NONBLOCK | (o.noFollow ? constants.O_NOFOLLOW : 0);

function symlinkRefused(path: string, e: unknown, o: ReadOptions): unknown {
  // O_NOFOLLOW on a symlink: ELOOP
  return o.noFollow && (e as NodeJS.ErrnoException).code === 'ELOOP'
    ? new FileRefusedError(path, 'ENOTREG', 'a symbolic link, not a regular file')
    : e;
}

/** The bytes of the regular file `path` (see the file comment); throws errno errors or FileRefusedError. */
export function readRegularFileSync(path: string, o: ReadOptions): Buffer {
  const pre = statSync(path);
  if (!pre.isFile()) throw refuseType(path, pre);
  let fd: number;
  try {
    fd = openSync(path, openFlags(o));
  } catch (e) {
    throw symlinkRefused(path, e, o);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuseType(path, st);
    if (st.size > o.maxBytes) throw refuseSize(path, o.maxBytes);
    // st.size is a hint only (/proc files say 0, a file may grow): read to EOF, capped
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(chunk(total, o.maxBytes));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      if (total > o.maxBytes) throw refuseSize(path, o.maxBytes);
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/** Async twin of readRegularFileSync. */
export async function readRegularFile(path: string, o: ReadOptions): Promise<Buffer> {
  const pre = await stat(path);
  if (!pre.isFile()) throw refuseType(path, pre);
  let fh;
  try {
    fh = await open(path, openFlags(o));
  } catch (e) {
    throw symlinkRefused(path, e, o);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw refuseType(path, st);
    if (st.size > o.maxBytes) throw refuseSize(path, o.maxBytes);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(chunk(total, o.maxBytes));
      const { bytesRead: n } = await fh.read(buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      if (total > o.maxBytes) throw refuseSize(path, o.maxBytes);
    }
    return Buffer.concat(chunks, total);
  } finally {
    await fh.close();
  }
}

/** A text file read with readRegularFile, as UTF-8. */
export async function readTextFile(path: string, o: ReadOptions): Promise<string> {
  return (await readRegularFile(path, o)).toString('utf8');
}

export function readTextFileSync(path: string, o: ReadOptions): string {
  return readRegularFileSync(path, o).toString('utf8');
}

export interface WriteOptions {
  /** the file's mode, set exactly (fchmod, not filtered by the umask); default 0o600 */
  mode?: number;
  /**
   * false: no fsync of the file nor of its directory (a cache whose every reader checks a
   * digest: a crash leaves the old file, none, or one that is refused); default true
   */
  durable?: boolean;
}

const tmpName = (path: string) =>
  join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
const TMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** fsync a directory, so a rename (or unlink) in it is durable. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replace `path` with `data` crash-safely (see the file comment). The directory must exist. */
export function writeFileAtomicSync(
  path: string,
  data: string | Uint8Array,
  o: WriteOptions = {},
): void {
  const tmp = tmpName(path);
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    const fd = openSync(tmp, TMP_FLAGS, 0o600);
    try {
      fchmodSync(fd, o.mode ?? 0o600);
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      if (o.durable !== false) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    crashPoint(`file:${basename(path)}:written`);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created, or already renamed */
    }
    throw e;
  }
  crashPoint(`file:${basename(path)}:renamed`);
  if (o.durable !== false) fsyncDirSync(dirname(path));
}

export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  o: WriteOptions = {},
): Promise<void> {
  const tmp = tmpName(path);
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    const fh = await open(tmp, TMP_FLAGS, 0o600);
    try {
      await fh.chmod(o.mode ?? 0o600);
      await fh.writeFile(buf);
      await fh.sync();
    } finally {
      await fh.close();
    }
    crashPoint(`file:${basename(path)}:written`);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  crashPoint(`file:${basename(path)}:renamed`);
  await fsyncDir(dirname(path));
}
