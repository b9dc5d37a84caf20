/**
 * A PF_ROUTE socket (macOS): every routing message the kernel broadcasts (RTM_ADD/DELETE/
 * CHANGE, NEWADDR/DELADDR, IFINFO) as raw bytes, for the daemon's network monitor; decoding
 * is src/platform/darwin/rtmsg.ts's. Readiness through libuv (native/poll.ts), reads drained
 * until EAGAIN. NEVER RUN ON A MAC (docs/platform-macos.md).
 */
import { AwgError } from '../../errors.js';
import { Poller } from '../poll.js';
import { D, libSystem } from './libsystem.js';

export interface RouteSocket {
  onMessage(cb: (msg: Uint8Array) => void): void;
  close(): void;
}

/** the largest routing message: rt_msghdr + 8 sockaddrs of up to 255 bytes */
const BUF = 2048;

export function openRouteSocket(): RouteSocket {
  const l = libSystem();
  const fd = l.socket(D.PF_ROUTE, D.SOCK_RAW, D.AF_UNSPEC);
  if (fd < 0) throw new AwgError('permission', 'socket(PF_ROUTE) failed');
  const fl = l.fcntl(fd, D.F_GETFL, 0);
  l.fcntl(fd, D.F_SETFL, fl | D.O_NONBLOCK);
  const listeners: ((m: Uint8Array) => void)[] = [];
  const buf = new Uint8Array(BUF);
  const poller = new Poller(fd, () => {
    for (;;) {
      const n = l.read(fd, buf, buf.length);
      if (n <= 0) break; // EAGAIN (drained), or ENOBUFS: messages were lost; the monitor re-observes anyway
      const msg = buf.slice(0, n);
      for (const cb of listeners) cb(msg);
    }
  });
  return {
    onMessage: (cb) => void listeners.push(cb),
    close() {
      poller.close();
      l.close(fd);
    },
  };
}
