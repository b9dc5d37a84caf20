/**
 * koffi bindings to the macOS system library (/usr/lib/libSystem.B.dylib). NEVER RUN ON A
 * MAC: the byte layouts passed to these calls are tested (layouts.ts and the modules beside
 * this one); the calls themselves are not (docs/platform-macos.md). The library loads on the
 * first call, on darwin only: importing this module anywhere is free, and calling a wrapper
 * on another OS throws AwgError('unsupported').
 *
 * Conventions as in the Linux libc.ts: synchronous calls only; every wrapper returns the
 * result (≥ 0) or `-errno`, read right after the call through darwin's `int *__error(void)`
 * (the thread's errno cell; later JS may clobber it); `check()` turns `-errno` into an
 * AwgError. koffi does not check buffer lengths: wrappers pass the buffer's own length.
 */
import koffi from 'koffi';
import { AwgError } from '../../errors.js';

/** darwin values (sys/fcntl.h, sys/socket.h, sys/errno.h, netinet/in.h); many differ from Linux's */
export const D = {
  O_RDONLY: 0,
  O_RDWR: 2,
  O_NONBLOCK: 0x4,
  O_CLOEXEC: 0x1000000,
  F_GETFL: 3,
  F_SETFL: 4,
  AF_UNSPEC: 0,
  AF_INET: 2,
  AF_ROUTE: 17,
  AF_LINK: 18,
  AF_INET6: 30,
  AF_SYSTEM: 32,
  PF_ROUTE: 17,
  PF_SYSTEM: 32,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOL_SOCKET: 0xffff,
  SO_REUSEADDR: 0x4,
  SO_REUSEPORT: 0x200,
  IPPROTO_IP: 0,
  IPPROTO_TCP: 6,
  IPPROTO_UDP: 17,
  IPPROTO_IPV6: 41,
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  EACCES: 13,
  EAGAIN: 35,
  EWOULDBLOCK: 35,
  ENOBUFS: 55,
  ENXIO: 6,
  EBUSY: 16,
  EINVAL: 22,
  ERANGE: 34,
  ENOTSUP: 45,
  ENOTCONN: 57,
  EADDRINUSE: 48,
  EADDRNOTAVAIL: 49,
} as const;

type Buf = Uint8Array;

