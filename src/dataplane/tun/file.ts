/**
 * Linux TUN for the data plane (wireguard-go `tun/tun_linux.go`): one queue of a TUN device
 * attached through /dev/net/tun (native/tun.ts has the ioctls), read and written as raw IP
 * packets without PI headers.
 *
 * Offloads (default on; AWG_TUN_OFFLOAD=0 or `{ offload: false }` turns them off): the
 * queue is attached with IFF_VNET_HDR and TUNSETOFFLOAD(CSUM|TSO4|TSO6), so the kernel hands
 * over TCP super-packets of up to 64 KiB (split here into MTU-sized segments, one read
 * instead of ~45) and takes coalesced TCP segments back (one write and one trip through the
 * stack per group). tun/offload.ts has the packet work. Where the kernel refuses, the queue
 * falls back to plain packets. AWG_TUN_OFFLOAD=gro keeps the virtio header but asks for no
 * offloads (reads are plain packets; writes are still coalesced), for diagnosis.
 */
import { AwgError } from '../../errors.js';
import {
  AF_INET,
  E,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SyscallError,
  check,
  close,
  read,
  socket,
  write,
} from '../../native/libc.js';
import { inNetns } from '../../native/netns.js';
import { Poller } from '../../native/poll.js';
import { ifMtu, openTun, tunGetIff, tunSetOffload, tunSetVnetHdrSize } from '../../native/tun.js';
import {
  GSO_NONE,
  type GroGroup,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VNET_HDR_LEN,
  assembleGroup,
  completeChecksum,
  planGro,
  readVnetHdr,
  splitTcp,
} from './offload.js';
import type { TunDevice } from './tun.js';
import { availableParallelism } from 'node:os';
import { reuseBuffers } from '../buffers.js';
import { PerSecond } from '../rate.js';
import { releasePages } from '../../native/rawmem.js';
import { TunPoolWriter } from './pool-writer.js';
import { SlabViews } from '../views.js';

export interface TunFileStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** writes the kernel refused (bad packet, queue full) */
  txDropped: number;
  /** wakeups of the poll handle (rxPackets / wakeups = packets per wakeup) */
  wakeups: number;
  /** offloads: reads that carried a TCP super-packet, and the segments split from them */
  gsoReads: number;
  gsoSegments: number;
  /** offloads: writes that carried more than one packet, and the packets they carried */
  groWrites: number;
  groPackets: number;
  /** offloads: reads dropped because their virtio header did not describe the packet */
  rxDropped: number;
}

/** Read batch limit: bounds latency for other work on the event loop (polling is level-triggered). */
const MAX_BATCH = 256;
/**
 * Larger than any TUN packet plus the virtio header; a short buffer would truncate packets
 * silently (docs/platform-linux.md#tun-devices).
 */
const READ_BUF = 65536 + 64;
/**
 * Packets are read straight into a slab and handed over as views of it (no copy, no
 * allocation per packet). The views are valid until the receiver returns (TunDevice
 * contract): the next batch is read into the same slab, so the TUN allocates nothing after
 * start. A batch is delivered early when the slab has less than SLAB_RESERVE left.
 */
const SLAB = 1 << 20;
/**
 * Room a read needs: the read itself plus the segments a super-packet is split into (a
 * 128-byte header allowance per segment; 64 KiB of a 48-byte MSS is ~1,400 segments).
 */
const SLAB_RESERVE = READ_BUF + 1400 * 128;

/**
 * How long an MTU read from the link (SIOCGIFMTU) is used: the send path asks once per flush,
 * and an ioctl per flush was a visible part of sending the first packet after a handshake.
 * Measurements: bench/RESULTS.md, section "The first ping and the engine's main thread". A
 * stale value is read again on the next turn of the event loop, not in the call that finds it
 * stale (Step 24: that was the first packet after an idle second). A changed MTU is seen
 * within this time and one turn; until then the padding may overshoot the new MTU by at most
 * 15 bytes (it pads to a multiple of 16, never beyond the MTU it knows).
 */
export const MTU_TTL_MS = 1000;

/**
 * AWG_TUN_WRITE=pool (opt-in, offloads on, more than one core): once this many packets are
 * written within a second, groups of POOL_WRITE_MIN packets or more (and every group while
 * some are queued) are written on libuv's pool (pool-writer.ts).
 */
const POOL_WRITE_AFTER = 2000;
const POOL_WRITE_MIN = 8;

