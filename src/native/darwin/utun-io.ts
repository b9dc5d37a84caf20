/**
 * The utun control socket as the data plane's UtunDevice reads and writes it (macOS only;
 * NEVER RUN ON A MAC: docs/platform-macos.md). Readiness through libuv (native/poll.ts).
 */
import koffi from 'koffi';
import { Poller } from '../poll.js';
import { D, interfaceMtu, libSystem, openUtun } from './libsystem.js';

/** The utun socket, as the device uses it: non-blocking reads until `EAGAIN` (0). */
export interface UtunIo {
  /** one frame into `buf`: its length, 0 when none is waiting, < 0 when the device is gone */
  read(buf: Uint8Array): number;
  /** one frame; false when the kernel refused it */
  write(frame: Uint8Array): boolean;
  mtu(): number;
  /** call `cb` whenever frames may be waiting (level-triggered); returns a stop function */
  watch(cb: () => void): () => void;
  close(): void;
}

export function openUtunIo(unit = 0): { ifname: string; io: UtunIo } {
  const l = libSystem();
  const { fd, ifname } = openUtun(unit);
  return {
    ifname,
    io: {
      read(buf) {
        const n = l.read(fd, buf, buf.length);
        if (n >= 0) return n;
        return koffiErrno() === D.EAGAIN ? 0 : -1;
      },
      write: (frame) => l.write(fd, frame, frame.length) === frame.length,
      mtu: () => interfaceMtu(ifname),
      watch(cb) {
        const p = new Poller(fd, () => cb());
        return () => p.close();
      },
      close: () => void l.close(fd),
    },
  };
}

const koffiErrno = () => koffi.errno();
