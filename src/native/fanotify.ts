/**
 * fanotify wire format for the exec gate (docs/platform-linux.md#fanotify): the
 * 24-byte `struct fanotify_event_metadata` records a read of the group fd returns, and the
 * 8-byte `struct fanotify_response` written back, and the group itself (fanotify_init and
 * fanotify_mark through koffi).
 */
import { readlinkSync } from 'node:fs';
import koffi from 'koffi';
import { AwgError } from '../errors.js';
import { close, E, O_CLOEXEC, O_RDONLY, read, write } from './libc.js';

export const FAN_CLASS_CONTENT = 0x4;
export const FAN_CLOEXEC = 0x1;
export const FAN_NONBLOCK = 0x2;
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_FILESYSTEM = 0x100;
export const FAN_OPEN_EXEC_PERM = 0x40000;
export const FAN_ALLOW = 1;
export const FAN_DENY = 2;
export const FANOTIFY_METADATA_VERSION = 3;
export const EVENT_METADATA_LEN = 24;

export interface FanotifyEvent {
  mask: bigint;
  /** the opened file's fd in our process; -1 on queue overflow */
  fd: number;
  /** the process doing the exec */
  pid: number;
}

/**
 * The whole records at the start of `buf`, up to the first malformed one, and why that one is
 * malformed (one read may return several records).
 */
export function parseEventsUpTo(buf: Buffer): { events: FanotifyEvent[]; error?: string } {
  const events: FanotifyEvent[] = [];
  let off = 0;
  while (off + EVENT_METADATA_LEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    const vers = buf.readUInt8(off + 4);
    if (vers !== FANOTIFY_METADATA_VERSION)
      return {
        events,
        error: `fanotify: metadata version ${vers}, expected ${FANOTIFY_METADATA_VERSION}`,
      };
    if (len < EVENT_METADATA_LEN || off + len > buf.length)
      return { events, error: `fanotify: bad event_len ${len} at ${off}` };
    events.push({
      mask: buf.readBigUInt64LE(off + 8),
      fd: buf.readInt32LE(off + 16),
      pid: buf.readInt32LE(off + 20),
    });
    off += len;
  }
  return { events };
}

/** Every whole record in `buf`; throws on a malformed record. */
export function parseEvents(buf: Buffer): FanotifyEvent[] {
  const r = parseEventsUpTo(buf);
  if (r.error) throw new Error(r.error);
  return r.events;
}

/**
 * Every event queued on a non-blocking fanotify fd now, read through `buf`. An error after some
 * events were read does not lose them (each holds an exec until it is answered): they are
 * returned with the error, which the caller reports after answering them.
 */
export function readFanotifyEvents(
  fd: number,
  buf: Buffer,
): { events: FanotifyEvent[]; error?: string } {
  const events: FanotifyEvent[] = [];
  for (;;) {
    const n = read(fd, buf);
    if (n === -E.EAGAIN) return { events };
    if (n < 0) return { events, error: `fanotify read: errno ${-n}` };
    const r = parseEventsUpTo(buf.subarray(0, n));
    events.push(...r.events);
    if (r.error) return { events, error: r.error };
    if (n < buf.length - EVENT_METADATA_LEN) return { events };
  }
}

/** `struct fanotify_response { s32 fd; u32 response }` allowing (or denying) the event on `fd`. */
export function allowResponse(fd: number, response: number = FAN_ALLOW): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(fd, 0);
  b.writeUInt32LE(response, 4);
  return b;
}

// ---------------------------------------------------------------------------------------
// the group: fanotify_init / fanotify_mark through koffi, reads and answers through libc

const O_LARGEFILE = 0o100000;
const AT_FDCWD = -100;

interface FanFns {
  init: (flags: number, eventFlags: number) => number;
  mark: (fd: number, flags: number, mask: bigint, dirfd: number, path: string) => number;
}
let fan: FanFns | undefined;
function fns(): FanFns {
  if (fan) return fan;
  if (process.platform !== 'linux')
    throw new AwgError('unsupported', `fanotify needs Linux (running on ${process.platform})`);
  const lib = koffi.load('libc.so.6');
  fan = {
    init: lib.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)'),
    mark: lib.func(
      'int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)',
    ),
  } as unknown as FanFns;
  return fan;
}

/**
 * A fanotify group of class CONTENT (permission events), non-blocking. Every event read must
 * be answered (`allow`), or the exec it holds waits; closing the group (or the process
 * ending) releases every held exec.
 */
export class FanotifyGroup {
  private readonly buf = Buffer.alloc(EVENT_METADATA_LEN * 64);
  /** an error met after events were read: thrown by the next readEvents, once those are answered */
  private deferred: string | undefined;

  private constructor(readonly fd: number) {}

  /** EPERM without CAP_SYS_ADMIN (in the initial user namespace), EINVAL without the kernel option */
  static open(): FanotifyGroup {
    const fd = fns().init(
      FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
      O_RDONLY | O_LARGEFILE | O_CLOEXEC,
    );
    if (fd < 0) {
      const errno = koffi.errno();
      throw new AwgError(
        errno === 1 ? 'permission' : 'unsupported',
        `fanotify_init: errno ${errno}${errno === 1 ? ' (needs CAP_SYS_ADMIN)' : ''}`,
      );
    }
    return new FanotifyGroup(fd);
  }

  /** hold every exec of a file on the file system that holds `path` */
  markFilesystem(path: string): void {
    if (
      fns().mark(
        this.fd,
        FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
        BigInt(FAN_OPEN_EXEC_PERM),
        AT_FDCWD,
        path,
      ) < 0
    )
      throw new AwgError('driver', `fanotify_mark ${path}: errno ${koffi.errno()}`);
  }

  /** every event queued now (none: []); a read or format error is thrown once the events read before it are returned */
  readEvents(): FanotifyEvent[] {
    const deferred = this.deferred;
    this.deferred = undefined;
    if (deferred) throw new AwgError('driver', deferred);
    const r = readFanotifyEvents(this.fd, this.buf);
    if (r.error && r.events.length === 0) throw new AwgError('driver', r.error);
    this.deferred = r.error;
    return r.events;
  }

  /** the file an event opened, by its fd in this process */
  static pathOf(ev: FanotifyEvent): string | undefined {
    try {
      return readlinkSync(`/proc/self/fd/${ev.fd}`);
    } catch {
      return undefined;
    }
  }

  /** let the exec go on; the event's fd is closed */
  allow(ev: FanotifyEvent): void {
    this.answer(ev, FAN_ALLOW);
  }

  /** refuse the exec (execve fails with EPERM); the event's fd is closed */
  deny(ev: FanotifyEvent): void {
    this.answer(ev, FAN_DENY);
  }

  private answer(ev: FanotifyEvent, response: number): void {
    const r = allowResponse(ev.fd, response);
    const n = write(this.fd, r);
    if (ev.fd >= 0) close(ev.fd);
    if (n !== r.length)
      throw new AwgError(
        'driver',
        `fanotify response for pid ${ev.pid}: ${n < 0 ? `errno ${-n}` : `short write ${n}`}`,
      );
  }

  close(): void {
    close(this.fd);
  }
}