interface Lib {
  socket(domain: number, type: number, proto: number): number;
  connect(fd: number, addr: Buf, len: number): number;
  bind(fd: number, addr: Buf, len: number): number;
  ioctl(fd: number, req: number, arg: Buf): number;
  getsockopt(fd: number, level: number, name: number, val: Buf, len: Uint32Array): number;
  setsockopt(fd: number, level: number, name: number, val: Buf, len: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  open(path: string, flags: number): number;
  read(fd: number, buf: Buf, n: number): number | bigint;
  write(fd: number, buf: Buf, n: number): number | bigint;
  close(fd: number): number;
  flock(fd: number, op: number): number;
  sysctlbyname(
    name: string,
    old: Buf | null,
    oldlen: BigUint64Array,
    nw: Buf | null,
    newlen: number,
  ): number;
  if_nametoindex(name: string): number;
  proc_listallpids(buf: Buf | null, size: number): number;
  proc_pidpath(pid: number, buf: Buf, size: number): number;
  proc_pidinfo(pid: number, flavor: number, arg: bigint, buf: Buf, size: number): number;
  acl_get_link_np(path: string, type: number): unknown;
  acl_size(acl: unknown): number | bigint;
  acl_copy_ext(buf: Buf, acl: unknown, size: number): number | bigint;
  acl_free(obj: unknown): number;
  __error(): unknown;
}

/** the C prototypes, as koffi parses them (tested for marshalling against Linux libc where it has the same call) */
export const DECLS = {
  socket: 'int socket(int, int, int)',
  connect: 'int connect(int, const uint8_t *, uint32_t)',
  bind: 'int bind(int, const uint8_t *, uint32_t)',
  // ioctl's request is an unsigned long; the _IOWR numbers exceed 2^31
  ioctl: 'int ioctl(int, unsigned long, _Inout_ uint8_t *)',
  getsockopt: 'int getsockopt(int, int, int, _Inout_ uint8_t *, _Inout_ uint32_t *)',
  setsockopt: 'int setsockopt(int, int, int, const uint8_t *, uint32_t)',
  fcntl: 'int fcntl(int, int, int)',
  open: 'int open(const char *, int)',
  read: 'long read(int, _Out_ uint8_t *, size_t)',
  write: 'long write(int, const uint8_t *, size_t)',
  close: 'int close(int)',
  flock: 'int flock(int, int)',
  sysctlbyname:
    'int sysctlbyname(const char *, _Inout_ uint8_t *, _Inout_ uint64_t *, const uint8_t *, size_t)',
  if_nametoindex: 'unsigned int if_nametoindex(const char *)',
  proc_listallpids: 'int proc_listallpids(_Out_ uint8_t *, int)',
  proc_pidpath: 'int proc_pidpath(int, _Out_ uint8_t *, uint32_t)',
  proc_pidinfo: 'int proc_pidinfo(int, int, uint64_t, _Out_ uint8_t *, int)',
  // sys/acl.h: acl_t is an opaque pointer; acl_type_t an enum; ssize_t a long (LP64)
  acl_get_link_np: 'void *acl_get_link_np(const char *, int)',
  acl_size: 'long acl_size(void *)',
  acl_copy_ext: 'long acl_copy_ext(_Out_ uint8_t *, void *, long)',
  acl_free: 'int acl_free(void *)',
  __error: 'int *__error(void)',
} as const;

let lib: Lib | undefined;

/** The bindings; loads libSystem on first use, on darwin only (`platform` is for tests). */
export function libSystem(platform: NodeJS.Platform = process.platform): Lib {
  if (platform !== 'darwin')
    throw new AwgError('unsupported', `libSystem bindings need macOS (running on ${platform})`);
  if (lib) return lib;
  const l = koffi.load('/usr/lib/libSystem.B.dylib');
  const f = (decl: string): unknown => l.func(decl);
  lib = Object.fromEntries(Object.entries(DECLS).map(([k, d]) => [k, f(d)])) as unknown as Lib;
  return lib;
}

/** the calling thread's errno (`*__error()`); read it right after the failed call */
export function errno(): number {
  return koffi.decode(libSystem().__error(), 'int') as number;
}

function ret(r: number | bigint): number {
  const n = Number(r);
  return n < 0 ? -errno() : n;
}

export function socket(domain: number, type: number, proto: number): number {
  return ret(libSystem().socket(domain, type, proto));
}
export function connect(fd: number, addr: Buf): number {
  return ret(libSystem().connect(fd, addr, addr.length));
}
export function bind(fd: number, addr: Buf): number {
  return ret(libSystem().bind(fd, addr, addr.length));
}
/** ioctl with a pointer argument the kernel may read and fill (ctl_info, ifreq, pfioc_natlook) */
export function ioctl(fd: number, req: number, arg: Buf): number {
  return ret(libSystem().ioctl(fd, req, arg));
}
/** Fills `val`; returns the option's length or -errno. */
export function getsockopt(fd: number, level: number, name: number, val: Buf): number {
  const len = Uint32Array.of(val.length);
  const r = ret(libSystem().getsockopt(fd, level, name, val, len));
  return r < 0 ? r : len[0]!;
}
export function setsockopt(fd: number, level: number, name: number, val: Buf): number {
  return ret(libSystem().setsockopt(fd, level, name, val, val.length));
}
export function fcntl(fd: number, cmd: number, arg = 0): number {
  return ret(libSystem().fcntl(fd, cmd, arg));
}
export function open(path: string, flags: number): number {
  return ret(libSystem().open(path, flags));
}
export function read(fd: number, buf: Buf): number {
  return ret(libSystem().read(fd, buf, buf.length));
}
/** writes the first `n` bytes of `buf` (clamped to its length) */
export function write(fd: number, buf: Buf, n = buf.length): number {
  return ret(libSystem().write(fd, buf, Math.min(n, buf.length)));
}
export function close(fd: number): number {
  return ret(libSystem().close(fd));
}
/** flock(2) (sys/file.h: LOCK_EX 2, LOCK_NB 4, as on Linux) → 0 or -errno (EWOULDBLOCK 35) */
export function flock(fd: number, op: number): number {
  return ret(libSystem().flock(fd, op));
}
/** 0 when there is no such interface */
export function ifNameToIndex(name: string): number {
  return libSystem().if_nametoindex(name);
}
/** proc_listallpids: the number of pids (NULL buffer: how many there are), or -errno */
export function procListAllPids(buf: Buf | null): number {
  return ret(libSystem().proc_listallpids(buf, buf ? buf.length : 0));
}
/** proc_pidpath: the path's length; 0 or -1 on failure, errno set — returned as -errno */
export function procPidPath(pid: number, buf: Buf): number {
  const r = libSystem().proc_pidpath(pid, buf, buf.length);
  return r > 0 ? r : -errno();
}

/** proc_pidinfo: the bytes written; 0 or -1 on failure, errno set — returned as -errno */
export function procPidInfo(pid: number, flavor: number, buf: Buf): number {
  const r = libSystem().proc_pidinfo(pid, flavor, 0n, buf, buf.length);
  return r > 0 ? r : -errno();
}

/** sys/acl.h: the only ACL type macOS has */
export const ACL_TYPE_EXTENDED = 0x100;

/**
 * The extended ACL of `path` (a symbolic link itself, not its target) in acl_copy_ext's
 * external form (the big-endian struct kauth_filesec, layouts.ts decodeAclExt); null when it
 * has none (acl_get_link_np: NULL with ENOENT, or ENOTSUP where the file system keeps none);
 * otherwise -errno.
 */
export function aclExternal(
  path: string,
  l: AclCalls = libSystem(),
  err: () => number = errno,
): Uint8Array | null | number {
  const acl = l.acl_get_link_np(path, ACL_TYPE_EXTENDED);
  if (acl === null) {
    const e = err();
    return e === D.ENOENT || e === D.ENOTSUP ? null : -e;
  }
  try {
    const size = Number(l.acl_size(acl));
    if (size < 0) return -err();
    const buf = new Uint8Array(size);
    const n = Number(l.acl_copy_ext(buf, acl, size));
    return n < 0 ? -err() : buf.subarray(0, n);
  } finally {
    // after errno was read: free() may change it
    l.acl_free(acl);
  }
}

/** the calls aclExternal makes (a fake library in tests) */
export type AclCalls = Pick<Lib, 'acl_get_link_np' | 'acl_size' | 'acl_copy_ext' | 'acl_free'>;

/** sysctlbyname read: the value's bytes (asked for the size, then filled), or -errno */
export function sysctlByName(name: string): Uint8Array | number {
  const l = libSystem();
  const len = BigUint64Array.of(0n);
  const r = l.sysctlbyname(name, null, len, null, 0);
  if (r < 0) return -errno();
  const buf = new Uint8Array(Number(len[0]) + 64);
  len[0] = BigInt(buf.length);
  const r2 = l.sysctlbyname(name, buf, len, null, 0);
  if (r2 < 0) return -errno();
  return buf.subarray(0, Number(len[0]));
}

/** A sysctl's integer value (int or int64, host order: little-endian on x86_64 and arm64). */
export function decodeSysctlInt(b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  if (b.length === 4) return dv.getInt32(0, true);
  if (b.length === 8) return Number(dv.getBigInt64(0, true));
  throw new AwgError('driver', `sysctl integer of ${b.length} bytes`);
}

/** Returns `r` when ≥ 0; a `-errno` becomes an AwgError (EPERM/EACCES: 'permission'). */
export function check(what: string, r: number): number {
  if (r >= 0) return r;
  const e = -r;
  throw new AwgError(
    e === D.EPERM || e === D.EACCES ? 'permission' : 'driver',
    `${what}: errno ${e}`,
  );
}

/** Sets O_NONBLOCK on `fd`. */
export function setNonBlocking(fd: number): void {
  const fl = check('fcntl(F_GETFL)', fcntl(fd, D.F_GETFL));
  check('fcntl(F_SETFL)', fcntl(fd, D.F_SETFL, fl | D.O_NONBLOCK));
}
