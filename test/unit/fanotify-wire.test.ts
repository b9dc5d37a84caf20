import { describe, expect, it } from 'vitest';
import { allowResponse, FAN_OPEN_EXEC_PERM, parseEvents } from '../../src/native/fanotify.js';

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
});
