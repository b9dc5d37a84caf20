/**
 * The three ways a burst leaves, behind one interface (`Sender`); udpbatch.ts's UdpBatcher
 * picks one per `send` and holds what they share (`SenderHost`: the socket, the blocks, what
 * was learnt about the path):
 * - InlineSender: sendmmsg on the caller's thread from block 0; a full socket buffer is the
 *   caller's to wait for.
 * - PooledSender: each burst packed into the next free block of the ring (udpsend-ring.ts) and
 *   its sendmmsg call run on a thread of libuv's pool (koffi's async calls), one burst at a
 *   time and in order.
 * - ThreadedSender: each burst packed into the next free slot of a ring shared with a worker
 *   thread of its own (udpsend-worker.ts), which runs the calls.
 *
 * Errors are handled alike on every path: a short count goes on with the next message; a
 * refused source address is dropped from the burst (`sourceRefused`); EMSGSIZE on a GSO message
 * (a segment larger than the path MTU) sends its datagrams apart and lowers `segMax`;
 * EIO/EINVAL on a GSO message turns GSO off; anything else drops the message, as dgram does.
 */
import { Worker } from 'node:worker_threads';
import koffi from 'koffi';
import { E, POLLOUT, rawLibcFunc } from './libc.js';
import { BATCH_MAX, MMSG, MmsgBlock, sendApart, stripSource } from './mmsg-block.js';
import { sourceWorker } from '../util/source-worker.js';
import {
  RING,
  RING_INTS,
  RING_SLOTS,
  RING_WAIT_MS,
  SLOT,
  WAIT_WRITABLE_MS,
  burstEnds,
  ringSlot,
} from './udpsend-ring.js';

export type SendMmsg = ((fd: number, vec: bigint, vlen: number, flags: number) => number) & {
  /** koffi: the same call on a thread of libuv's pool; the callback runs on the caller's loop */
  async?: (
    fd: number,
    vec: bigint,
    vlen: number,
    flags: number,
    cb: (err: unknown, r: number) => void,
  ) => void;
};
type Poll = ((fds: Buffer, n: number, timeout: number) => number) & {
  async?: (fds: Buffer, n: number, timeout: number, cb: (err: unknown, r: number) => void) => void;
};

/** One way of sending bursts. */
export interface Sender {
  /**
   * Sends `bufs[start..]` to address:port (from local address `src`, '' for the kernel's
   * choice). Returns the index of the first datagram NOT handled: the caller sends the rest
   * its own way. Never throws.
   */
  send(
    bufs: readonly Uint8Array[],
    address: string,
    port: number,
    start: number,
    src: string,
    srcIfindex: number,
  ): number;
}

/** What the senders share: the batcher's socket, blocks and state (package-internal members). */
export interface SenderHost {
  readonly fd: number;
  /** 6 for an AF_INET6 socket (v4 peers as ::ffff:a.b.c.d), 4 for AF_INET */
  readonly family: 4 | 6;
  readonly call: SendMmsg;
  /** block 0 for the inline sender; block k for slot k of a ring */
  readonly blocks: MmsgBlock[];
  readonly closed: boolean;
  /** coalesce runs of equal-size datagrams (UDP_SEGMENT); turned off for good on EIO/EINVAL */
  gso: boolean;
  /** the largest datagram that may join a GSO run now */
  readonly segMax: number;
  /** a UDP_SEGMENT run of `seg`-byte datagrams was refused with EMSGSIZE */
  segRefused(seg: number): void;
  sourceRefused: boolean;
  full: boolean;
  ringFull: boolean;
  ringDropped: number;
  onRoom: (() => void) | null;
}

/** Adds blocks until there is one per slot of a ring. */
function ringBlocks(h: SenderHost): void {
  for (let k = h.blocks.length; k < RING_SLOTS; k++) h.blocks.push(new MmsgBlock(h.family));
}

/**
 * Packs a burst of `bufs[i..]` into block k and describes it in slot k of `slots`. Returns the
 * datagrams it took; 0 when the address does not parse or the first datagram is too large
 * (the caller's way).
 */
