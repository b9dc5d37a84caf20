/**
 * Linux TUN devices through /dev/net/tun (LINUX.md §1). Always IFF_TUN|IFF_NO_PI: attaching
 * without IFF_NO_PI silently switches an existing device to PI mode for every later reader.
 */
import { AwgError } from '../errors.js';
import type { TunDevice } from '../dataplane/tun/tun.js';
import {
  AF_INET,
  E,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SyscallError,
  check,
  close,
  ioctl,
  ioctlInt,
  open,
  read,
  socket,
  write,
} from './libc.js';
import { inNetns } from './netns.js';
import { Poller } from './poll.js';

export const TUNSETIFF = 0x400454ca;
export const TUNSETPERSIST = 0x400454cb;
export const TUNSETOWNER = 0x400454cc;
export const TUNSETGROUP = 0x400454ce;
export const TUNGETFEATURES = 0x800454cf;
export const TUNGETIFF = 0x800454d2;
export const SIOCGIFMTU = 0x8921;

export const IFF_TUN = 0x0001;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_PERSIST = 0x0800;
export const IFF_NO_PI = 0x1000;
export const IFF_TUN_EXCL = 0x8000;

export const TUN_PATH = '/dev/net/tun';
export const IFNAMSIZ = 16;

/** Linux interface names: 1–15 bytes, no '/', ':' or whitespace. */
export function validIfName(name: string): boolean {
  return (
    Buffer.byteLength(name) > 0 &&
    Buffer.byteLength(name) < IFNAMSIZ &&
    !/[\s/:]/.test(name) &&
    name !== '.' &&
    name !== '..'
  );
}

/** struct ifreq (40 bytes): name at 0, u16 flags (or s32 mtu) at 16, zeroed tail. */
export function ifreq(name: string, flags = 0): Buffer {
  if (name !== '' && !validIfName(name) && !/%d/.test(name))
    throw new AwgError('invalid-config', `invalid interface name ${JSON.stringify(name)}`);
  const b = Buffer.alloc(40);
  b.write(name, 0, IFNAMSIZ - 1, 'utf8');
  b.writeUInt16LE(flags, 16);
  return b;
}

export function ifreqName(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 || end > IFNAMSIZ ? IFNAMSIZ : end);
}

export interface TunOpenOptions {
  /** network namespace name or path to open the device in (default: current) */
  netns?: string;
  /** fail with EBUSY when the device already exists (never attach to someone else's) */
  exclusive?: boolean;
  multiQueue?: boolean;
  nonBlocking?: boolean;
}

export interface TunHandle {
  fd: number;
  name: string;
  flags: number;
}

/** Open /dev/net/tun and create-or-attach `name`. The caller owns `fd`. */
export function openTun(name: string, opts: TunOpenOptions = {}): TunHandle {
  return inNetns(opts.netns, () => {
    const fd = check(
      'open',
      open(TUN_PATH, O_RDWR | O_CLOEXEC | (opts.nonBlocking ? O_NONBLOCK : 0)),
      TUN_PATH,
    );
    try {
      const flags =
        IFF_TUN |
        IFF_NO_PI |
        (opts.exclusive ? IFF_TUN_EXCL : 0) |
        (opts.multiQueue ? IFF_MULTI_QUEUE : 0);
      const req = ifreq(name, flags);
      check('ioctl(TUNSETIFF)', ioctl(fd, TUNSETIFF, req), name);
      return { fd, ...tunGetIff(fd) };
    } catch (e) {
      close(fd);
      throw e;
    }
  });
}

/** Name and flags of the device behind `fd` (flags include IFF_PERSIST once persistent). */
export function tunGetIff(fd: number): { name: string; flags: number } {
  const req = Buffer.alloc(40);
  check('ioctl(TUNGETIFF)', ioctl(fd, TUNGETIFF, req));
  return { name: ifreqName(req), flags: req.readUInt16LE(16) };
}

export function tunSetPersist(fd: number, on: boolean): void {
  check('ioctl(TUNSETPERSIST)', ioctlInt(fd, TUNSETPERSIST, on ? 1 : 0));
}
export function tunSetOwner(fd: number, uid: number): void {
  check('ioctl(TUNSETOWNER)', ioctlInt(fd, TUNSETOWNER, uid));
}
export function tunSetGroup(fd: number, gid: number): void {
  check('ioctl(TUNSETGROUP)', ioctlInt(fd, TUNSETGROUP, gid));
}

export interface PersistentTunOptions {
  netns?: string;
  /** uid allowed to attach; always set one — an ownerless persistent TUN can be attached by any user (LINUX.md §1.3) */
  owner?: number;
  group?: number;
}

/**
 * Create a new persistent TUN `name` (exclusive: EBUSY if it exists), set its owner, and
 * release it. Returns the kernel's name and flags.
 */
export function createPersistentTun(
  name: string,
  opts: PersistentTunOptions = {},
): { name: string; flags: number } {
  const h = openTun(name, { netns: opts.netns, exclusive: true });
  try {
    tunSetOwner(h.fd, opts.owner ?? 0);
    if (opts.group !== undefined) tunSetGroup(h.fd, opts.group);
    tunSetPersist(h.fd, true);
    return tunGetIff(h.fd);
  } finally {
    // on failure before TUNSETPERSIST the device is not persistent yet: closing drops it
    close(h.fd);
  }
}

/** Delete a persistent TUN by attaching and clearing persist. EBUSY while another fd holds it. */
export function deletePersistentTun(name: string, opts: { netns?: string } = {}): void {
  const h = openTun(name, { netns: opts.netns });
  try {
    tunSetPersist(h.fd, false);
  } finally {
    close(h.fd);
  }
}

/** TUNGETFEATURES bitmask (IFF_* the kernel supports), or -errno. */
export function tunFeatures(): number {
  const fd = open(TUN_PATH, O_RDWR | O_CLOEXEC);
  if (fd < 0) return fd;
  try {
    const b = Buffer.alloc(4);
    const r = ioctl(fd, TUNGETFEATURES, b);
    return r < 0 ? r : b.readUInt32LE(0);
  } finally {
    close(fd);
  }
}

/** MTU of interface `name`, through a control socket that lives in the device's namespace. */
function ifMtu(ctl: number, name: string): number {
  const req = ifreq(name);
  check('ioctl(SIOCGIFMTU)', ioctl(ctl, SIOCGIFMTU, req), name);
  return req.readInt32LE(16);
}

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
