/**
 * The Linux UDP bind on a socket of our own (src/native/udpsock.ts), not node:dgram:
 *
 * - receive in batches: one `recvmmsg` per up to 64 datagrams when the poll handle wakes,
 *   then `onBatchEnd` (the device writes the batch's inner packets to the TUN at once);
 * - send in batches: `sendmmsg` (src/native/udpbatch.ts), UDP GSO for runs of equal-size
 *   datagrams (AWG_UDP_GSO=0 turns it off); receive with UDP GRO (AWG_UDP_GRO=0 turns it off);
 *   when the socket buffer is full the rest waits in a bounded queue for POLLOUT, in order;
 * - opt-in (more than one core): under load (THREAD_AFTER datagrams within a second) the
 *   sendmmsg calls move off the engine's thread, so the kernel's transmit work (for a veth,
 *   the receiving namespace's stack too) runs beside the engine's: AWG_UDP_SEND_THREAD=pool
 *   hands bursts of 8 datagrams or more to libuv's pool through koffi's async calls
 *   (udpbatch.ts `startPoolSender`, no second isolate), =auto does so only while the engine's
 *   thread is starved (waits for a CPU as long as it runs: ../starved.ts), =1 every burst to a
 *   worker thread of its own (`startThread`, a second isolate's memory); bursts queue in a ring
 *   of 8 and leave in order. On a machine whose cores other processes keep busy the pool sender
 *   is what gets the engine a share of both cores; between two engines on two vCPUs it costs
 *   throughput. Measurements: bench/RESULTS.md, sections "The pool sender" and "Deciding at run
 *   time";
 * - replies leave from the address the peer reached us at: each datagram's destination
 *   (IP_PKTINFO / IPV6_PKTINFO) travels on its Endpoint as `src` and is set as the source of
 *   what we send there (a host with several addresses otherwise answers from the route's
 *   preferred one, and a peer or firewall expecting the original address drops it). When
 *   the kernel refuses that source (the address went away) we send without it until a
 *   datagram arrives on it again.
 *
 * `nativeEngineIo` uses it where recvmmsg exists; AWG_UDP_NATIVE=0 selects the node:dgram
 * bind (conn/udp.ts) instead (diagnosis).
 */
import { availableParallelism } from 'node:os';
import ipaddr from '../../util/ipaddr.js';
import { AwgError } from '../../errors.js';
import { close as closeFd } from '../../native/libc.js';
import { reuseBuffers } from '../buffers.js';
import { PerSecond } from '../rate.js';
import { Poller, UV_READABLE, UV_WRITABLE } from '../../native/poll.js';
import { setSocketMark } from '../../native/sockmark.js';
import { type StarvationGauge, threadGauge } from '../starved.js';
import { MAX_DATAGRAM } from '../../native/mmsg-block.js';
import { UdpBatcher } from '../../native/udpbatch.js';
import { type RecvMeta, UdpReceiver, openUdpSocket } from '../../native/udpsock.js';
import type { Bind, Endpoint } from './bind.js';

/** Datagrams waiting for room in the socket buffer at most; beyond, sends are dropped (UDP). */
const MAX_PENDING = 4096;
/**
 * Datagrams waiting for a free block of the pool sender's ring at most (one more ring's
 * worth): the pool's thread is short of CPU, and a deeper queue only adds delay and memory
 * (the daemon's busy engines held visibly more with one of MAX_PENDING).
 */
const MAX_PENDING_RING = 512;
/**
 * The sends leave the engine's thread once this many datagrams go out within a second (≈ 23
 * Mbit/s of full-size packets): idle and interactive tunnels never pay for the handoff (nor,
 * with AWG_UDP_SEND_THREAD=1, for a thread's memory).
 */
const THREAD_AFTER = 2000;
/** recvmmsg calls per wakeup at most: bounds the time away from other work (level-triggered). */
const MAX_CALLS_PER_WAKEUP = 8;

/**
 * IPv4 dotted quad, or RFC 5952 IPv6 text (ipaddr.js, as allowedips.ts formats), of 4/16
 * address bytes; v4-mapped IPv6 as IPv4. Called only when a datagram's sender changes.
 */
export function formatAddress(b: Uint8Array, off: number, len: 4 | 16): string {
  if (len === 4 || isMapped(b, off)) {
    const o = len === 4 ? off : off + 12;
    return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
  }
  return ipaddr.fromByteArray(Array.from(b.subarray(off, off + 16))).toString();
}

function isMapped(b: Uint8Array, off: number): boolean {
  for (let i = 0; i < 10; i++) if (b[off + i] !== 0) return false;
  return b[off + 10] === 0xff && b[off + 11] === 0xff;
}