function packSlot(
  h: SenderHost,
  slots: Int32Array,
  k: number,
  bufs: readonly Uint8Array[],
  i: number,
  address: string,
  port: number,
  src: string,
  srcIfindex: number,
): number {
  const b = h.blocks[k]!;
  if (!b.setAddress(h.family, address, port)) return 0;
  b.setSource(src, srcIfindex, address.includes(':'));
  const s = ringSlot(k);
  const end = burstEnds(slots, s);
  const msgs = b.pack(bufs, i, h.gso, end, h.segMax);
  if (msgs === 0) return 0;
  slots[s + SLOT.msgs] = msgs;
  slots[s + SLOT.srcSpace] = b.srcSpace;
  slots[s + SLOT.gso] = h.gso ? 1 : 0;
  return end[msgs - 1]!;
}

/** sendmmsg on the caller's thread, from block 0. */
export class InlineSender implements Sender {
  /** per message of the current burst: index (relative to the burst) after its last datagram */
  private readonly msgEnd = new Int32Array(BATCH_MAX);

  constructor(private readonly h: SenderHost) {}

  send(
    bufs: readonly Uint8Array[],
    address: string,
    port: number,
    start: number,
    src: string,
    srcIfindex: number,
  ): number {
    const h = this.h;
    const b = h.blocks[0]!;
    if (!b.setAddress(h.family, address, port)) return start;
    b.setSource(src, srcIfindex, address.includes(':'));
    const end = this.msgEnd;
    let i = start;
    while (i < bufs.length) {
      const msgs = b.pack(bufs, i, h.gso, end, h.segMax);
      if (msgs === 0) return i; // oversized datagram: caller's way
      const r = h.call(h.fd, b.mem, msgs, 0);
      if (r > 0) {
        i += end[r - 1]!; // a short count: the next call reports the next message's error
        continue;
      }
      const e = koffi.errno();
      // full socket buffer: the caller's way (dgram queues until writable, keeps order)
      if (r === 0 || e === E.EAGAIN || e === E.EINTR) {
        h.full = true;
        return i;
      }
      if (b.srcSpace && (e === E.EINVAL || e === E.EADDRNOTAVAIL || e === E.ENETUNREACH)) {
        // the source address is no longer ours (or not routable from): send without it
        h.sourceRefused = true;
        b.setSource('', 0, false);
        continue;
      }
      if (h.gso && e === E.EMSGSIZE && end[0]! > 1) {
        // a segment larger than the path MTU (AmneziaWG's S4 prefix on a full-MTU packet):
        // pack again with the limit learnt, the run's datagrams go alone and are fragmented
        h.segRefused(bufs[i]!.length);
        continue;
      }
      if (h.gso && (e === E.EIO || e === E.EINVAL) && end[0]! > 1) {
        h.gso = false; // no UDP GSO on this path: plain messages from now on
        continue;
      }
      i += end[0]!; // this message failed (EPERM from a firewall, ENETUNREACH, …): dropped, as dgram does
    }
    return i;
  }
}

/**
 * The pool sender: bursts packed into the ring's blocks (head), bursts done (tail), messages of
 * the burst at tail already sent, and whether a call is out; each burst's description in the
 * ring layout (not shared: no thread reads it). The sendmmsg calls run on libuv's pool, one
 * burst at a time and in order, so the kernel's transmit work (for a veth: the receiving
 * namespace's stack too) runs beside the caller's thread. Unlike the sender thread it needs no
 * isolate: no heap, no second copy of the code. A burst the kernel does not take whole is
 * finished on the caller's thread, which sees the errno (refused source, GSO failure) and
 * handles it as the inline sender does; a full socket buffer is waited for (POLLOUT, up to
 * WAIT_WRITABLE_MS) on the pool too.
 */
export class PooledSender implements Sender {
  head = 0;
  tail = 0;
  sent = 0;
  busy = false;
  readonly slots = new Int32Array(RING_INTS);
  private readonly pfd = Buffer.alloc(8);
  /** called once the ring is empty (close waits for it) */
  private drained: (() => void) | null = null;

  private constructor(
    private readonly h: SenderHost,
    private readonly poll: Poll,
  ) {
    this.pfd.writeInt32LE(h.fd, 0);
    this.pfd.writeInt16LE(POLLOUT, 4);
  }

  /**
   * A pool sender for the host's socket, or null (and nothing changes) where koffi has no
   * async calls.
   */
  static create(h: SenderHost): PooledSender | null {
    const poll = rawLibcFunc<Poll>('int poll(void *fds, unsigned long nfds, int timeout)');
    if (typeof h.call.async !== 'function' || !poll || typeof poll.async !== 'function')
      return null;
    ringBlocks(h);
    return new PooledSender(h, poll);
  }

