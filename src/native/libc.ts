/**
 * Thin koffi bindings to the libc calls awg needs (Linux, glibc). Leaf module.
 *
 * Convention: every wrapper returns the syscall result (≥ 0) or `-errno`, read right after
 * the call (koffi.errno() is the live thread errno and any later JS may clobber it,
 * docs/platform-linux.md#koffi-calls). `check()` turns a negative result into a SyscallError.
 * Only synchronous calls: koffi `.async` runs on libuv's 4-thread pool and a blocking read
 * there starves fs/dns. Readiness comes from `koffi.node.poll`.
 * koffi does not check buffer lengths: every wrapper clamps `n` to the buffer size.
 */
import koffi from 'koffi';
import { AwgError, type ErrorKind } from '../errors.js';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0x800;
export const O_CLOEXEC = 0x80000;

export const F_GETFL = 3;
export const F_SETFL = 4;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0x800;
export const SOCK_CLOEXEC = 0x80000;

export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_MARK = 36;
export const SO_PEERCRED = 17;
export const SO_PEERGROUPS = 59;
export const SO_RCVBUFFORCE = 33;
export const SOL_NETLINK = 270;

export const POLLIN = 1;
export const POLLOUT = 4;
export const POLLERR = 8;

export const CLONE_NEWNET = 0x40000000;

export const LOCK_EX = 2;
export const LOCK_NB = 4;
/** SO_NETNS_COOKIE (Linux 5.14): the network namespace's 64-bit cookie, never reused while the system runs */
export const SO_NETNS_COOKIE = 71;

export const MSG_DONTWAIT = 0x40;

export const E = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  ENODATA: 61,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
  EOPNOTSUPP: 95,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ENOBUFS: 105,
  ECONNREFUSED: 111,
  EBADFD: 77,
} as const;

export type Buf = Uint8Array;

interface Fns {
  open: (path: string, flags: number) => number;
  close: (fd: number) => number;
  ioctlPtr: (fd: number, req: number, arg: Buf) => number;
  ioctlInt: (fd: number, req: number, arg: number) => number;
  read: (fd: number, buf: Buf, n: number) => number | bigint;
  write: (fd: number, buf: Buf, n: number) => number | bigint;
  poll: (fds: Buf, nfds: number, timeout: number) => number;
  socket: (domain: number, type: number, proto: number) => number;
  bind: (fd: number, addr: Buf, len: number) => number;
  send: (fd: number, buf: Buf, n: number, flags: number) => number | bigint;
  recv: (fd: number, buf: Buf, n: number, flags: number) => number | bigint;
  getsockname: (fd: number, addr: Buf, len: number[]) => number;
  setsockopt: (fd: number, level: number, name: number, val: Buf, len: number) => number;
  getsockopt: (fd: number, level: number, name: number, val: Buf, len: number[]) => number;
  setns: (fd: number, nstype: number) => number;
  fcntl: (fd: number, cmd: number, arg: number) => number;
  pipe2: (fds: number[], flags: number) => number;
  strerror: (errnum: number) => string;
  lgetxattr: (path: string, name: string, val: Buf | null, n: number) => number | bigint;
  flock: (fd: number, op: number) => number;
}

let fns: Fns | undefined;

/** Loads libc on first use so that importing this module on another OS does not fail. */
function libc(): Fns {
  if (fns) return fns;
  if (process.platform !== 'linux')
    throw new AwgError('unsupported', `libc bindings need Linux (running on ${process.platform})`);
  const lib = koffi.load('libc.so.6');
  fns = {
    open: lib.func('int open(const char *path, int flags)'),
    close: lib.func('int close(int fd)'),
    // the TUNGET* requests exceed 2^31: request must be unsigned long
    ioctlPtr: lib.func('int ioctl(int fd, unsigned long req, void *arg)'),
    ioctlInt: lib.func('int ioctl(int fd, unsigned long req, unsigned long arg)'),
    read: lib.func('long read(int fd, void *buf, size_t n)'),
    write: lib.func('long write(int fd, const void *buf, size_t n)'),
    poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    send: lib.func('long send(int fd, const void *buf, size_t n, int flags)'),
    recv: lib.func('long recv(int fd, void *buf, size_t n, int flags)'),
    getsockname: lib.func('int getsockname(int fd, void *addr, _Inout_ uint32_t *len)'),
    setsockopt: lib.func(
      'int setsockopt(int fd, int level, int name, const void *val, uint32_t len)',
    ),
    getsockopt: lib.func(
      'int getsockopt(int fd, int level, int name, void *val, _Inout_ uint32_t *len)',
    ),
    setns: lib.func('int setns(int fd, int nstype)'),
    fcntl: lib.func('int fcntl(int fd, int cmd, int arg)'),
    pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)'),
    strerror: lib.func('const char *strerror(int errnum)'),
    lgetxattr: lib.func('long lgetxattr(const char *path, const char *name, void *val, size_t n)'),
    flock: lib.func('int flock(int fd, int op)'),
  } as unknown as Fns;
  return fns;
}

const rawFns = new Map<string, unknown>();

/**
 * A libc function taking raw native pointers (koffi 3: BigInt addresses into `koffi.alloc`
 * blocks), for the batched socket calls whose msghdr layouts are hand-written for LP64 glibc
 * (udpbatch.ts, udpsock.ts): null on any other OS or architecture, or when the symbol is
 * missing. Loaded once per declaration; the caller reads errno with `koffi.errno()`.
 */
