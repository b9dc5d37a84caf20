/**
 * The macOS libSystem bindings (src/native/darwin/libsystem.ts) on Linux: the darwin
 * constants that differ from Linux's (values from sys/fcntl.h, sys/socket.h, sys/errno.h,
 * netinet/in.h), and the lazy load: importing every darwin native module loads no library,
 * and every wrapper called here throws AwgError('unsupported'). No Mac runs the calls.
 */
import koffi from 'koffi';
import { afterAll, describe, expect, it, vi } from 'vitest';

/**
 * koffi.load's calls made through a darwin module (a frame of src/native/darwin/ on the
 * stack). Only those: the unit files share their worker, and another file's late work (a
 * settle's or a stopped pool's malloc_trim, which loads libc.so.6 on its first call) can load
 * a library while this file runs.
 */
const original = koffi.load.bind(koffi);
const fromDarwin: string[] = [];
const load = vi.spyOn(koffi, 'load').mockImplementation(((...a: Parameters<typeof koffi.load>) => {
  if (/src[/\\]native[/\\]darwin[/\\]/.test(new Error().stack ?? '')) fromDarwin.push(String(a[0]));
  return original(...a);
}) as typeof koffi.load);
// the fake library of the last describe must not outlive this file (the worker goes on)
afterAll(() => load.mockRestore());
const ls = await import('../../../src/native/darwin/libsystem.js');
const utun = await import('../../../src/native/darwin/utun.js');
const utunIo = await import('../../../src/native/darwin/utun-io.js');
const rs = await import('../../../src/native/darwin/route-socket.js');
const lp = await import('../../../src/native/darwin/libproc.js');
const bi = await import('../../../src/native/darwin/bound-if.js');
const nl = await import('../../../src/native/darwin/pfnatlook.js');
const pc = await import('../../../src/native/darwin/peercred.js');

const unsupported = expect.objectContaining({ kind: 'unsupported' });

describe('darwin constants', () => {
  it('the values that differ from Linux', () => {
    expect(ls.D).toMatchObject({
      O_NONBLOCK: 0x4, // Linux 0x800
      O_CLOEXEC: 0x1000000, // Linux 0x80000
      F_GETFL: 3,
      F_SETFL: 4,
      EAGAIN: 35, // Linux 11
      ENOBUFS: 55, // Linux 105
      AF_INET: 2,
      AF_INET6: 30, // Linux 10
      AF_LINK: 18,
      AF_SYSTEM: 32,
      PF_ROUTE: 17, // Linux AF_NETLINK is 16, PF_ROUTE an alias of it
      PF_SYSTEM: 32,
      SOCK_DGRAM: 2,
      SOCK_RAW: 3,
      SOL_SOCKET: 0xffff, // Linux 1
      IPPROTO_IP: 0,
      IPPROTO_IPV6: 41,
      ESRCH: 3,
      EPERM: 1,
      ENOENT: 2,
    });
  });
  it('sysctl integers: 4- and 8-byte little-endian', () => {
    expect(ls.decodeSysctlInt(Uint8Array.from([0x01, 0x00, 0x00, 0x00]))).toBe(1);
    expect(ls.decodeSysctlInt(Uint8Array.from([0xff, 0xff, 0xff, 0xff]))).toBe(-1);
    expect(ls.decodeSysctlInt(Uint8Array.from([0x00, 0x00, 0x00, 0x80, 0x01, 0, 0, 0]))).toBe(
      0x180000000,
    );
    expect(() => ls.decodeSysctlInt(Uint8Array.of(1, 2))).toThrow(/2 bytes/);
  });
  it('check(): -errno becomes an AwgError, EPERM/EACCES a permission error', () => {
    expect(ls.check('x', 3)).toBe(3);
    expect(() => ls.check('socket', -1)).toThrow(expect.objectContaining({ kind: 'permission' }));
    expect(() => ls.check('socket', -13)).toThrow(expect.objectContaining({ kind: 'permission' }));
    expect(() => ls.check('read', -35)).toThrow(
      expect.objectContaining({ kind: 'driver', message: 'read: errno 35' }),
    );
  });
});