/**
 * One attached TUN queue driven on the main thread: `koffi.node.poll` wakes us, then
 * non-blocking reads drain until EAGAIN into a preallocated slab
 * (docs/platform-linux.md#polling-raw-fds: the
 * fastest method measured). Never blocks; `close()` stops the poll handle before closing
 * the fd (libuv requirement).
 */
export class TunFile implements TunDevice {
  readonly name: string;
  readonly stats: TunFileStats = {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    txDropped: 0,
    wakeups: 0,
    gsoReads: 0,
    gsoSegments: 0,
    groWrites: 0,
    groPackets: 0,
    rxDropped: 0,
  };
  private fd: number;
  private ctl: number;
  private handle: Poller | undefined;
  private receiver: ((packets: Uint8Array[]) => void) | null = null;
  private slab = Buffer.allocUnsafeSlow(SLAB);
  /** views of the slab's packets and segments (views.ts) */
  private readonly views = new SlabViews();
  private slabOff = 0;
  private errorCb: ((e: AwgError) => void) | undefined;
  /** offloads on: reads and writes carry a virtio_net_hdr */
  readonly offload: boolean;
  private readonly groups: GroGroup[] = [];
  /** AWG_BUFFER_REUSE=0: a fresh slab when one is used up, never rewound (diagnosis) */
  private readonly reuse = reuseBuffers();
  private wbuf: Buffer | undefined;
  /** the slab or the write buffer was written since their pages were last released */
  private written = false;
  /** the link's MTU as last read, and when (MTU_TTL_MS) */
  private mtuValue = 0;
  private mtuAt = -Infinity;
  /** AWG_TUN_WRITE=pool: coalesced groups written on libuv's pool under load */
  private readonly poolWanted: boolean;
  private pool: TunPoolWriter | null = null;
  private readonly writeRate = new PerSecond();
  /** a stale MTU's read is scheduled */
  private mtuRefresh = false;

  private constructor(
    fd: number,
    ctl: number,
    name: string,
    offload: boolean,
    writePool: boolean | 'eager' | undefined,
  ) {
    this.fd = fd;
    this.ctl = ctl;
    this.name = name;
    this.offload = offload;
    this.poolWanted =
      offload &&
      (writePool ?? (process.env.AWG_TUN_WRITE === 'pool' && availableParallelism() > 1)) !== false;
    if (this.poolWanted && writePool === 'eager')
      this.pool = TunPoolWriter.create(fd, READ_BUF + 64);
  }

  /** writes on libuv's pool: groups written there, refused there, dropped for a full ring */
  get poolStats(): { active: boolean; written: number; failed: number; dropped: number } {
    const p = this.pool;
    return {
      active: !!p,
      written: p?.written ?? 0,
      failed: p?.failed ?? 0,
      dropped: p?.dropped ?? 0,
    };
  }

  /**
   * Attach to (or create, non-persistent) TUN `name` in `opts.netns`; `offload` (default
   * from AWG_TUN_OFFLOAD: on, `0` off, `gro`) asks for the virtio header and TSO/checksum
   * offloads; 'gro' for the header only (coalesced writes, plain reads).
   */
  static open(
    name: string,
    opts: {
      netns?: string;
      exclusive?: boolean;
      offload?: boolean | 'gro';
      /** coalesced groups written on libuv's pool under load (default AWG_TUN_WRITE=pool on more than one core); 'eager': from the start (tests) */
      writePool?: boolean | 'eager';
    } = {},
  ): TunFile {
    const env = process.env.AWG_TUN_OFFLOAD;
    const mode = opts.offload ?? (env === '0' ? false : env === 'gro' ? 'gro' : true);
    const want = mode !== false;
    let h = openTun(name, { ...opts, nonBlocking: true, vnetHdr: want });
    let offload = false;
    if (want) {
      offload =
        tunSetVnetHdrSize(h.fd, VNET_HDR_LEN) >= 0 &&
        tunSetOffload(h.fd, mode === 'gro' ? 0 : TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) >= 0;
      if (!offload) {
        // the kernel refused: plain packets (re-attaching without the flag clears it)
        close(h.fd);
        h = openTun(name, { ...opts, nonBlocking: true });
      }
    }
    // a previous attacher's offloads must not outlive it: without the virtio header the
    // kernel would hand us unsegmented super-packets
    if (!offload) tunSetOffload(h.fd, 0);
    let ctl = -1;
    try {
      ctl = inNetns(opts.netns, () =>
        check('socket', socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)),
      );
      return new TunFile(h.fd, ctl, h.name, offload, opts.writePool);
    } catch (e) {
      close(h.fd);
      throw e;
    }
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  /** TUNGETIFF flags of the attached device. */
  flags(): number {
    return tunGetIff(this.fd).flags;
  }