interface Pending {
  bufs: Uint8Array[];
  to: Endpoint;
  start: number;
}

export class NativeUdpBind implements Bind {
  private fd = -1;
  private rx: UdpReceiver | null = null;
  private tx: UdpBatcher | null = null;
  private poller: Poller | null = null;
  private receiver: ((data: Uint8Array, from: Endpoint) => void) | null = null;
  private batchEnd: (() => void) | null = null;
  private readonly pending: Pending[] = [];
  /** AWG_BUFFER_REUSE=0: a copy per datagram (diagnosis) */
  private readonly reuse = reuseBuffers();
  private pendingCount = 0;
  private readonly gso: boolean;
  private readonly gro: boolean;
  /** hand sendmmsg off the engine's thread under load; 'eager': at open (tests) */
  private readonly sendThread: boolean | 'eager';
  /** the sends go to libuv's pool (koffi async calls) instead of a worker thread */
  private readonly sendPool: boolean;
  /** the pool sender takes bursts only while this says the thread is starved (AWG_UDP_SEND_THREAD=auto) */
  private readonly gauge: Pick<StarvationGauge, 'check'> | null;
  private readonly rate = new PerSecond();
  /** a source address the kernel refused; sends omit it until a datagram arrives on it */
  private refusedSrc = '';
  /** the last sender: consecutive datagrams from one peer share one Endpoint object */
  private readonly lastKey = new Uint8Array(28 + 16);
  private lastKeyLen = -1;
  private lastIfindex = -1;
  private lastEp: Endpoint | null = null;
  private lastMeta: RecvMeta | null = null;
  mark = 0;
  private queueDropped = 0;
  private threadAsked = false;

  /** datagrams dropped: the send queue or the sender thread's ring was full, or the thread dropped them */
  get sendDropped(): number {
    return this.queueDropped + (this.tx ? this.tx.ringDropped + this.tx.threadDropped : 0);
  }

  constructor(
    private readonly host?: string,
    opts: {
      gso?: boolean;
      gro?: boolean;
      sendThread?: boolean | 'eager';
      sendPool?: boolean;
      /** the pool sender only while this says the thread is starved (default: the thread's own) */
      gauge?: Pick<StarvationGauge, 'check'>;
    } = {},
  ) {
    // both on by default (AWG_UDP_GSO=0 / AWG_UDP_GRO=0 turn them off); GSO: more throughput
    // A→B for less CPU (one pass through the stack per run of datagrams)
    this.gso = opts.gso ?? process.env.AWG_UDP_GSO !== '0';
    this.gro = opts.gro ?? process.env.AWG_UDP_GRO !== '0';
    // opt-in (the measurements named at the top of this file). `auto`: the pool sender, taking
    // bursts only while other processes hold this thread back (starved.ts): under busy
    // autogroups A→B gains in some runs, and two engines of ours on two vCPUs keep their
    // throughput (`pool`, always under load, loses some there), but where the processes holding
    // it back are our own traffic's (the daemon bench's peers on the same two vCPUs) it costs
    // throughput and memory under load, so it is not the default. `pool`: always under load;
    // `1`: a worker thread of its own (cost A→B throughput on a quiet machine, and a second
    // isolate's memory); unset or `0`: off. On one core none of them (the sends could only take
    // turns with the engine).
    const st = process.env.AWG_UDP_SEND_THREAD ?? '0';
    const auto = opts.gauge !== undefined || (opts.sendPool === undefined && st === 'auto');
    this.sendPool = opts.sendPool ?? (st === 'pool' || auto);
    this.sendThread =
      opts.sendThread ??
      ((st === '1' || st === 'pool' || st === 'auto') && availableParallelism() > 1);
    this.gauge = auto ? (opts.gauge ?? threadGauge()) : null;
  }

  /** Whether new bursts go to the pool sender now (tests and stats). */
  get sendPoolActive(): boolean {
    return (this.tx?.pooled ?? false) && this.tx!.poolActive;
  }

  /** Whether sendmmsg runs on the sender thread now (for tests and stats). */
  get sendThreaded(): boolean {
    return this.tx?.threaded ?? false;
  }

  /** Whether the sends go to libuv's pool (the pool sender) rather than a worker thread (tests). */
  get sendPooled(): boolean {
    return this.tx?.pooled ?? false;
  }

  /** Whether the sender thread is up, so the next send goes to it (tests). */
  get sendThreadReady(): boolean {
    return this.tx?.threadReady ?? false;
  }

