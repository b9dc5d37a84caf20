/**
 * TUN writes on libuv's pool (opt-in, AWG_TUN_WRITE=pool): a write(2) to a TUN runs the
 * kernel's whole receive path for the packet on the caller's thread — for a coalesced TCP
 * group, IP, TCP, the socket's queue and the wake-up of its reader. Handed to a thread of
 * libuv's pool through koffi's async calls (as the pool sender does for sendmmsg,
 * src/native/udpbatch.ts `startPoolSender`), that work runs on the second core while the
 * engine's thread reads, opens and sends the next batch.
 *
 * Each group is assembled into the next free block of a ring (the packets are views of the
 * device's receive slab, reused once the batch is written); the blocks are written one at a
 * time and in order, so a flow's segments reach the kernel in the order they were opened. A
 * group that finds every block queued is dropped and counted (the kernel's own backlog drops
 * the same way). No second isolate: the memory is the ring's blocks.
 */
import { rawLibcFunc } from '../../native/libc.js';

type WriteFn = ((fd: number, buf: Buffer, n: number) => number) & {
  async?: (fd: number, buf: Buffer, n: number, cb: (err: unknown, r: number) => void) => void;
};

/** blocks in the ring: groups assembled and waiting for (or in) a pool thread's write */
export const TUN_RING_SLOTS = 16;

export class TunPoolWriter {
  private readonly blocks: Buffer[] = [];
  private readonly lens = new Int32Array(TUN_RING_SLOTS);
  private head = 0;
  private tail = 0;
  /** a write is on the pool now */
  busy = false;
  /** groups written on the pool */
  written = 0;
  /** writes the kernel refused on the pool (errno is the pool thread's: not known here) */
  failed = 0;
  /** groups dropped because every block was queued */
  dropped = 0;
  /** called once the ring is empty and nothing is in flight (close waits for it) */
  private idle: (() => void) | null = null;

  private constructor(
    private readonly fd: number,
    private readonly call: WriteFn,
    private readonly blockSize: number,
  ) {}

  /** A writer for `fd`, or null where koffi has no async calls. */
  static create(fd: number, blockSize: number): TunPoolWriter | null {
    const call = rawLibcFunc<WriteFn>('long write(int fd, void *buf, size_t n)');
    if (!call || typeof call.async !== 'function') return null;
    return new TunPoolWriter(fd, call, blockSize);
  }

  /** groups queued or in flight */
  get queued(): number {
    return this.head - this.tail;
  }

  /**
   * The next free block to assemble a group into, or null when every block is queued (the
   * caller drops the group). `commit(len)` queues it.
   */
  block(): Buffer | null {
    if (this.head - this.tail >= TUN_RING_SLOTS) {
      this.dropped++;
      return null;
    }
    const k = this.head % TUN_RING_SLOTS;
    return (this.blocks[k] ??= Buffer.allocUnsafeSlow(this.blockSize));
  }

  commit(len: number): void {
    this.lens[this.head % TUN_RING_SLOTS] = len;
    this.head++;
    if (!this.busy) this.next();
  }

  private next(): void {
    const k = this.tail % TUN_RING_SLOTS;
    this.busy = true;
    this.call.async!(this.fd, this.blocks[k]!, this.lens[k]!, this.done);
  }

  private readonly done = (err: unknown, r: number): void => {
    this.busy = false;
    if (err || r < 0) this.failed++;
    else this.written++;
    this.tail++;
    if (this.head !== this.tail) this.next();
    else if (this.idle) {
      const f = this.idle;
      this.idle = null;
      f();
    }
  };

  /** Runs `f` once nothing is queued or in flight (at once if so now). */
  whenIdle(f: () => void): void {
    if (!this.busy && this.head === this.tail) f();
    else this.idle = f;
  }

  /** the blocks (their pages released while idle: TunFile.releaseIdle) */
  get buffers(): readonly Buffer[] {
    return this.blocks;
  }
}
