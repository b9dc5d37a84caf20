/**
 * koffi bindings to the macOS system library (libSystem.B.dylib): the calls the utun engine,
 * the routing-socket monitor, the flow router's process lookup and direct dialling need.
 * NEVER RUN ON A MAC: the byte layouts they pass are tested (layouts.ts); the calls
 * themselves are not (docs/platform-macos.md). The library loads on first call, on darwin
 * only: importing this module anywhere is free, and calling it elsewhere throws
 * AwgError('unsupported').
 *
 * Same conventions as the Linux libc.ts: synchronous calls only, the result or `-errno` read
 * right after the call (darwin's errno lives behind `__error()`, which koffi.errno() reads).
 */
import koffi from 'koffi';
import { AwgError } from '../../errors.js';
import {
  CTLIOCGINFO,
  DIOCNATLOOK,
  IFNAMSIZ,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_BOUND_IF,
  IP_BOUND_IF,
  PROC_PIDPATHINFO_MAXSIZE,
  SIOCGIFMTU,
  decodeCtlInfoId,
  decodeIfname,
  decodeIfreqMtu,
  decodeNatlook,
  decodePath,
  decodePids,
  encodeBoundIf,
  encodeCtlInfo,
  encodeIfreq,
  encodeNatlook,
  type Endpoint,
} from './layouts.js';
import { PF_SYSTEM, SYSPROTO_CONTROL, UTUN_CONTROL_NAME, UTUN_OPT_IFNAME, sockaddrCtl } from './utun-abi.js';

/** darwin values that differ from Linux's (sys/fcntl.h, sys/socket.h, sys/errno.h) */
export const D = {
  O_RDONLY: 0,
  O_NONBLOCK: 0x4,
  O_CLOEXEC: 0x1000000,
  F_GETFL: 3,
  F_SETFL: 4,
  AF_UNSPEC: 0,
  AF_INET: 2,
  AF_INET6: 30,
  PF_ROUTE: 17,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOL_SOCKET: 0xffff,
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EAGAIN: 35,
  ENOBUFS: 55,
} as const;