  mtu(): number {
    const now = performance.now();
    if (this.mtuValue === 0) this.readMtu(now);
    else if (now - this.mtuAt >= MTU_TTL_MS && !this.mtuRefresh) {
      // stale: the ioctl runs on the next turn, off the packet path (the first packet after
      // an idle second, a first ping's, paid for it); this batch keeps the value it knows
      this.mtuRefresh = true;
      setImmediate(() => {
        this.mtuRefresh = false;
        if (!this.closed) this.readMtu(performance.now());
      });
    }
    return this.mtuValue;
  }

  private readMtu(now: number): void {
    this.mtuValue = ifMtu(this.ctl, this.name);
    this.mtuAt = now;
  }

  /** Called when reading fails for good (device deleted: EFAULT/EBADFD); delivery stops. */
  onError(cb: (e: AwgError) => void): void {
    this.errorCb = cb;
  }

  onReceive(cb: ((packets: Uint8Array[]) => void) | null): void {
    this.receiver = cb;
    if (this.closed) return;
    if (cb && !this.handle) {
      // the handle must stay referenced: a collected PollHandle silently stops
      this.handle = new Poller(this.fd, (status) => this.drain(status));
    } else if (!cb && this.handle) {
      this.handle.close();
      this.handle = undefined;
    }
  }

  private drain(status: number): void {
    if (this.closed || !this.receiver) return;
    this.stats.wakeups++;
    let batch: Uint8Array[] = [];
    if (this.reuse) this.slabOff = 0; // the views of the last batch are no longer in use
    for (;;) {
      if (this.slab.length - this.slabOff < SLAB_RESERVE) {
        if (!this.reuse) this.newSlab(SLAB);
        else if (batch.length) {
          this.receiver(batch);
          batch = [];
          if (this.closed || !this.receiver) return;
        }
        this.slabOff = 0;
      }
      const n = read(this.fd, this.slab.subarray(this.slabOff), READ_BUF);
      if (n < 0) {
        const errno = -n;
        if (errno === E.EAGAIN || errno === E.EINTR) break;
        if (batch.length) this.receiver(batch);
        return this.fail(new SyscallError('read', errno, this.name));
      }
      if (n === 0) break;
      this.written = true;
      if (this.offload) this.takeVnet(n, batch);
      else {
        this.stats.rxPackets++;
        this.stats.rxBytes += n;
        batch.push(this.views.of(this.slab, this.slabOff, this.slabOff + n));
        this.slabOff += (n + 7) & ~7;
      }
      if (batch.length >= MAX_BATCH) {
        this.receiver(batch);
        batch = [];
        if (this.closed || !this.receiver) return;
        if (this.reuse) this.slabOff = 0;
      }
    }
    if (batch.length) this.receiver(batch);
    // EPOLLERR stopped the handle but read() found no error: keep polling
    if (status < 0 && !this.closed && this.handle) this.handle.restart();
  }

  /** The read slab's and write buffer's pages go back to the kernel (the reused slab only). */
  releaseIdle(): number {
    if (this.closed || !this.reuse || !this.written) return 0;
    if (this.pool && this.pool.queued) return 0;
    this.written = false;
    return releasePages(this.slab, this.wbuf, ...(this.pool?.buffers ?? []));
  }

  private newSlab(size: number): void {
    this.slab = Buffer.allocUnsafeSlow(size);
    this.slabOff = 0;
  }

