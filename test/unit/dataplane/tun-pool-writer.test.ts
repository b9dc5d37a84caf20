/**
 * The TUN writes on libuv's pool (src/dataplane/tun/pool-writer.ts) on a pipe: blocks leave
 * one at a time and in the order they were queued, a group that finds every block queued is
 * dropped and counted, and `whenIdle` runs once the last write is done (what TunFile.close
 * waits for before closing the descriptor).
 */
import { describe, expect, it } from 'vitest';
import { O_CLOEXEC, close, pipe2, read } from '../../../src/native/libc.js';
import { TUN_RING_SLOTS, TunPoolWriter } from '../../../src/dataplane/tun/pool-writer.js';

const REC = 8;

function queue(w: TunPoolWriter, from: number, count: number): number {
  let queued = 0;
  for (let i = from; i < from + count; i++) {
    const b = w.block();
    if (!b) continue;
    b.writeUInt32LE(i, 0);
    b.writeUInt32LE(0xa5a50000 + i, 4);
    w.commit(REC);
    queued++;
  }
  return queued;
}

function readRecords(fd: number, count: number): number[] {
  const buf = Buffer.alloc(REC * (count + 1));
  const n = read(fd, buf);
  expect(n).toBe(REC * count);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    expect(buf.readUInt32LE(i * REC + 4)).toBe(0xa5a50000 + buf.readUInt32LE(i * REC));
    out.push(buf.readUInt32LE(i * REC));
  }
  return out;
}

describe.skipIf(process.platform !== 'linux')('TunPoolWriter (writes on libuv’s pool)', () => {
  it('writes the queued blocks in order, drops what finds the ring full, and reports idle', async () => {
    const fds = pipe2(O_CLOEXEC);
    if (typeof fds === 'number') throw new Error(`pipe2: ${fds}`);
    const [r, wfd] = fds;
    try {
      const w = TunPoolWriter.create(wfd, 64);
      expect(w).not.toBeNull();
      // one synchronous turn: no write can complete in between, so a ring's worth is queued
      expect(queue(w!, 0, TUN_RING_SLOTS + 5)).toBe(TUN_RING_SLOTS);
      expect(w!.dropped).toBe(5);
      expect(w!.queued).toBe(TUN_RING_SLOTS);
      await new Promise<void>((res) => w!.whenIdle(res));
      expect(w!.queued).toBe(0);
      expect(w!.written).toBe(TUN_RING_SLOTS);
      expect(readRecords(r, TUN_RING_SLOTS)).toEqual([...Array(TUN_RING_SLOTS).keys()]);

      // the blocks are reused; the order holds across the ring's wrap
      expect(queue(w!, 100, 7)).toBe(7);
      await new Promise<void>((res) => w!.whenIdle(res));
      expect(readRecords(r, 7)).toEqual([100, 101, 102, 103, 104, 105, 106]);
      expect(w!.failed).toBe(0);

      // idle already: at once
      let ran = false;
      w!.whenIdle(() => (ran = true));
      expect(ran).toBe(true);
    } finally {
      close(r);
      close(wfd);
    }
  });
});