  /** Whether the kernel agreed to UDP GRO on the socket (for tests and stats). */
  groEnabled = false;

  /** UDP GRO counters of the receive side (coalesced buffers, datagrams split from them). */
  get groStats(): { reads: number; segments: number } {
    return { reads: this.rx?.groReads ?? 0, segments: this.rx?.groSegments ?? 0 };
  }

  /** Whether equal-size runs go out as UDP GSO messages (for tests). */
  get segmenting(): boolean {
    return this.tx?.gso ?? false;
  }

  /** GSO runs the path refused as too large (EMSGSIZE) and that went out unsegmented (stats, tests). */
  get segmentsApart(): number {
    return this.tx?.segmentsApart ?? 0;
  }

  async open(port: number): Promise<number> {
    await this.close();
    const s = openUdpSocket(this.host, port);
    this.fd = s.fd;
    try {
      if (this.mark) setSocketMark(s.fd, this.mark);
      this.rx = UdpReceiver.create(s.fd);
      this.tx = UdpBatcher.create(s.fd, s.family, this.gso);
      if (!this.rx || !this.tx)
        throw new AwgError('unsupported', 'recvmmsg/sendmmsg are not available');
      this.groEnabled = this.gro && this.rx.enableGro();
      if (this.sendThread === 'eager') {
        this.threadAsked = true;
        this.startSender();
      }
      // the handle must stay referenced: a collected one stops silently
      // (docs/platform-linux.md#polling-raw-fds)
      this.poller = new Poller(s.fd, (status, events) => this.ready(status, events));
    } catch (e) {
      await this.close();
      throw e;
    }
    return s.port;
  }

  onReceive(cb: ((data: Uint8Array, from: Endpoint) => void) | null): void {
    this.receiver = cb;
  }

  onBatchEnd(cb: (() => void) | null): void {
    this.batchEnd = cb;
  }

  /** The receive block's datagram slots (4 MiB with GRO's 64 KiB slots) go back to the kernel. */
  releaseIdle(): number {
    return this.rx?.releaseIdle() ?? 0;
  }

  private ready(status: number, events: number): void {
    if (!this.rx) return;
    if (status < 0 || events & UV_WRITABLE) this.flushPending();
    if (status < 0 || events & UV_READABLE) this.drain();
    // an error stopped the handle (EPOLLERR: an ICMP error queued on the socket); the
    // receive above surfaced and cleared it: keep polling
    if (status < 0) this.poller?.restart();
  }

  private drain(): void {
    for (let calls = 0; calls < MAX_CALLS_PER_WAKEUP && this.rx; calls++) {
      const r = this.rx.receive(this.onDatagram);
      if (r <= 0) break; // EAGAIN, or an error (ECONNREFUSED from ICMP and the like: UDP is lossy)
      // the batch ends with each recvmmsg: the next one reuses the block its views point into
      this.batchEnd?.();
      if (!this.rx || r < this.rx.batch) break;
    }
  }

  private readonly onDatagram = (data: Uint8Array, meta: RecvMeta): void => {
    const recv = this.receiver;
    if (!recv) return;
    const ep = this.endpointOf(meta);
    if (!ep) return;
    // a view of the receive block, reused by the next recvmmsg: valid until the batch ends
    // (Bind contract; the device opens transport messages into its own slab)
    recv(this.reuse ? data : Buffer.from(data), ep);
  };

  /** The sender and local address of a datagram; the previous object when they are the same. */
  private endpointOf(m: RecvMeta): Endpoint | null {
    // the datagrams split from one UDP GRO buffer share their meta
    if (m === this.lastMeta) return this.lastEp;
    this.lastMeta = m;
    this.lastEp = this.endpointOfBytes(m);
    return this.lastEp;
  }

  private endpointOfBytes(m: RecvMeta): Endpoint | null {
    const name = m.name;
    const family = name[0]! | (name[1]! << 8);
    const addrLen = family === 10 ? 24 : 8; // bytes of the sockaddr that identify the sender
    const k = this.lastKey;
    const len = addrLen + m.dst.length;
    let same = len === this.lastKeyLen && m.ifindex === this.lastIfindex && this.lastEp !== null;
    if (same) {
      for (let i = 0; i < addrLen; i++)
        if (k[i] !== name[i]) {
          same = false;
          break;
        }
    }
    if (same) {
      for (let i = 0; i < m.dst.length; i++)
        if (k[addrLen + i] !== m.dst[i]) {
          same = false;
          break;
        }
    }
    if (same) return this.lastEp;
    let address: string;
    if (family === 10) address = formatAddress(name, 8, 16);
    else if (family === 2) address = formatAddress(name, 4, 4);
    else return null;
    const port = (name[2]! << 8) | name[3]!;
    const dl = m.dst.length;
    const src = dl === 4 || dl === 16 ? formatAddress(m.dst, 0, dl) : undefined;
    if (src !== undefined && src === this.refusedSrc) this.refusedSrc = '';
    // link-local sources need the interface to be usable as a source again
    const srcIfindex = src !== undefined && src.startsWith('fe80:') ? m.ifindex : undefined;
    const ep: Endpoint = src === undefined ? { address, port } : { address, port, src, srcIfindex };
    k.set(name.subarray(0, addrLen), 0);
    k.set(m.dst, addrLen);
    this.lastIfindex = m.ifindex;
    this.lastKeyLen = len;
    this.lastEp = ep;
    return ep;
  }