describe('lazy loading on Linux', () => {
  it('importing every darwin native module loaded no library', () => {
    expect(fromDarwin).toEqual([]);
  });
  it('every wrapper throws unsupported, and still nothing is loaded', () => {
    const b = new Uint8Array(8);
    const calls: (() => unknown)[] = [
      () => ls.libSystem(),
      () => ls.libSystem('linux'),
      () => ls.errno(),
      () => ls.socket(2, 2, 0),
      () => ls.connect(3, b),
      () => ls.ioctl(3, 0, b),
      () => ls.getsockopt(3, 0, 0, b),
      () => ls.setsockopt(3, 0, 0, b),
      () => ls.fcntl(3, 3),
      () => ls.open('/dev/pf', 0),
      () => ls.read(3, b),
      () => ls.write(3, b),
      () => ls.close(3),
      () => ls.ifNameToIndex('en0'),
      () => ls.procListAllPids(null),
      () => ls.procPidPath(1, b),
      () => ls.sysctlByName('kern.ostype'),
      () => ls.setNonBlocking(3),
      () => utun.openUtun(),
      () => utun.interfaceMtu('utun4'),
      () => utunIo.openUtunIo(),
      () => rs.openRouteSocket(),
      () => lp.listPids(),
      () => lp.pidPath(1),
      () => bi.bindToInterface(3, 'en0', 4),
      () =>
        nl.originalDstDarwin(
          { address: '127.0.0.1', port: 1081 },
          { address: '10.0.0.2', port: 50000 },
          4,
        ),
      () => ls.aclExternal('/etc'),
      () => pc.darwinCallerNatives().peer(3),
      () => pc.darwinCallerNatives().acl('/etc'),
    ];
    for (const c of calls) expect(c).toThrow(unsupported);
    expect(fromDarwin).toEqual([]);
  });
});

describe('declarations (last: this leaves the bindings cached with a fake library)', () => {
  it('libSystem.B.dylib by path; every prototype parses in koffi', () => {
    const declared: string[] = [];
    load.mockImplementation(
      () =>
        ({
          func: (decl: string) => {
            declared.push(decl);
            koffi.proto(decl.replace(/ (\w+)\(/, ' darwin_test_$1('));
            return () => 0;
          },
        }) as unknown as ReturnType<typeof koffi.load>,
    );
    ls.libSystem('darwin');
    expect(load).toHaveBeenCalledWith('/usr/lib/libSystem.B.dylib');
    expect(declared.map((d) => /(\w+)\(/.exec(d)?.[1]).sort()).toEqual(
      [
        '__error',
        'acl_copy_ext',
        'acl_free',
        'acl_get_link_np',
        'acl_size',
        'bind',
        'close',
        'connect',
        'fcntl',
        'flock',
        'getsockopt',
        'if_nametoindex',
        'ioctl',
        'open',
        'proc_listallpids',
        'proc_pidinfo',
        'proc_pidpath',
        'read',
        'setsockopt',
        'socket',
        'sysctlbyname',
        'write',
      ].sort(),
    );
    // acl_t is a pointer koffi hands back opaque; ssize_t is 64 bits on LP64
    expect(declared.find((d) => d.includes('acl_get_link_np'))).toBe(
      'void *acl_get_link_np(const char *, int)',
    );
    expect(declared.find((d) => d.includes('acl_copy_ext'))).toBe(
      'long acl_copy_ext(_Out_ uint8_t *, void *, long)',
    );
    expect(declared.find((d) => d.includes('ioctl'))).toMatch(/unsigned long/);
    expect(declared.find((d) => d.includes('__error'))).toBe('int *__error(void)');
    // the flavor argument is a uint64_t: a 32-bit slot would shift the buffer pointer on arm64
    expect(declared.find((d) => d.includes('proc_pidinfo'))).toBe(
      'int proc_pidinfo(int, int, uint64_t, _Out_ uint8_t *, int)',
    );
  });
});
