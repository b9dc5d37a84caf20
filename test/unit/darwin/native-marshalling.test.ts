/**
 * koffi marshalling of the libSystem prototypes (src/native/darwin/libsystem.ts DECLS),
 * checked on Linux against glibc where it has the same call with the same C types: typed
 * arrays passed as `_Inout_`/`_Out_` pointers are filled in place, a Uint32Array length is
 * written back, a null buffer is accepted, the `int *` errno cell decodes (glibc's
 * __errno_location stands in for darwin's __error). What this cannot show: libSystem's own
 * symbols, values and behaviour (no Mac here).
 */
import koffi from 'koffi';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DECLS } from '../../../src/native/darwin/libsystem.js';

const linux = process.platform === 'linux';

describe.skipIf(!linux)('libSystem prototypes marshal as intended (on glibc)', () => {
  const l = koffi.load('libc.so.6');
  const fn = <T>(decl: string) => l.func(decl) as unknown as T;
  const socket = fn<(d: number, t: number, p: number) => number>(DECLS.socket);
  const getsockopt = fn<
    (fd: number, lv: number, n: number, v: Uint8Array, len: Uint32Array) => number
  >(DECLS.getsockopt);
  const ioctl = fn<(fd: number, req: number, arg: Uint8Array) => number>(DECLS.ioctl);
  const fcntl = fn<(fd: number, c: number, a: number) => number>(DECLS.fcntl);
  const read = fn<(fd: number, b: Uint8Array | null, n: number) => number>(DECLS.read);
  const close = fn<(fd: number) => number>(DECLS.close);
  const errnoCell = fn<() => unknown>(DECLS.__error.replace('__error', '__errno_location'));
  const errno = () => koffi.decode(errnoCell(), 'int') as number;

  it('flock: LOCK_EX|LOCK_NB on one open file, EWOULDBLOCK (EAGAIN on Linux) on a second', () => {
    const flock = fn<(fd: number, op: number) => number>(DECLS.flock);
    const path = join(mkdtempSync(join(tmpdir(), 'awgt-flock-')), 'lock');
    const a = openSync(path, 'w');
    const b = openSync(path, 'r');
    try {
      expect(flock(a, 2 | 4)).toBe(0);
      expect(flock(b, 2 | 4)).toBe(-1);
      expect(errno()).toBe(11);
    } finally {
      closeSync(a);
      closeSync(b);
      rmSync(dirname(path), { recursive: true, force: true });
    }
  });

  it('bind: the address read from a byte array of its length; a port taken fails with its errno', () => {
    const bind = fn<(fd: number, a: Uint8Array, len: number) => number>(DECLS.bind);
    const listen = fn<(fd: number, n: number) => number>('int listen(int, int)');
    // Linux's sockaddr_in (no sa_len): family u16 LE, port BE, address; darwin's has sa_len
    const sin = (port: number) => {
      const b = new Uint8Array(16);
      b[0] = 2;
      new DataView(b.buffer).setUint16(2, port, false);
      b.set([127, 0, 0, 1], 4);
      return b;
    };
    const a = socket(2, 1, 0);
    const b = socket(2, 1, 0);
    try {
      expect(bind(a, sin(0), 16)).toBe(0);
      expect(listen(a, 1)).toBe(0);
      const name = new Uint8Array(16);
      const len = Uint32Array.of(16);
      fn<(fd: number, a: Uint8Array, l: Uint32Array) => number>(
        'int getsockname(int, _Out_ uint8_t *, _Inout_ uint32_t *)',
      )(a, name, len);
      const port = new DataView(name.buffer).getUint16(2, false);
      expect(port).toBeGreaterThan(0);
      expect(bind(b, sin(port), 16)).toBe(-1);
      expect(errno()).toBe(98); // Linux EADDRINUSE (darwin: 48)
    } finally {
      close(a);
      close(b);
    }
  });
  it('getsockopt: the value filled, the length written back', () => {
    const fd = socket(2, 2, 0); // AF_INET, SOCK_DGRAM (same numbers on Linux)
    try {
      const v = new Uint8Array(8);
      const len = Uint32Array.of(8);
      expect(getsockopt(fd, 1, 7, v, len)).toBe(0); // SOL_SOCKET/SO_SNDBUF on Linux
      expect(len[0]).toBe(4);
      expect(new DataView(v.buffer).getInt32(0, true)).toBeGreaterThan(0);
    } finally {
      close(fd);
    }
  });
  it('ioctl with an unsigned long request: the struct filled in place', () => {
    const fd = socket(2, 2, 0);
    try {
      const req = new Uint8Array(40);
      req.set(Buffer.from('lo'));
      expect(ioctl(fd, 0x8921, req)).toBe(0); // Linux SIOCGIFMTU
      expect(new DataView(req.buffer).getInt32(16, true)).toBeGreaterThan(0);
    } finally {
      close(fd);
    }
  });
  it('a null buffer is accepted; a failed call leaves its errno in the int * cell', () => {
    const fd = socket(2, 2, 0);
    try {
      expect(fcntl(fd, 4, fcntl(fd, 3, 0) | 0x800)).toBe(0); // Linux F_SETFL O_NONBLOCK
      expect(read(fd, new Uint8Array(16), 16)).toBe(-1);
      expect(errno()).toBe(11); // Linux EAGAIN (darwin: 35)
      expect(() => read(fd, null, 0)).not.toThrow(); // a zero-length read: 0 or EAGAIN
    } finally {
      close(fd);
    }
    expect(close(fd)).toBe(-1);
    expect(errno()).toBe(9); // EBADF
  });
});