  /** A read of `n` bytes at slabOff: virtio header + a packet or a TCP super-packet. */
  private takeVnet(n: number, batch: Uint8Array[]): void {
    const at = this.slabOff;
    const slab = this.slab;
    this.slabOff += (n + 7) & ~7;
    if (n <= VNET_HDR_LEN) {
      this.stats.rxDropped++;
      return;
    }
    const h = readVnetHdr(slab, at);
    const pkt = slab.subarray(at + VNET_HDR_LEN, at + n);
    if (h.gsoType === GSO_NONE) {
      if (
        h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM &&
        !completeChecksum(pkt, h.csumStart, h.csumOffset)
      ) {
        this.stats.rxDropped++;
        return;
      }
      this.stats.rxPackets++;
      this.stats.rxBytes += pkt.length;
      batch.push(pkt);
      return;
    }
    // segments need the payload plus a header (≤ 120 B) and alignment per segment
    const segments = h.gsoSize > 0 ? Math.ceil(pkt.length / h.gsoSize) + 1 : 1;
    const need = pkt.length + segments * 128;
    if (this.slab.length - this.slabOff < need) this.newSlab(Math.max(SLAB, need));
    const out = this.slab;
    const before = batch.length;
    const views = this.views;
    const end = splitTcp(pkt, h, out, this.slabOff, (s, e) => batch.push(views.of(out, s, e)));
    if (end < 0) {
      this.stats.rxDropped++;
      return;
    }
    this.slabOff = end;
    const got = batch.length - before;
    this.stats.gsoReads++;
    this.stats.gsoSegments += got;
    this.stats.rxPackets += got;
    for (let i = before; i < batch.length; i++) this.stats.rxBytes += batch[i]!.length;
  }

  private fail(e: AwgError): void {
    this.handle?.close();
    this.handle = undefined;
    this.errorCb?.(e);
  }

  /**
   * Writes packets to the kernel. A packet the kernel refuses (EINVAL: not IPv4/IPv6,
   * EAGAIN: queue full) is dropped and counted; a vanished device throws AwgError('driver').
   */
  write(packets: Uint8Array[]): void {
    if (this.closed) throw new AwgError('driver', `TUN ${this.name} is closed`);
    if (this.offload) return this.writeVnet(packets);
    for (const p of packets) this.writeOne(p, p.length, 1, p.length);
  }

  /** Coalesces TCP segments of a flow (GRO) and writes each group behind a virtio header. */
  private writeVnet(packets: Uint8Array[]): void {
    const buf = (this.wbuf ??= Buffer.allocUnsafeSlow(READ_BUF + 64));
    this.written = true;
    if (
      this.poolWanted &&
      !this.pool &&
      this.writeRate.add(packets.length, performance.now()) >= POOL_WRITE_AFTER
    )
      this.pool = TunPoolWriter.create(this.fd, READ_BUF + 64);
    const pool = this.pool;
    const n = planGro(packets, this.groups);
    for (let i = 0; i < n; i++) {
      const g = this.groups[i]!;
      const count = g.pkts.length;
      if (count > 1) {
        this.stats.groWrites++;
        this.stats.groPackets += count;
      }
      // a large group, or any while some are queued (order), goes to the pool
      if (pool && (pool.queued > 0 || count >= POOL_WRITE_MIN)) {
        const blk = pool.block();
        if (!blk) this.stats.txDropped += count;
        else {
          const len = assembleGroup(g, blk);
          this.stats.txPackets += count;
          this.stats.txBytes += len - VNET_HDR_LEN;
          pool.commit(len);
        }
      } else {
        const len = assembleGroup(g, buf);
        this.writeOne(buf, len, count, len - VNET_HDR_LEN);
      }
      g.pkts = []; // the views are not kept (a new array: setting length is a runtime call)
    }
  }

  /** One write(2) of `len` bytes carrying `count` packets of `bytes` IP bytes in all. */
  private writeOne(b: Uint8Array, len: number, count: number, bytes: number): void {
    const n = write(this.fd, b, len);
    if (n >= 0) {
      this.stats.txPackets += count;
      this.stats.txBytes += bytes;
      return;
    }
    const errno = -n;
    if (
      errno === E.EINVAL ||
      errno === E.EAGAIN ||
      errno === E.EINTR ||
      errno === E.EMSGSIZE ||
      errno === E.ENOBUFS ||
      errno === E.EIO
    ) {
      this.stats.txDropped += count;
      return;
    }
    throw new SyscallError('write', errno, this.name);
  }

  close(): void {
    if (this.closed) return;
    this.handle?.close();
    this.handle = undefined;
    this.receiver = null;
    // the device may outlive us (persistent): leave no offloads for a plain attacher
    if (this.offload) tunSetOffload(this.fd, 0);
    const fd = this.fd;
    // a write queued on the pool must not reach a reused descriptor number: closed after it
    if (this.pool) this.pool.whenIdle(() => close(fd));
    else close(fd);
    close(this.ctl);
    this.fd = -1;
    this.ctl = -1;
  }
}
