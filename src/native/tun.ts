/**
 * Linux TUN devices through /dev/net/tun (docs/platform-linux.md#tun-devices): the ioctl
 * bindings. Always
 * IFF_TUN|IFF_NO_PI: attaching without IFF_NO_PI silently switches an existing device to PI
 * mode for every later reader. The data plane's TUN over such an fd is dataplane/tun/file.ts.
 */
import { AwgError } from '../errors.js';
import { O_CLOEXEC, O_NONBLOCK, O_RDWR, check, close, ioctl, ioctlInt, open } from './libc.js';
import { inNetns } from './netns.js';

export const TUNSETIFF = 0x400454ca;
export const TUNSETPERSIST = 0x400454cb;
export const TUNSETOWNER = 0x400454cc;
export const TUNSETGROUP = 0x400454ce;
export const TUNGETFEATURES = 0x800454cf;
export const TUNGETIFF = 0x800454d2;
export const TUNSETOFFLOAD = 0x400454d0;
export const TUNSETVNETHDRSZ = 0x400454d8;
export const SIOCGIFMTU = 0x8921;

export const IFF_TUN = 0x0001;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_PERSIST = 0x0800;
export const IFF_NO_PI = 0x1000;
export const IFF_TUN_EXCL = 0x8000;
export const IFF_VNET_HDR = 0x4000;

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
  netns?: string | undefined;
  /** fail with EBUSY when the device already exists (never attach to someone else's) */
  exclusive?: boolean;
  multiQueue?: boolean;
  nonBlocking?: boolean;
  /** every read and write starts with a struct virtio_net_hdr (TUN offloads, dataplane/tun/offload.ts) */
  vnetHdr?: boolean;
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
        (opts.multiQueue ? IFF_MULTI_QUEUE : 0) |
        (opts.vnetHdr ? IFF_VNET_HDR : 0);
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

/** TUNSETOFFLOAD: the TUN_F_* offloads the kernel may use towards this device (0: none). */
export function tunSetOffload(fd: number, flags: number): number {
  return ioctlInt(fd, TUNSETOFFLOAD, flags);
}

/** TUNSETVNETHDRSZ (the argument is a pointer to an int). */
export function tunSetVnetHdrSize(fd: number, size: number): number {
  const b = Buffer.alloc(4);
  b.writeInt32LE(size);
  return ioctl(fd, TUNSETVNETHDRSZ, b);
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
  netns?: string | undefined;
  /** uid allowed to attach; always set one — an ownerless persistent TUN can be attached by any user */
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
export function deletePersistentTun(name: string, opts: { netns?: string | undefined } = {}): void {
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
export function ifMtu(ctl: number, name: string): number {
  const req = ifreq(name);
  check('ioctl(SIOCGIFMTU)', ioctl(ctl, SIOCGIFMTU, req), name);
  return req.readInt32LE(16);
}