  /** Packs each burst into the ring's next free block; the pool sends them in order. */
  send(
    bufs: readonly Uint8Array[],
    address: string,
    port: number,
    start: number,
    src: string,
    srcIfindex: number,
  ): number {
    const h = this.h;
    let i = start;
    while (i < bufs.length) {
      // every block queued: the rest is the caller's to keep (`full`) until `onRoom`
      if (this.head - this.tail >= RING_SLOTS) {
        h.full = true;
        h.ringFull = true;
        return i;
      }
      const n = packSlot(
        h,
        this.slots,
        this.head % RING_SLOTS,
        bufs,
        i,
        address,
        port,
        src,
        srcIfindex,
      );
      if (n === 0) return i;
      i += n;
      this.head++;
      if (!this.busy) this.next();
    }
    return i;
  }

  /** Hands the rest of the burst at the ring's tail to the pool. */
  private next(): void {
    const h = this.h;
    const k = this.tail % RING_SLOTS;
    this.busy = true;
    const msgs = this.slots[ringSlot(k) + SLOT.msgs]!;
    h.call.async!(
      h.fd,
      h.blocks[k]!.mem + BigInt(this.sent * MMSG),
      msgs - this.sent,
      0,
      this.done,
    );
  }

  private readonly done = (err: unknown, r: number): void => {
    this.busy = false;
    const k = this.tail % RING_SLOTS;
    if (!err && r > 0) this.sent += r;
    else if (this.finish(k) === 'wait') {
      // no room in the socket buffer: wait for it on the pool, then go on with this burst
      this.busy = true;
      this.pfd.writeInt16LE(0, 6);
      this.poll.async!(this.pfd, 1, WAIT_WRITABLE_MS, (e, ready) => {
        this.busy = false;
        if (e || ready <= 0) this.drop(k);
        this.advance();
      });
      return;
    }
    this.advance();
  };

  private advance(): void {
    const k = this.tail % RING_SLOTS;
    let freed = false;
    if (this.sent >= this.slots[ringSlot(k) + SLOT.msgs]!) {
      this.tail++;
      this.sent = 0;
      freed = true;
    }
    if (this.head !== this.tail) this.next();
    else if (this.drained) this.drained();
    if (freed && !this.h.closed) this.h.onRoom?.();
  }

  /** Drops what is left of burst k (counted). */
  private drop(k: number): void {
    const s = ringSlot(k);
    const msgs = this.slots[s + SLOT.msgs]!;
    const end = burstEnds(this.slots, s);
    this.h.ringDropped += end[msgs - 1]! - (this.sent > 0 ? end[this.sent - 1]! : 0);
    this.sent = msgs;
  }

  /**
   * The pool's call sent nothing: the rest of burst k goes on here, where errno is ours to
   * read (refused source: stripped and reported; GSO failure: that message dropped, GSO off;
   * other errors drop the message, as the inline sender does). 'wait': the socket buffer is
   * full.
   */
  private finish(k: number): 'done' | 'wait' {
    const h = this.h;
    const b = h.blocks[k]!;
    const slots = this.slots;
    const s = ringSlot(k);
    const msgs = slots[s + SLOT.msgs]!;
    const end = burstEnds(slots, s);
    const count = (m: number) => end[m]! - (m > 0 ? end[m - 1]! : 0);
    while (this.sent < msgs) {
      const m = this.sent;
      const r = h.call(h.fd, b.mem + BigInt(m * MMSG), msgs - m, 0);
      if (r > 0) {
        this.sent += r;
        continue;
      }
      const e = koffi.errno();
      if (e === E.EINTR) continue;
      if (r === 0 || e === E.EAGAIN) return 'wait';
      const sp = slots[s + SLOT.srcSpace]!;
      if (sp && (e === E.EINVAL || e === E.EADDRNOTAVAIL || e === E.ENETUNREACH)) {
        stripSource(b.view, m, msgs, sp);
        slots[s + SLOT.srcSpace] = 0;
        b.setSource('', 0, false); // the block's control areas no longer match what it cached
        h.sourceRefused = true;
        continue;
      }
      if (slots[s + SLOT.gso] === 1 && count(m) > 1 && e === E.EMSGSIZE) {
        // a segment larger than the path MTU: the run's datagrams go alone, fragmented
        const r = sendApart(h.call, h.fd, b.view, b.address, m);
        h.segRefused(r.seg);
        h.ringDropped += r.dropped;
        this.sent++;
        continue;
      }
      if (slots[s + SLOT.gso] === 1 && (e === E.EIO || e === E.EINVAL) && count(m) > 1)
        h.gso = false;
      h.ringDropped += count(m);
      this.sent++;
    }
    return 'done';
  }

