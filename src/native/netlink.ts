/**
 * NETLINK_ROUTE sockets via koffi (docs/platform-linux.md#rtnetlink). A socket sees only the
 * network namespace
 * it was created in; `netns` creates it there with a temporary setns on the main thread.
 *
 * Two roles, usually two sockets:
 * - a monitor subscribed to multicast groups (default 0x551) that delivers parsed events
 *   in batches, driven by `koffi.node.poll` and drained until EAGAIN; ENOBUFS (events lost)
 *   becomes a `resync` event so the caller re-observes.
 * - a request socket (no groups) for synchronous request/ACK and dumps; its `portid`
 *   appears as `nlmsg_pid` on the notifications its requests cause, which is how our own
 *   changes are told apart (kernel, link and IPv6-address events carry 0: use IFA_PROTO /
 *   rtm_protocol tags for those).
 */
import { AwgError } from '../errors.js';
import {
  AF_NETLINK,
  E,
  POLLIN,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SyscallError,
  bind,
  check,
  close,
  getsockname,
  getsockopt,
  poll,
  recv,
  send,
  setsockoptInt,
  socket,
} from './libc.js';
import { inNetns } from './netns.js';
import { Poller } from './poll.js';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_OVERRUN,
  NLM_F_DUMP_INTR,
  RTMGRP_DEFAULT,
  buildAddrRequest,
  buildDelLink,
  buildGetAddrDump,
  buildGetLinkDump,
  buildSetLink,
  parseError,
  parseEvent,
  parseMessages,
  type AddrEvent,
  type AddrRequest,
  type LinkEvent,
  type NlMessage,
  type ResyncEvent,
  type RtnlEvent,
  type SetLinkRequest,
} from './rtnl.js';

export const NETLINK_ROUTE = 0;
const SO_SNDBUF = 7;
const SO_SNDBUFFORCE = 32;
const SO_NETNS_COOKIE = 71;
/** SOL_NETLINK option: an error answer echoes only the request's header, not its payload */
const NETLINK_CAP_ACK = 10;
/** setsockopt(SOL_NETLINK): join or leave one multicast group (linux/netlink.h) */
const NETLINK_ADD_MEMBERSHIP = 1;
const NETLINK_DROP_MEMBERSHIP = 2;
const RECV_BUF = 1 << 16;

export interface NetlinkOptions {
  /** NETLINK_ROUTE (default) or another netlink family (nftnl.ts: NETLINK_NETFILTER) */
  protocol?: number;
  /** multicast group bitmask to subscribe to (RTMGRP_*; 0: requests only) */
  groups?: number;
  /** network namespace name or path */
  netns?: string | undefined;
  /** SO_RCVBUF bytes (the kernel doubles it) */
  rcvbuf?: number;
  /** try SO_RCVBUFFORCE first (root: not capped by net.core.rmem_max), then SO_RCVBUF */
  rcvbufForce?: boolean;
  /**
   * SO_SNDBUF bytes (root: SO_SNDBUFFORCE first): a netlink request is one datagram and must
   * fit it (a large nf_tables batch)
   */
  sndbuf?: number;
  /** NETLINK_CAP_ACK: errors echo the failed request's header only (large requests) */
  capAck?: boolean;
}

/**
 * A dump whose NLMSG_DONE carries NLM_F_DUMP_INTR: the table changed while the kernel sent it,
 * so rows may be missing or repeated. `dumpConsistent` reads such a dump again.
 */
export class DumpInterrupted extends AwgError {
  constructor(readonly dumpType: number) {
    super('driver', `netlink dump type ${dumpType} interrupted by a concurrent change`);
  }
}

export class NetlinkSocket {
  readonly portid: number;
  readonly groups: number;
  private fd: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private handle: Poller | undefined;
  private onReadable: ((status: number) => void) | undefined;
  private readonly buf = Buffer.allocUnsafe(RECV_BUF);

  private constructor(fd: number, portid: number, groups: number) {
    this.fd = fd;
    this.portid = portid;
    this.groups = groups;
  }

