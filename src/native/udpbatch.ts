/**
 * Batched UDP send on an existing socket fd: one `sendmmsg(2)` per burst instead of one
 * `sendmsg` per datagram through node:dgram (one syscall per burst costs far less than one per
 * datagram). Measurements: bench/RESULTS.md, section "Batched UDP send".
 *
 * The UdpBatcher holds the socket's state and picks, per burst, one of three senders
 * (udpsend-senders.ts): inline on the caller's thread, the pool sender (libuv's pool), or the
 * sender thread. Each burst is packed into a native block (mmsg-block.ts: datagrams back to
 * back, runs of equal-size ones as one UDP_SEGMENT message with UDP GSO); the pool sender and
 * the thread queue blocks in a ring (udpsend-ring.ts). Socket options (SO_MARK) are per socket,
 * so datagrams sent here carry the same mark as node:dgram's.
 *
 * Oversized datagrams: UDP GSO needs every segment to fit the path MTU (the kernel answers
 * EMSGSIZE for a whole `UDP_SEGMENT` message otherwise), while a plain datagram larger than the
 * path MTU is fragmented by the kernel (IP_PMTUDISC_WANT, the socket default). AmneziaWG's S4
 * prefix makes a full-MTU packet exactly such a datagram (1420 + 32 + S4 > 1452). A refused GSO
 * message is therefore sent again a datagram at a time, and the batcher learns the largest
 * segment the path took (`segMax`), so later runs of larger datagrams go out unsegmented from
 * the start; the learnt limit is forgotten after SEG_MAX_TTL_MS, so a path whose MTU grew
 * gets GSO back (at the price of one refused message).
 *
 * Source address (`send(…, src)`): every message then carries an IP_PKTINFO (IPv4 and
 * v4-mapped destinations) or IPV6_PKTINFO cmsg naming the local address the peer reached us
 * at, so replies leave from it (wireguard-go's sticky sockets). When the kernel refuses that
 * address (it went away), the message is sent again without it and `sourceRefused` is set.
 */
import { rawLibcFunc } from './libc.js';
import { MmsgBlock, SEG_ANY } from './mmsg-block.js';
import {
  InlineSender,
  PooledSender,
  type SendMmsg,
  type SenderHost,
  ThreadedSender,
} from './udpsend-senders.js';

/** How long a learnt limit on GSO segments (a refused UDP_SEGMENT message) holds. */
export const SEG_MAX_TTL_MS = 60_000;
/**
 * Sends of fewer datagrams than this stay on the caller's thread while the pool sender has
 * nothing queued (as the crypto pool's runs of fewer than 8 messages do).
 */
export const POOL_MIN_DATAGRAMS = 8;

const sendmmsg = () =>
  rawLibcFunc<SendMmsg>('int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)');

export class UdpBatcher implements SenderHost {
  /** @internal block 0 for inline sends; with a ring, block k for its slot k */
  readonly blocks: MmsgBlock[];
  /** @internal */
  closed = false;
  private readonly inline: InlineSender;
  /** the sender thread (`startThread`), kept after it failed (its ring and counters) */
  private thread: ThreadedSender | null = null;
  private threadState: 'off' | 'starting' | 'on' | 'failed' = 'off';
  /** the pool sender (`startPoolSender`) */
  private pool: PooledSender | null = null;
  /** a send with a source address was refused and repeated without it */
  sourceRefused = false;
  /** the last `send` stopped early because the socket buffer (pool sender: the ring) was full */
  full = false;
  /** the last `send` stopped early because the pool sender's ring was full (wait for onRoom, not POLLOUT) */
  ringFull = false;
  /** pool sender: a block of the ring is free again (the caller sends what it kept) */
  onRoom: (() => void) | null = null;
  /**
   * pool sender: whether new bursts go to the pool; while false they stay on the caller's
   * thread once the ring is empty (what is queued leaves first, in order)
   */
  poolActive = true;
  /** datagrams dropped because the sender thread's ring stayed full */
  ringDropped = 0;
  /** the largest GSO segment the path takes (learnt from EMSGSIZE; SEG_ANY: no limit known) */
  private segLimit = SEG_ANY;
  private segLimitAt = 0;
  /** UDP_SEGMENT messages the kernel refused as too large and that went out a datagram at a time */
  segmentsApart = 0;

  /**
   * @param fd the socket's fd (owned by the caller; not closed while the thread runs)
   * @param family 6 for an AF_INET6 socket (v4 peers as ::ffff:a.b.c.d), 4 for AF_INET
   * @param gso coalesce runs of equal-size datagrams into one message with UDP_SEGMENT
   *   (one pass through the stack per run); turned off for good on the first EIO/EINVAL
   */
  private constructor(
    /** @internal */ readonly fd: number,
    /** @internal */ readonly family: 4 | 6,
    /** @internal */ readonly call: SendMmsg,
    public gso: boolean,
  ) {
    this.blocks = [new MmsgBlock(family)];
    this.inline = new InlineSender(this);
  }