interface Lib {
  socket(domain: number, type: number, proto: number): number;
  connect(fd: number, addr: Uint8Array, len: number): number;
  ioctl(fd: number, req: number, arg: Uint8Array): number;
  getsockopt(fd: number, level: number, name: number, val: Uint8Array, len: Int32Array): number;
  setsockopt(fd: number, level: number, name: number, val: Uint8Array, len: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  open(path: string, flags: number): number;
  read(fd: number, buf: Uint8Array, n: number): number;
  write(fd: number, buf: Uint8Array, n: number): number;
  close(fd: number): number;
  if_nametoindex(name: string): number;
  proc_listallpids(buf: Uint8Array | null, size: number): number;
  proc_pidpath(pid: number, buf: Uint8Array, size: number): number;
}

let lib: Lib | undefined;

/** the bindings; loads libSystem on first use, on darwin only */
export function libSystem(platform: NodeJS.Platform = process.platform): Lib {
  if (platform !== 'darwin') throw new AwgError('unsupported', `libSystem is macOS's; this is ${platform}`);
  if (lib) return lib;
  const l = koffi.load('/usr/lib/libSystem.B.dylib');
  const f = <T>(decl: string) => l.func(decl) as unknown as T;
  lib = {
    socket: f('int socket(int, int, int)'),
    connect: f('int connect(int, const uint8_t *, uint32_t)'),
    ioctl: f('int ioctl(int, unsigned long, _Inout_ uint8_t *)'),
    getsockopt: f('int getsockopt(int, int, int, _Out_ uint8_t *, _Inout_ int32_t *)'),
    setsockopt: f('int setsockopt(int, int, int, const uint8_t *, uint32_t)'),
    fcntl: f('int fcntl(int, int, int)'),
    open: f('int open(const char *, int)'),
    read: f('long read(int, _Out_ uint8_t *, size_t)'),
    write: f('long write(int, const uint8_t *, size_t)'),
    close: f('int close(int)'),
    if_nametoindex: f('unsigned int if_nametoindex(const char *)'),
    proc_listallpids: f('int proc_listallpids(_Out_ uint8_t *, int)'),
    proc_pidpath: f('int proc_pidpath(int, _Out_ uint8_t *, uint32_t)'),
  };
  return lib;
}

const errno = () => koffi.errno();

function check(what: string, r: number): number {
  if (r >= 0) return r;
  const e = errno();
  throw new AwgError(e === D.EPERM ? 'permission' : 'driver', `${what}: errno ${e}`);
}

function nonBlocking(l: Lib, fd: number): void {
  const fl = check('fcntl(F_GETFL)', l.fcntl(fd, D.F_GETFL, 0));
  check('fcntl(F_SETFL)', l.fcntl(fd, D.F_SETFL, fl | D.O_NONBLOCK));
}

/**
 * Open a utun: `unit` N+1 asks for utunN, 0 for the first free one. Returns the socket (the
 * interface lives as long as it) and the kernel's name for it.
 */
export function openUtun(unit = 0): { fd: number; ifname: string } {
  const l = libSystem();
  const fd = check('socket(PF_SYSTEM)', l.socket(PF_SYSTEM, D.SOCK_DGRAM, SYSPROTO_CONTROL));
  try {
    const info = encodeCtlInfo(UTUN_CONTROL_NAME);
    check('ioctl(CTLIOCGINFO)', l.ioctl(fd, CTLIOCGINFO, info));
    const sa = sockaddrCtl(decodeCtlInfoId(info), unit);
    check('connect(utun_control)', l.connect(fd, sa, sa.length));
    const name = new Uint8Array(IFNAMSIZ);
    const len = Int32Array.of(IFNAMSIZ);
    check('getsockopt(UTUN_OPT_IFNAME)', l.getsockopt(fd, SYSPROTO_CONTROL, UTUN_OPT_IFNAME, name, len));
    nonBlocking(l, fd);
    return { fd, ifname: decodeIfname(name, len[0]!) };
  } catch (e) {
    l.close(fd);
    throw e;
  }
}

/** an interface's MTU (SIOCGIFMTU on any AF_INET datagram socket) */
export function interfaceMtu(ifname: string): number {
  const l = libSystem();
  const fd = check('socket(AF_INET)', l.socket(D.AF_INET, D.SOCK_DGRAM, 0));
  try {
    const req = encodeIfreq(ifname);
    check(`ioctl(SIOCGIFMTU ${ifname})`, l.ioctl(fd, SIOCGIFMTU, req));
    return decodeIfreqMtu(req);
  } finally {
    l.close(fd);
  }
}

/** every process id (proc_listallpids: asked for the count, then filled with headroom) */
export function listPids(): number[] {
  const l = libSystem();
  const n = check('proc_listallpids', l.proc_listallpids(null, 0));
  const buf = new Uint8Array((n + 64) * 4);
  const got = check('proc_listallpids', l.proc_listallpids(buf, buf.length));
  return decodePids(buf, got);
}

/** a process's executable (undefined when it is gone or not ours to see) */
export function pidPath(pid: number): string | undefined {
  const l = libSystem();
  const buf = new Uint8Array(PROC_PIDPATHINFO_MAXSIZE);
  const r = l.proc_pidpath(pid, buf, buf.length);
  if (r <= 0) {
    const e = errno();
    if (e === D.ESRCH || e === D.EPERM || r === 0) return undefined;
    throw new AwgError('driver', `proc_pidpath(${pid}): errno ${e}`);
  }
  return decodePath(buf, r);
}

/** pin a socket to an interface (IP_BOUND_IF / IPV6_BOUND_IF): its packets leave there, whatever the routes say */
export function bindToInterface(fd: number, ifname: string, family: 4 | 6): void {
  const l = libSystem();
  const index = l.if_nametoindex(ifname);
  if (!index) throw new AwgError('driver', `no interface ${ifname}`);
  const v = encodeBoundIf(index);
  check(`setsockopt(${family === 6 ? 'IPV6' : 'IP'}_BOUND_IF ${ifname})`, l.setsockopt(fd, family === 6 ? IPPROTO_IPV6 : IPPROTO_IP, family === 6 ? IPV6_BOUND_IF : IP_BOUND_IF, v, v.length));
}

/** the original destination of a TCP connection PF's `rdr` sent to our listener (DIOCNATLOOK on /dev/pf) */
export function originalDstDarwin(client: Endpoint, arrived: Endpoint): Endpoint {
  const l = libSystem();
  const fd = check('open(/dev/pf)', l.open('/dev/pf', D.O_RDONLY));
  try {
    const nl = encodeNatlook(client, arrived);
    const r = l.ioctl(fd, DIOCNATLOOK, nl);
    if (r < 0) {
      const e = errno();
      throw new AwgError(e === D.ENOENT ? 'driver' : 'permission', `DIOCNATLOOK ${client.address}:${client.port} → ${arrived.address}:${arrived.port}: ${e === D.ENOENT ? 'no PF state (not redirected)' : `errno ${e}`}`);
    }
    return decodeNatlook(nl);
  } finally {
    l.close(fd);
  }
}
