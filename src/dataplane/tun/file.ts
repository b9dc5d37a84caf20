/**
 * Linux TUN for the data plane (wireguard-go `tun/tun_linux.go`): one queue of a TUN device
 * attached through /dev/net/tun (native/tun.ts has the ioctls), read and written as raw IP
 * packets without PI headers.
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
import { ifMtu, openTun, tunGetIff } from '../../native/tun.js';
import type { TunDevice } from './tun.js';

export interface TunFileStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** writes the kernel refused (bad packet, queue full) */
  txDropped: number;
  /** wakeups of the poll handle (rxPackets / wakeups = packets per wakeup) */
  wakeups: number;
}

/** Read batch limit: bounds latency for other work on the event loop (polling is level-triggered). */
const MAX_BATCH = 256;
/** Larger than any TUN MTU; a short buffer would truncate packets silently (LINUX.md §1.7). */
const READ_BUF = 65536;
/**
 * Packets are read straight into a slab and handed over as views of it (no copy, no
 * allocation per packet). A slab is never written again once a view of it was handed out:
 * a fresh one starts when less than READ_BUF remains.
 */
const SLAB = 1 << 20;

/**
 * One attached TUN queue driven on the main thread: `koffi.node.poll` wakes us, then
 * non-blocking reads drain until EAGAIN into a preallocated slab (LINUX.md §1.5: the
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
  };
  private fd: number;
  private ctl: number;
  private handle: Poller | undefined;
  private receiver: ((packets: Uint8Array[]) => void) | null = null;
  private slab = Buffer.allocUnsafeSlow(SLAB);
  private slabOff = 0;
  private errorCb: ((e: AwgError) => void) | undefined;

  private constructor(fd: number, ctl: number, name: string) {
    this.fd = fd;
    this.ctl = ctl;
    this.name = name;
  }

  /** Attach to (or create, non-persistent) TUN `name` in `opts.netns`. */
  static open(name: string, opts: { netns?: string; exclusive?: boolean } = {}): TunFile {
    const h = openTun(name, { ...opts, nonBlocking: true });
    let ctl = -1;
    try {
      ctl = inNetns(opts.netns, () =>
        check('socket', socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)),
      );
      return new TunFile(h.fd, ctl, h.name);
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
    return ifMtu(this.ctl, this.name);
  }

  /** Called when reading fails for good (device deleted: EFAULT/EBADFD); delivery stops. */
  onError(cb: (e: AwgError) => void): void {
    this.errorCb = cb;
  }

  onReceive(cb: ((packets: Uint8Array[]) => void) | null): void {
    this.receiver = cb;
    if (this.closed) return;
    if (cb && !this.handle) {
      // the handle must stay referenced: a collected PollHandle silently stops (LINUX.md §6.5)
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
    for (;;) {
      if (SLAB - this.slabOff < READ_BUF) {
        this.slab = Buffer.allocUnsafeSlow(SLAB);
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
      this.stats.rxPackets++;
      this.stats.rxBytes += n;
      batch.push(this.slab.subarray(this.slabOff, this.slabOff + n));
      this.slabOff += (n + 7) & ~7;
      if (batch.length >= MAX_BATCH) {
        this.receiver(batch);
        batch = [];
        if (this.closed || !this.receiver) return;
      }
    }
    if (batch.length) this.receiver(batch);
    // EPOLLERR stopped the handle but read() found no error: keep polling
    if (status < 0 && !this.closed && this.handle) this.handle.restart();
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
    for (const p of packets) {
      const n = write(this.fd, p, p.length);
      if (n >= 0) {
        this.stats.txPackets++;
        this.stats.txBytes += n;
        continue;
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
        this.stats.txDropped++;
        continue;
      }
      throw new SyscallError('write', errno, this.name);
    }
  }

  close(): void {
    if (this.closed) return;
    this.handle?.close();
    this.handle = undefined;
    this.receiver = null;
    close(this.fd);
    close(this.ctl);
    this.fd = -1;
    this.ctl = -1;
  }
}
