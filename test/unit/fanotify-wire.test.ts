import { describe, expect, it } from 'vitest';
import {
  allowResponse,
  EVENT_METADATA_LEN,
  FAN_OPEN_EXEC_PERM,
  parseEvents,
  readFanotifyEvents,
} from '../../src/native/fanotify.js';
import { O_CLOEXEC, O_NONBLOCK, close, pipe2, write } from '../../src/native/libc.js';

function rec(fd: number, pid: number, vers = 3, len = 24): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(len, 0);
  b.writeUInt8(vers, 4);
  b.writeUInt16LE(24, 6);
  b.writeBigUInt64LE(BigInt(FAN_OPEN_EXEC_PERM), 8);
  b.writeInt32LE(fd, 16);
  b.writeInt32LE(pid, 20);
  return b;
}

describe('fanotify wire format', () => {
  it('parses several records of one read (program and its ELF interpreter)', () => {
    const ev = parseEvents(Buffer.concat([rec(7, 100), rec(8, 100)]));
    expect(ev).toEqual([
      { mask: BigInt(FAN_OPEN_EXEC_PERM), fd: 7, pid: 100 },
      { mask: BigInt(FAN_OPEN_EXEC_PERM), fd: 8, pid: 100 },
    ]);
  });
  it('refuses a wrong version or a length past the buffer', () => {
    expect(() => parseEvents(rec(7, 1, 2))).toThrow(/version/);
    expect(() => parseEvents(rec(7, 1, 3, 48))).toThrow(/event_len/);
    expect(() => parseEvents(rec(7, 1, 3, 4))).toThrow(/event_len/);
  });
  it('encodes FAN_ALLOW for the event fd', () => {
    expect([...allowResponse(9)]).toEqual([9, 0, 0, 0, 1, 0, 0, 0]);
  });
  it.runIf(process.platform === 'linux')(
    'a malformed record after a full read: the events read before it are returned with the error (each holds an exec)',
    () => {
      const fds = pipe2(O_NONBLOCK | O_CLOEXEC);
      if (typeof fds === 'number') throw new Error(`pipe2: ${fds}`);
      const [r, w] = fds;
      try {
        const good = Buffer.concat(Array.from({ length: 64 }, (_, i) => rec(10 + i, 500)));
        expect(write(w, Buffer.concat([good, rec(99, 501, 2)]))).toBe(65 * EVENT_METADATA_LEN);
        const got = readFanotifyEvents(r, Buffer.alloc(64 * EVENT_METADATA_LEN));
        expect(got.events.map((e) => e.fd)).toEqual(Array.from({ length: 64 }, (_, i) => 10 + i));
        expect(got.error).toMatch(/version 2/);
        expect(readFanotifyEvents(r, Buffer.alloc(64 * EVENT_METADATA_LEN))).toEqual({
          events: [],
        });
      } finally {
        close(r);
        close(w);
      }
    },
  );
});