  send(bufs: Uint8Array[], to: Endpoint): void {
    if (!this.tx) return;
    if (this.sendThread && !this.threadAsked) this.countRate(bufs.length);
    else if (this.gauge && this.tx.pooled) this.tx.poolActive = this.gauge.check(Date.now());
    if (this.pending.length) return this.enqueue(bufs, to, 0);
    const i = this.sendFrom(bufs, to, 0);
    if (i < bufs.length) this.enqueue(bufs, to, i);
  }

  private countRate(n: number): void {
    if (this.rate.add(n, Date.now()) >= THREAD_AFTER) {
      this.threadAsked = true;
      this.startSender();
    }
  }

  private startSender(): void {
    const tx = this.tx;
    if (!tx) return;
    if (!this.sendPool) return tx.startThread();
    // where koffi has no async calls the sends stay here (no worker thread in its place)
    if (!tx.startPoolSender()) return;
    tx.onRoom = () => this.flushPending();
    if (this.gauge) tx.poolActive = this.gauge.check(Date.now());
  }

  /** Sends bufs[start..]; returns the index of the first one the socket had no room for. */
  private sendFrom(bufs: Uint8Array[], to: Endpoint, start: number): number {
    const tx = this.tx!;
    const src = to.src && to.src !== this.refusedSrc ? to.src : '';
    let i = start;
    for (;;) {
      i = tx.send(bufs, to.address, to.port, i, src, to.srcIfindex ?? 0);
      if (tx.sourceRefused) {
        tx.sourceRefused = false;
        this.refusedSrc = src;
      }
      if (i >= bufs.length) return bufs.length;
      if (bufs[i]!.length > MAX_DATAGRAM) {
        i++; // cannot be a datagram: dropped
        continue;
      }
      // the socket buffer is full: the rest waits; anything else (an address the batcher
      // cannot parse) is dropped
      return tx.full ? i : bufs.length;
    }
  }

  private enqueue(bufs: Uint8Array[], to: Endpoint, start: number): void {
    const n = bufs.length - start;
    if (this.pendingCount + n > (this.tx?.ringFull ? MAX_PENDING_RING : MAX_PENDING)) {
      this.queueDropped += n;
      return;
    }
    // the caller reuses its buffers after send() returns: keep copies
    this.pending.push({ bufs: bufs.slice(start).map((b) => Uint8Array.from(b)), to, start: 0 });
    this.pendingCount += n;
    // the pool sender waits for the socket itself; what waits here waits for its ring (onRoom)
    if (!this.tx?.ringFull) this.poller?.watchWritable(true);
  }

  private flushPending(): void {
    while (this.pending.length && this.tx) {
      const p = this.pending[0]!;
      const before = p.start;
      const i = this.sendFrom(p.bufs, p.to, p.start);
      this.pendingCount -= i - before;
      if (i < p.bufs.length) {
        if (i === before && !this.poller) break;
        p.start = i;
        // still no room: wait for the next POLLOUT (the socket) or onRoom (the pool's ring)
        this.poller?.watchWritable(!this.tx.ringFull);
        return;
      }
      this.pending.shift();
    }
    this.poller?.watchWritable(false);
  }

  setMark(mark: number): void {
    this.mark = mark;
    if (this.fd >= 0) setSocketMark(this.fd, mark);
  }

  async close(): Promise<void> {
    this.poller?.close();
    this.poller = null;
    this.rx?.close();
    this.rx = null;
    // the sender thread stops before the fd is closed (its number could be reused)
    const tx = this.tx;
    this.tx = null;
    await tx?.close();
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
    this.pending.length = 0;
    this.pendingCount = 0;
    this.lastEp = null;
    this.lastMeta = null;
    this.lastKeyLen = -1;
    this.threadAsked = false;
  }
}
