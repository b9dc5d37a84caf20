/**
 * The utun control socket as the data plane's UtunDevice reads and writes it (macOS only;
 * NEVER RUN ON A MAC: docs/platform-macos.md). Readiness through libuv (native/poll.ts).
 */
import { Poller } from '../poll.js';
import { D, close, read, write } from './libsystem.js';
import { interfaceMtu, openUtun } from './utun.js';

/** The utun socket, as the device uses it: non-blocking reads until `EAGAIN` (0). */
export interface UtunIo {
  /** one frame into `buf`: its length, 0 when none is waiting, < 0 when the device is gone */
  read(buf: Uint8Array): number;
  /** one frame, the first `len` bytes of `buf` (a reused buffer: no view per packet); false when the kernel refused it */
  write(buf: Uint8Array, len: number): boolean;
  mtu(): number;
  /** call `cb` whenever frames may be waiting (level-triggered); returns a stop function */
  watch(cb: () => void): () => void;
  close(): void;
}

/** UtunIo over an open utun socket (non-blocking) */
export function utunIo(fd: number, ifname: string): UtunIo {
  return {
    read(buf) {
      const n = read(fd, buf);
      if (n >= 0) return n;
      return n === -D.EAGAIN || n === -D.EINTR ? 0 : -1;
    },
    write: (buf, len) => write(fd, buf, len) === len,
    mtu: () => interfaceMtu(ifname),
    watch(cb) {
      const p = new Poller(fd, () => cb());
      return () => p.close();
    },
    close: () => void close(fd),
  };
}

export function openUtunIo(unit = 0): { ifname: string; io: UtunIo } {
  const { fd, ifname } = openUtun(unit);
  return { ifname, io: utunIo(fd, ifname) };
}
