/**
 * fanotify wire format for the exec gate (LINUX.md §7, probe-verified on kernel 6.18): the
 * 24-byte `struct fanotify_event_metadata` records a read of the group fd returns, and the
 * 8-byte `struct fanotify_response` written back. Only the pure encoding lives here so far;
 * the koffi calls (fanotify_init/fanotify_mark) are not written yet.
 */

export const FAN_CLASS_CONTENT = 0x4;
export const FAN_CLOEXEC = 0x1;
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_FILESYSTEM = 0x100;
export const FAN_OPEN_EXEC_PERM = 0x40000;
export const FAN_ALLOW = 1;
export const FANOTIFY_METADATA_VERSION = 3;
export const EVENT_METADATA_LEN = 24;

export interface FanotifyEvent {
  mask: bigint;
  /** the opened file's fd in our process; -1 on queue overflow */
  fd: number;
  /** the process doing the exec */
  pid: number;
}

/** Every whole record in `buf` (one read may return several); throws on a malformed record. */
export function parseEvents(buf: Buffer): FanotifyEvent[] {
  const out: FanotifyEvent[] = [];
  let off = 0;
  while (off + EVENT_METADATA_LEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    const vers = buf.readUInt8(off + 4);
    if (vers !== FANOTIFY_METADATA_VERSION) throw new Error(`fanotify: metadata version ${vers}, expected ${FANOTIFY_METADATA_VERSION}`);
    if (len < EVENT_METADATA_LEN || off + len > buf.length) throw new Error(`fanotify: bad event_len ${len} at ${off}`);
    out.push({ mask: buf.readBigUInt64LE(off + 8), fd: buf.readInt32LE(off + 16), pid: buf.readInt32LE(off + 20) });
    off += len;
  }
  return out;
}

/** `struct fanotify_response { s32 fd; u32 response }` allowing the event on `fd`. */
export function allowResponse(fd: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(fd, 0);
  b.writeUInt32LE(FAN_ALLOW, 4);
  return b;
}
