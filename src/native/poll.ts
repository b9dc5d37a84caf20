/**
 * libuv readiness polling of a raw fd through `koffi.node.poll`
 * (docs/platform-linux.md#polling-raw-fds).
 * - The callback really receives `(status, events)` with events an object `{ readable, writable,
 *   disconnect }`; koffi's .d.ts declares only `(events)`. Poller passes a UV_* bitmask.
 * - The koffi handle must stay referenced (a collected handle stops silently): Poller keeps it.
 * - libuv polls level-triggered: callers drain until EAGAIN.
 * - On EPOLLERR libuv reports UV_EBADF and *stops* the handle. A netlink socket with a
 *   pending ENOBUFS, or a TUN whose device vanished, signals exactly that; the caller
 *   drains (recv/read surfaces the real errno) and calls `restart()` if the fd is still good.
 * - Close the poller before closing the fd.
 */
import koffi from 'koffi';

interface PollOpts {
  readable: boolean;
  writable?: boolean;
}

/** what koffi passes as the callback's second argument */
interface KoffiEvents {
  readable?: boolean;
  writable?: boolean;
  disconnect?: boolean;
}

interface KoffiPollHandle {
  start(opts: PollOpts, cb: (status: number, events: KoffiEvents) => void): void;
  stop(): void;
  close(): void;
  unref(): void;
  ref(): void;
}

type PollFn = (
  fd: number,
  opts: PollOpts,
  cb: (status: number, events: KoffiEvents) => void,
) => KoffiPollHandle;

/** libuv's event bits in the callback's `events` */
export const UV_READABLE = 1;
export const UV_WRITABLE = 2;

export class Poller {
  private handle: KoffiPollHandle | undefined;
  private readonly cb: (status: number, events: KoffiEvents) => void;
  private writable = false;

  /**
   * `status` < 0 is a libuv error code and means the handle has been stopped; `events` has
   * UV_READABLE / UV_WRITABLE.
   */
  constructor(fd: number, cb: (status: number, events: number) => void) {
    // koffi reports the events as an object { readable, writable, disconnect }
    this.cb = (status, events) =>
      cb(status, (events?.readable ? UV_READABLE : 0) | (events?.writable ? UV_WRITABLE : 0));
    this.handle = (koffi.node.poll as unknown as PollFn)(fd, { readable: true }, this.cb);
  }

  restart(): void {
    this.handle?.start({ readable: true, writable: this.writable }, this.cb);
  }

  /** Also wake when the fd is writable (a send queue waits for room), or stop doing so. */
  watchWritable(on: boolean): void {
    if (on === this.writable) return;
    this.writable = on;
    this.restart();
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