  /** A batcher for `fd`, or null where sendmmsg is unavailable (other OS, koffi failure). */
  static create(fd: number, family: 4 | 6, gso = false): UdpBatcher | null {
    const fn = sendmmsg();
    if (!fn || fd < 0) return null;
    try {
      return new UdpBatcher(fd, family, fn, gso);
    } catch {
      return null;
    }
  }

  /**
   * The largest datagram that may join a GSO run now: what the path took when a run was last
   * refused, forgotten SEG_MAX_TTL_MS later.
   */
  get segMax(): number {
    if (this.segLimit !== SEG_ANY && performance.now() - this.segLimitAt > SEG_MAX_TTL_MS)
      this.segLimit = SEG_ANY;
    return this.segLimit;
  }

  /** @internal A UDP_SEGMENT run of `seg`-byte datagrams was refused with EMSGSIZE. */
  segRefused(seg: number): void {
    this.segLimit = Math.min(this.segLimit, seg - 1);
    this.segLimitAt = performance.now();
    this.segmentsApart++;
  }

  /** Whether bursts go to the sender thread (or, with `startPoolSender`, to the pool). */
  get threaded(): boolean {
    return this.threadState === 'on';
  }

  /** Whether the sender thread has started and the next burst goes to it (tests). */
  get threadReady(): boolean {
    return (
      this.threadState === 'on' ||
      (this.threadState === 'starting' && !!this.thread && this.thread.ready)
    );
  }

  /** datagrams the sender thread dropped (refused by the kernel, or no room for 1 s) */
  get threadDropped(): number {
    return this.thread ? this.thread.dropped : 0;
  }

  /**
   * Starts the sender thread (udpsend-worker.ts): from when it is ready, `send` packs each
   * burst into a free slot of a ring of native blocks and returns; the thread runs the
   * sendmmsg calls (and waits for room in the socket buffer itself), in order. Until then,
   * and when it cannot start, sends stay on the caller's thread.
   */
  startThread(): void {
    if (this.threadState !== 'off' || this.closed) return;
    this.threadState = 'starting';
    try {
      this.thread = new ThreadedSender(this, () => this.threadFailed());
    } catch {
      this.threadFailed();
    }
  }

  /**
   * Starts the pool sender (udpsend-senders.ts PooledSender): from now on `send` hands bursts of
   * POOL_MIN_DATAGRAMS or more (and every burst while some are queued) to libuv's pool, one at
   * a time and in order, so the kernel's transmit work runs beside the caller's thread.
   * Returns false (and nothing changes) where koffi has no async calls.
   */
  startPoolSender(): boolean {
    if (this.threadState !== 'off' || this.closed) return false;
    const pool = PooledSender.create(this);
    if (!pool) return false;
    this.pool = pool;
    this.threadState = 'on';
    return true;
  }

  /** Whether bursts go to libuv's pool (startPoolSender). */
  get pooled(): boolean {
    return this.pool !== null;
  }

  private threadFailed(): void {
    if (this.closed) return;
    // bursts still queued are lost (UDP); sends go on on this thread
    this.threadState = 'failed';
    if (this.thread) this.thread.worker = null;
  }

  /**
   * Sends `bufs[start..]` to address:port in sendmmsg bursts. A datagram the kernel rejects
   * (EPERM, ENETUNREACH, …) is dropped, like dgram's swallowed send errors. Returns the index
   * of the first datagram NOT handled (bufs.length when all were): the caller sends the rest
   * its own way (full socket buffer, an oversized datagram, an unparsable address).
   * Never throws.
   */
  send(
    bufs: readonly Uint8Array[],
    address: string,
    port: number,
    start = 0,
    src = '',
    srcIfindex = 0,
  ): number {
    this.full = false;
    if (this.closed) return start;
    if (this.threadState === 'starting' && this.thread && this.thread.ready)
      this.threadState = 'on';
    this.ringFull = false;
    const u = this.pool;
    // a short send with nothing queued stays here: a handshake, a ping or an ACK does not wait
    // for a pool thread to get a CPU (the handshake boost raises only the engine's thread)
    if (
      u &&
      (u.busy ||
        u.head !== u.tail ||
        (this.poolActive && bufs.length - start >= POOL_MIN_DATAGRAMS))
    )
      return u.send(bufs, address, port, start, src, srcIfindex);
    if (this.threadState === 'on' && !u)
      return this.thread!.send(bufs, address, port, start, src, srcIfindex);
    return this.inline.send(bufs, address, port, start, src, srcIfindex);
  }

  /** Stops the sender thread (after the bursts it has) and frees the blocks; the fd stays open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.thread?.stop();
    // the pool's bursts go out first (a call in flight uses a block); a call still holding a
    // block after 2 s leaves the blocks allocated (a leak, not a use-after-free)
    if (this.pool && !(await this.pool.drain())) return;
    if (this.thread) await this.thread.stopped();
    for (const b of this.blocks) b.free();
  }
}
