/**
 * libuv readiness polling of a raw fd through `koffi.node.poll` (LINUX.md §6.5).
 * - The callback really receives `(status, events)`; koffi's .d.ts declares only `(events)`.
 * - The koffi handle must stay referenced (a collected handle stops silently): Poller keeps it.
 * - libuv polls level-triggered: callers drain until EAGAIN.
 * - On EPOLLERR libuv reports UV_EBADF and *stops* the handle. A netlink socket with a
 *   pending ENOBUFS, or a TUN whose device vanished, signals exactly that; the caller
 *   drains (recv/read surfaces the real errno) and calls `restart()` if the fd is still good.
 * - Close the poller before closing the fd.
 */
import koffi from 'koffi';

interface KoffiPollHandle {
  start(opts: { readable: boolean }, cb: (status: number) => void): void;
  stop(): void;
  close(): void;
  unref(): void;
  ref(): void;
}

type PollFn = (
  fd: number,
  opts: { readable: boolean },
  cb: (status: number) => void,
) => KoffiPollHandle;

export class Poller {
  private handle: KoffiPollHandle | undefined;
  private readonly cb: (status: number) => void;

  /** `status` < 0 is a libuv error code and means the handle has been stopped. */
  constructor(fd: number, cb: (status: number) => void) {
    this.cb = (status) => cb(status);
    this.handle = (koffi.node.poll as unknown as PollFn)(fd, { readable: true }, this.cb);
  }

  restart(): void {
    this.handle?.start({ readable: true }, this.cb);
  }

  /** let the process exit while polling (the handle is ref'd by default) */
  unref(): void {
    this.handle?.unref();
  }

  close(): void {
    this.handle?.close();
    this.handle = undefined;
  }
}
