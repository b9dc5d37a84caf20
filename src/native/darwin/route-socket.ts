/**
 * A PF_ROUTE socket (macOS): every routing message the kernel broadcasts (RTM_ADD/DELETE/
 * CHANGE, NEWADDR/DELADDR, IFINFO) as raw bytes, for the daemon's network monitor; decoding
 * is src/platform/darwin/rtmsg.ts's. `socket(PF_ROUTE, SOCK_RAW, AF_UNSPEC)`, non-blocking;
 * readiness through libuv (native/poll.ts), reads drained until EAGAIN. NEVER RUN ON A MAC
 * (docs/platform-macos.md). The RTM_GET request encoder (layouts.ts encodeRtmGet: 92-byte
 * rt_msghdr, RTM_VERSION 5, RTA_DST sockaddr_in/in6 rounded to 4, an empty RTA_IFP
 * sockaddr_dl) is re-exported here and tested on bytes through rtmsg.ts's decoder.
 */
import { Poller } from '../poll.js';
import { D, check, close, read, setNonBlocking, socket } from './libsystem.js';

export {
  RTA_DST,
  RTA_IFP,
  RTM_GET,
  RTM_VERSION,
  RT_MSGHDR_SIZE,
  encodeRtmGet,
  encodeSockaddr,
} from './layouts.js';

export interface RouteSocket {
  onMessage(cb: (msg: Uint8Array) => void): void;
  close(): void;
}

/** the largest routing message: rt_msghdr + 8 sockaddrs of up to 255 bytes */
const BUF = 2048;

export function openRouteSocket(): RouteSocket {
  const fd = check('socket(PF_ROUTE, SOCK_RAW)', socket(D.PF_ROUTE, D.SOCK_RAW, D.AF_UNSPEC));
  try {
    setNonBlocking(fd);
  } catch (e) {
    close(fd);
    throw e;
  }
  const listeners: ((m: Uint8Array) => void)[] = [];
  const buf = new Uint8Array(BUF);
  let closed = false;
  const poller = new Poller(fd, () => {
    drainRouteReads(
      (b) => read(fd, b),
      buf,
      (m) => {
        for (const cb of listeners) cb(m);
      },
      () => closed,
    );
  });
  return {
    onMessage: (cb) => void listeners.push(cb),
    close() {
      if (closed) return;
      closed = true;
      poller.close();
      close(fd);
    },
  };
}

/**
 * Drain a ready route socket: every message read is delivered; ENOBUFS (the kernel dropped
 * messages: the socket buffer overflowed) is delivered as an empty message, which the monitor
 * takes as "messages lost: re-observe everything" (monitor/darwin.ts classifyRouteRead);
 * EAGAIN (drained) and any other error end the drain. `readInto` returns bytes or -errno.
 */
export function drainRouteReads(
  readInto: (b: Uint8Array) => number,
  buf: Uint8Array,
  deliver: (m: Uint8Array) => void,
  stopped: () => boolean = () => false,
): void {
  while (!stopped()) {
    const n = readInto(buf);
    if (n === -D.ENOBUFS) {
      deliver(new Uint8Array(0));
      continue;
    }
    if (n <= 0) break;
    deliver(buf.slice(0, n));
  }
}