export function rawLibcFunc<T>(decl: string): T | null {
  if (rawFns.has(decl)) return rawFns.get(decl) as T | null;
  let fn: unknown = null;
  try {
    if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64'))
      fn = koffi.load('libc.so.6').func(decl);
  } catch {
    fn = null;
  }
  rawFns.set(decl, fn);
  return fn as T | null;
}

/**
 * glibc's `malloc_trim(0)`: the allocator's free pages go back to the kernel (each arena's top
 * and, since glibc 2.8, whole free pages inside it). True when something was released; false
 * when nothing was, or where the call does not exist (not glibc on x64/arm64 Linux).
 */
export function mallocTrim(): boolean {
  const trim = rawLibcFunc<(pad: number) => number>('int malloc_trim(size_t pad)');
  return trim ? trim(0) === 1 : false;
}

function ret(r: number | bigint): number {
  const n = Number(r);
  return n < 0 ? -koffi.errno() : n;
}

export function open(path: string, flags: number): number {
  return ret(libc().open(path, flags));
}
export function close(fd: number): number {
  return ret(libc().close(fd));
}
/** ioctl with a pointer argument (struct ifreq etc.) */
export function ioctl(fd: number, req: number, arg: Buf): number {
  return ret(libc().ioctlPtr(fd, req, arg));
}
/** ioctl with an integer argument (TUNSETPERSIST, TUNSETOWNER) */
export function ioctlInt(fd: number, req: number, arg: number): number {
  return ret(libc().ioctlInt(fd, req, arg));
}
export function read(fd: number, buf: Buf, n = buf.length): number {
  return ret(libc().read(fd, buf, Math.min(n, buf.length)));
}
export function write(fd: number, buf: Buf, n = buf.length): number {
  return ret(libc().write(fd, buf, Math.min(n, buf.length)));
}
/** `fds` is an array of struct pollfd (8 bytes each); revents are written back. */
export function poll(fds: Buf, timeoutMs: number): number {
  return ret(libc().poll(fds, Math.floor(fds.length / 8), timeoutMs));
}
export function socket(domain: number, type: number, proto: number): number {
  return ret(libc().socket(domain, type, proto));
}
export function bind(fd: number, addr: Buf): number {
  return ret(libc().bind(fd, addr, addr.length));
}
export function send(fd: number, buf: Buf, n = buf.length, flags = 0): number {
  return ret(libc().send(fd, buf, Math.min(n, buf.length), flags));
}
export function recv(fd: number, buf: Buf, n = buf.length, flags = 0): number {
  return ret(libc().recv(fd, buf, Math.min(n, buf.length), flags));
}
/** Fills `addr`; returns the address length or -errno. */
export function getsockname(fd: number, addr: Buf): number {
  const len = [addr.length];
  const r = ret(libc().getsockname(fd, addr, len));
  return r < 0 ? r : (len[0] ?? 0);
}
export function setsockopt(fd: number, level: number, name: number, val: Buf): number {
  return ret(libc().setsockopt(fd, level, name, val, val.length));
}
export function setsockoptInt(fd: number, level: number, name: number, value: number): number {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  return setsockopt(fd, level, name, b);
}
/** Fills `val`; returns the option length or -errno. */
export function getsockopt(fd: number, level: number, name: number, val: Buf): number {
  const len = [val.length];
  const r = ret(libc().getsockopt(fd, level, name, val, len));
  return r < 0 ? r : (len[0] ?? 0);
}
/** flock(2): LOCK_EX | LOCK_NB → 0, or -EWOULDBLOCK while another open file description holds it */
export function flock(fd: number, op: number): number {
  return ret(libc().flock(fd, op));
}
export function setns(fd: number, nstype: number): number {
  return ret(libc().setns(fd, nstype));
}
export function fcntl(fd: number, cmd: number, arg = 0): number {
  return ret(libc().fcntl(fd, cmd, arg));
}
export function pipe2(flags: number): [number, number] | number {
  const fds = [0, 0];
  const r = ret(libc().pipe2(fds, flags));
  return r < 0 ? r : [fds[0] ?? -1, fds[1] ?? -1];
}
/** Size of the extended attribute `name` of `path` (symlinks not followed), or -errno (ENODATA: none). */
export function lgetxattrSize(path: string, name: string): number {
  return ret(libc().lgetxattr(path, name, null, 0));
}
export function strerror(errno: number): string {
  return libc().strerror(errno);
}

/** An OS call that failed; `errno` is positive. */
export class SyscallError extends AwgError {
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail?: string) {
    const kind: ErrorKind = errno === E.EPERM || errno === E.EACCES ? 'permission' : 'driver';
    super(
      kind,
      `${syscall}${detail ? ` (${detail})` : ''}: ${errnoName(errno)} (${errno}) ${safeStrerror(errno)}`,
    );
    this.name = 'SyscallError';
    this.errno = errno;
    this.syscall = syscall;
  }
}

function safeStrerror(errno: number): string {
  try {
    return strerror(errno);
  } catch {
    return '';
  }
}

export function errnoName(errno: number): string {
  for (const [k, v] of Object.entries(E)) if (v === errno) return k;
  return `errno ${errno}`;
}

/** Returns `r` when ≥ 0, throws SyscallError for `-errno`. */
export function check(syscall: string, r: number, detail?: string): number {
  if (r < 0) throw new SyscallError(syscall, -r, detail);
  return r;
}

/** Sets or clears O_NONBLOCK on `fd`. */
export function setNonBlocking(fd: number, on = true): void {
  const fl = check('fcntl(F_GETFL)', fcntl(fd, F_GETFL));
  check('fcntl(F_SETFL)', fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK));
}