  /**
   * Waits (up to 2 s) for the bursts still queued to go out; false when a call still holds a
   * block after that (its blocks must then stay allocated).
   */
  async drain(): Promise<boolean> {
    if (this.head === this.tail) return true;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      this.drained = () => {
        clearTimeout(t);
        resolve();
      };
    });
    return !this.busy;
  }
}

/**
 * The sender thread (udpsend-worker.ts): from when it is ready, each burst is packed into a free
 * slot of a ring of native blocks shared with the thread, which runs the sendmmsg calls (and
 * waits for room in the socket buffer itself), in order.
 */
export class ThreadedSender implements Sender {
  readonly ring: Int32Array;
  /** bursts packed so far (the ring's head, as this side counts it) */
  private head = 0;
  /** the thread; null once it failed (nothing left to terminate) */
  worker: Worker | null;
  /** settles when the thread has exited */
  readonly exited: Promise<void>;

  /** Starts the thread; `failed` runs when it fails or exits. Throws when it cannot start. */
  constructor(
    private readonly h: SenderHost,
    failed: () => void,
  ) {
    ringBlocks(h);
    const ring = new Int32Array(new SharedArrayBuffer(4 * RING_INTS));
    const workerData = { ring, fd: h.fd, blocks: h.blocks.map((b) => b.mem) };
    const opts = { workerData, stdout: false, stderr: false };
    const w = import.meta.url.endsWith('.ts')
      ? sourceWorker(new URL('./udpsend-worker.ts', import.meta.url), opts) // the sources (tests)
      : new Worker(new URL('./udpsend-worker.js', import.meta.url), opts);
    w.unref();
    this.ring = ring;
    this.worker = w;
    this.exited = new Promise((resolve) => w.once('exit', () => resolve()));
    w.once('error', failed);
    w.once('exit', failed);
  }

  /** Whether the thread has started and takes bursts. */
  get ready(): boolean {
    return Atomics.load(this.ring, RING.ready) === 1;
  }

  /** datagrams the thread dropped (refused by the kernel, or no room for WAIT_WRITABLE_MS) */
  get dropped(): number {
    return Atomics.load(this.ring, RING.dropped);
  }

  /** Packs each burst into the next free slot of the ring and hands it to the thread. */
  send(
    bufs: readonly Uint8Array[],
    address: string,
    port: number,
    start: number,
    src: string,
    srcIfindex: number,
  ): number {
    const h = this.h;
    const ring = this.ring;
    // what the thread found since the last call
    if (Atomics.load(ring, RING.refused)) {
      Atomics.store(ring, RING.refused, 0);
      h.sourceRefused = true;
    }
    if (h.gso && Atomics.load(ring, RING.gsoFailed)) h.gso = false;
    const refused = Atomics.exchange(ring, RING.segRefused, 0);
    if (refused > 0) h.segRefused(refused);
    let i = start;
    while (i < bufs.length) {
      // a free slot: wait a little for the thread, then drop the rest (a full queue, as UDP does)
      let tail = Atomics.load(ring, RING.tail);
      if (this.head - tail >= RING_SLOTS) {
        const until = Date.now() + RING_WAIT_MS;
        while (this.head - tail >= RING_SLOTS && Date.now() < until) {
          Atomics.wait(ring, RING.tail, tail, RING_WAIT_MS);
          tail = Atomics.load(ring, RING.tail);
        }
        if (this.head - tail >= RING_SLOTS) {
          h.ringDropped += bufs.length - i;
          return bufs.length;
        }
      }
      const n = packSlot(h, ring, this.head % RING_SLOTS, bufs, i, address, port, src, srcIfindex);
      if (n === 0) return i;
      i += n;
      this.head++;
      Atomics.store(ring, RING.head, this.head);
      Atomics.notify(ring, RING.head);
    }
    return i;
  }

  /** Asks the thread to stop once it has sent the bursts it has. */
  stop(): void {
    Atomics.store(this.ring, RING.close, 1);
    Atomics.notify(this.ring, RING.head);
  }

  /** Waits for the thread's exit (terminated after 2 s). */
  async stopped(): Promise<void> {
    const t = setTimeout(() => void this.worker?.terminate(), 2000);
    await this.exited;
    clearTimeout(t);
  }
}