  static open(opts: NetlinkOptions = {}): NetlinkSocket {
    const groups = opts.groups ?? 0;
    return inNetns(opts.netns, () => {
      const fd = check(
        'socket(AF_NETLINK)',
        socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, opts.protocol ?? NETLINK_ROUTE),
      );
      try {
        if (opts.rcvbuf !== undefined) {
          const forced =
            opts.rcvbufForce === true &&
            setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, opts.rcvbuf) >= 0;
          if (!forced)
            check('setsockopt(SO_RCVBUF)', setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, opts.rcvbuf));
        }
        if (
          opts.sndbuf !== undefined &&
          setsockoptInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, opts.sndbuf) < 0
        )
          check('setsockopt(SO_SNDBUF)', setsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, opts.sndbuf));
        if (opts.capAck === true)
          check('setsockopt(NETLINK_CAP_ACK)', setsockoptInt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1));
        const sa = Buffer.alloc(12);
        sa.writeUInt16LE(AF_NETLINK, 0);
        sa.writeUInt32LE(groups >>> 0, 8);
        check('bind(AF_NETLINK)', bind(fd, sa));
        const out = Buffer.alloc(12);
        check('getsockname', getsockname(fd, out));
        // the first socket of a process gets its pid, later ones a random u32
        return new NetlinkSocket(fd, out.readUInt32LE(4), groups);
      } catch (e) {
        close(fd);
        throw e;
      }
    });
  }

  /**
   * Join (`on`) or leave multicast group `group` (a number, not a mask): the kernel then sends
   * this socket the group's notifications, or stops. Leaving a group joined at bind() works the
   * same way (one membership bitmap).
   */
  membership(group: number, on: boolean): void {
    const opt = on ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP;
    check(
      on ? 'setsockopt(NETLINK_ADD_MEMBERSHIP)' : 'setsockopt(NETLINK_DROP_MEMBERSHIP)',
      setsockoptInt(this.fd, SOL_NETLINK, opt, group),
    );
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  /**
   * The cookie of the socket's network namespace (SO_NETNS_COOKIE, 5.14+): unique among the
   * namespaces of this boot, never reused. Undefined when the kernel has none.
   */
  netnsCookie(): bigint | undefined {
    const c = Buffer.alloc(8);
    return getsockopt(this.fd, SOL_SOCKET, SO_NETNS_COOKIE, c) === 8
      ? c.readBigUInt64LE(0)
      : undefined;
  }

  nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  /**
   * Deliver events in batches until `stop()`/`close()`. Non-rtnetlink messages are skipped.
   * `onError` receives a fatal receive error (delivery stops).
   */
  listen(cb: (events: RtnlEvent[]) => void, onError?: (e: AwgError) => void): void {
    this.listenWith(parseEvent, cb, onError);
  }

  /** `listen` with another family's parser (messages it returns undefined for are skipped). */
  listenWith<T>(
    parse: (m: NlMessage) => T | undefined,
    cb: (events: (T | ResyncEvent)[]) => void,
    onError?: (e: AwgError) => void,
  ): void {
    if (this.closed) throw new AwgError('bug', 'netlink socket is closed');
    if (this.handle) throw new AwgError('bug', 'netlink socket already listening');
    this.onReadable = (status) => {
      if (this.closed) return;
      const events: (T | ResyncEvent)[] = [];
      for (;;) {
        const n = recv(this.fd, this.buf, RECV_BUF);
        if (n < 0) {
          const errno = -n;
          if (errno === E.EAGAIN || errno === E.EINTR) break;
          // the receive queue overflowed: events were lost, the socket stays usable
          if (errno === E.ENOBUFS) {
            events.push({ type: 'resync' });
            continue;
          }
          this.stop();
          if (events.length) cb(events);
          onError?.(new SyscallError('recv', errno, 'netlink'));
          return;
        }
        for (const m of parseMessages(this.buf.subarray(0, n))) {
          if (m.type === NLMSG_OVERRUN) events.push({ type: 'resync' });
          const ev = parse(m);
          if (ev) events.push(ev);
        }
      }
      // libuv stopped the handle on EPOLLERR (pending ENOBUFS); the error is consumed now
      if (status < 0) this.handle?.restart();
      if (events.length) cb(events);
    };
    this.handle = new Poller(this.fd, this.onReadable);
  }

  /**
   * Deliver what a listening socket has queued now, synchronously, instead of waiting for
   * the event loop's next poll (a reader that samples on its own clock).
   */
  pump(): void {
    this.onReadable?.(0);
  }

  stop(): void {
    this.handle?.close();
    this.handle = undefined;
    this.onReadable = undefined;
  }

  /**
   * Send one request and collect its replies synchronously (rtnetlink answers inside the
   * send/recv path, so this never waits long; `timeoutMs` bounds it anyway). Returns the
   * data messages of a dump, or [] for an ACKed request. A negative NLMSG_ERROR throws.
   */
  request(msg: Buffer, timeoutMs = 2000): NlMessage[] {
    const out: NlMessage[] = [];
    // copy: the receive buffer is reused
    this.exchange(msg, timeoutMs, (m) => out.push({ ...m, payload: Buffer.from(m.payload) }));
    return out;
  }

  /**
   * `request` for a dump whose replies are parsed as they arrive (no copies kept): the values
   * `parse` returns, undefined ones skipped. `parse` sees a view into the receive buffer.
   */
  dump<T>(msg: Buffer, parse: (m: NlMessage) => T | undefined, timeoutMs = 2000): T[] {
    const out: T[] = [];
    this.exchange(msg, timeoutMs, (m) => {
      const v = parse(m);
      if (v !== undefined) out.push(v);
    });
    return out;
  }

  /**
   * Several requests in one send (the kernel runs each message of a datagram in turn), each
   * with NLM_F_ACK and its own seq: their replies go to `onReply` as they arrive (a view into
   * the receive buffer), and the result maps each seq to its answer's errno (0: done). A
   * receive queue too small for the replies fails with ENOBUFS (SyscallError): ask for fewer.
   * `awaitSeqs`: the seqs answered (default: every message's), for messages that are not all
   * acknowledged (an nf_tables batch's BEGIN/END).
   */
  requestBatch(
    msgs: readonly Buffer[],
    onReply: (m: NlMessage) => void,
    timeoutMs = 2000,
    awaitSeqs?: Iterable<number>,
  ): Map<number, number> {
    if (this.closed) throw new AwgError('bug', 'netlink socket is closed');
    if (this.handle)
      throw new AwgError('bug', 'requestBatch() on a listening socket; use a separate socket');
    const answers = new Map<number, number>();
    if (msgs.length === 0) return answers;
    const pending = new Set(awaitSeqs ?? msgs.map((m) => m.readUInt32LE(8)));
    check('send(netlink)', send(this.fd, Buffer.concat(msgs)));
    const deadline = Date.now() + timeoutMs;
    const pfd = Buffer.alloc(8);
    while (pending.size > 0) {
      const n = recv(this.fd, this.buf, RECV_BUF);
      if (n < 0) {
        const errno = -n;
        if (errno !== E.EAGAIN && errno !== E.EINTR)
          throw new SyscallError('recv', errno, 'netlink');
        const left = deadline - Date.now();
        if (left <= 0)
          throw new AwgError('driver', `netlink batch: ${pending.size} answers missing`);
        pfd.writeInt32LE(this.fd, 0);
        pfd.writeInt16LE(POLLIN, 4);
        pfd.writeInt16LE(0, 6);
        poll(pfd, left);
        continue;
      }
      for (const m of parseMessages(this.buf.subarray(0, n))) {
        if (!pending.has(m.seq) || (m.portid !== this.portid && m.portid !== 0)) continue;
        if (m.type === NLMSG_ERROR) {
          answers.set(m.seq, -parseError(m).error);
          pending.delete(m.seq);
          continue;
        }
        onReply(m);
      }
    }
    return answers;
  }

  private exchange(msg: Buffer, timeoutMs: number, onData: (m: NlMessage) => void): void {
    if (this.closed) throw new AwgError('bug', 'netlink socket is closed');
    if (this.handle)
      throw new AwgError('bug', 'request() on a listening socket; use a separate socket');
    const seq = msg.readUInt32LE(8);
    const sent = send(this.fd, msg);
    check('send(netlink)', sent);
    const deadline = Date.now() + timeoutMs;
    const pfd = Buffer.alloc(8);
    for (;;) {
      const n = recv(this.fd, this.buf, RECV_BUF);
      if (n < 0) {
        const errno = -n;
        if (errno !== E.EAGAIN && errno !== E.EINTR)
          throw new SyscallError('recv', errno, 'netlink');
        const left = deadline - Date.now();
        if (left <= 0) throw new AwgError('driver', `netlink request seq ${seq} timed out`);
        pfd.writeInt32LE(this.fd, 0);
        pfd.writeInt16LE(POLLIN, 4);
        pfd.writeInt16LE(0, 6);
        poll(pfd, left);
        continue;
      }
      for (const m of parseMessages(this.buf.subarray(0, n))) {
        if (m.seq !== seq || (m.portid !== this.portid && m.portid !== 0)) continue;
        if (m.type === NLMSG_ERROR) {
          const { error } = parseError(m);
          if (error < 0)
            throw new SyscallError('netlink', -error, `request type ${msg.readUInt16LE(4)}`);
          return;
        }
        if (m.type === NLMSG_DONE) {
          // a dump that failed part-way says so in the int that NLMSG_DONE carries
          const error = m.payload.length >= 4 ? m.payload.readInt32LE(0) : 0;
          if (error < 0)
            throw new SyscallError('netlink', -error, `dump type ${msg.readUInt16LE(4)}`);
          if (m.flags & NLM_F_DUMP_INTR) throw new DumpInterrupted(msg.readUInt16LE(4));
          return;
        }
        onData(m);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.stop();
    close(this.fd);
    this.fd = -1;
  }
}

/** RTM_NEWADDR with IFA_PROTO; throws SyscallError (EEXIST if present). */
export function addAddress(sock: NetlinkSocket, req: AddrRequest): void {
  sock.request(buildAddrRequest('add', req, sock.nextSeq(), sock.portid));
}

export function deleteAddress(sock: NetlinkSocket, req: AddrRequest): void {
  sock.request(buildAddrRequest('del', req, sock.nextSeq(), sock.portid));
}

/** Change alias / mtu / admin state of an existing link in one request. */
export function setLink(sock: NetlinkSocket, req: SetLinkRequest): void {
  sock.request(buildSetLink(req, sock.nextSeq(), sock.portid));
}

/** RTM_DELLINK by name. */
export function deleteLink(sock: NetlinkSocket, name: string): void {
  sock.request(buildDelLink(name, sock.nextSeq(), sock.portid));
}

/**
 * A dump read whole: one the kernel interrupts (NLM_F_DUMP_INTR: a concurrent change) is read
 * again with a fresh request (`build` of a new seq), up to `tries` reads, then fails as a
 * `driver` error. Nothing else is read again: an errno, a timeout or a closed socket is final.
 */
export function dumpConsistent<T>(
  sock: Pick<NetlinkSocket, 'dump' | 'nextSeq'>,
  build: (seq: number) => Buffer,
  parse: (m: NlMessage) => T | undefined,
  tries = 3,
  timeoutMs?: number,
): T[] {
  for (let i = 1; ; i++) {
    try {
      return sock.dump(build(sock.nextSeq()), parse, timeoutMs);
    } catch (e) {
      if (!(e instanceof DumpInterrupted)) throw e;
      if (i >= tries)
        throw new AwgError(
          'driver',
          `netlink dump type ${e.dumpType} interrupted by a concurrent change ${tries} times in a row`,
          { cause: e },
        );
    }
  }
}

/** RTM_GETLINK dump: every link of the socket's namespace. */
export function dumpLinks(sock: Pick<NetlinkSocket, 'dump' | 'nextSeq' | 'portid'>): LinkEvent[] {
  return dumpConsistent(
    sock,
    (seq) => buildGetLinkDump(seq, sock.portid),
    (m) => {
      const e = parseEvent(m);
      return e?.type === 'newlink' ? e : undefined;
    },
  );
}

/** RTM_GETADDR dump: every address of `family` (default: every family) in the namespace. */
export function dumpAddresses(
  sock: Pick<NetlinkSocket, 'dump' | 'nextSeq' | 'portid'>,
  family?: number,
): AddrEvent[] {
  return dumpConsistent(
    sock,
    (seq) => buildGetAddrDump(seq, family, sock.portid),
    (m) => {
      const e = parseEvent(m);
      return e?.type === 'newaddr' ? e : undefined;
    },
  );
}

/** Monitor socket on the default groups (link, v4/v6 address and route). */
export function openMonitor(
  opts: Omit<NetlinkOptions, 'groups'> & { groups?: number } = {},
): NetlinkSocket {
  return NetlinkSocket.open({ groups: RTMGRP_DEFAULT, ...opts });
}
