/**
 * Kernel proc connector (NETLINK_CONNECTOR, CN_IDX_PROC): fork/exec events
 * (docs/platform-linux.md#proc-connector).
 *
 * - Every event is its own 76-byte datagram: one recv() per event, drained until EAGAIN from
 *   a `koffi.node.poll` callback on the main thread (a worker doubles the latency).
 * - LISTEN only works from the initial network namespace (elsewhere send() fails with
 *   ECONNREFUSED) and the initial PID namespace. A socket's namespace is fixed when it is
 *   created, so a daemon running elsewhere can be handed an fd opened in the initial
 *   namespace (`fd`, or AWG_PROC_CONNECTOR_FD like socket activation), or create it there
 *   itself with setns (`netns: '/proc/1/ns/net'`, needs CAP_SYS_ADMIN over it).
 * - Kernel-side filtering (kernel ≥ 6.6): after a plain LISTEN (answered by an ACK that
 *   proves the subscription) a second LISTEN with `{op, mask}` restricts delivery to `mask`.
 *   Older kernels ignore an 8-byte request, so events are filtered here as well.
 * - `timestamp_ns` is CLOCK_MONOTONIC, the clock of `process.hrtime.bigint()`.
 */
import { release } from 'node:os';
import { AwgError } from '../errors.js';
import {
  AF_NETLINK,
  E,
  POLLIN,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SyscallError,
  bind,
  check,
  close,
  getsockname,
  poll,
  recv,
  send,
  setNonBlocking,
  setsockoptInt,
  socket,
} from '../native/libc.js';
import { inNetns } from '../native/netns.js';
import { Poller } from '../native/poll.js';

export const NETLINK_CONNECTOR = 11;
export const CN_IDX_PROC = 1;
export const CN_VAL_PROC = 1;
export const PROC_CN_MCAST_LISTEN = 1;
export const PROC_CN_MCAST_IGNORE = 2;
const NLMSG_DONE = 3;

export const PROC_EVENT = {
  NONE: 0,
  FORK: 1,
  EXEC: 2,
  UID: 4,
  GID: 0x40,
  SID: 0x80,
  PTRACE: 0x100,
  COMM: 0x200,
  NONZERO_EXIT: 0x20000000,
  COREDUMP: 0x40000000,
  EXIT: 0x80000000,
} as const;

/** fork + exec: what placement needs (fork keeps our own process tree known) */
export const PLACEMENT_MASK = PROC_EVENT.FORK | PROC_EVENT.EXEC;

export type ProcEvent =
  | { type: 'ack'; err: number }
  | {
      type: 'fork';
      ts: bigint;
      parentPid: number;
      parentTgid: number;
      childPid: number;
      childTgid: number;
    }
  | { type: 'exec'; ts: bigint; pid: number; tgid: number }
  | { type: 'exit'; ts: bigint; pid: number; tgid: number; exitCode: number; exitSignal: number }
  | { type: 'other'; what: number; ts: bigint };

const HDR = 16;
const CN = 20;
const EV = HDR + CN; // proc_event

/**
 * One received datagram → its event, or undefined when it is not a proc-connector message.
 * Offsets are absolute from the datagram start; timestamp_ns at 44 is not
 * 8-byte aligned, hence readBigUInt64LE.
 */
export function parseProcMessage(buf: Uint8Array): ProcEvent | undefined {
  if (buf.length < EV + 16) return undefined;
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const len = b.readUInt32LE(0);
  if (len > b.length || b.readUInt16LE(4) !== NLMSG_DONE) return undefined;
  if (b.readUInt32LE(HDR) !== CN_IDX_PROC || b.readUInt32LE(HDR + 4) !== CN_VAL_PROC)
    return undefined;
  const dataLen = b.readUInt16LE(HDR + 16);
  if (EV + dataLen > len) return undefined;
  const what = b.readUInt32LE(EV);
  const ts = b.readBigUInt64LE(EV + 8);
  const u = (o: number) => b.readUInt32LE(EV + 16 + o);
  const s = (o: number) => b.readInt32LE(EV + 16 + o);
  switch (what) {
    case PROC_EVENT.NONE:
      return { type: 'ack', err: u(0) };
    case PROC_EVENT.FORK:
      return {
        type: 'fork',
        ts,
        parentPid: u(0),
        parentTgid: u(4),
        childPid: u(8),
        childTgid: u(12),
      };
    case PROC_EVENT.EXEC:
      return { type: 'exec', ts, pid: u(0), tgid: u(4) };
    case PROC_EVENT.EXIT:
      return { type: 'exit', ts, pid: u(0), tgid: u(4), exitCode: u(8), exitSignal: s(12) };
    default:
      return { type: 'other', what, ts };
  }
}

/** LISTEN/IGNORE request; with `mask`, the 8-byte proc_input form (kernel-side filter). */
export function buildMcastMessage(portid: number, op: number, mask?: number): Buffer {
  const dataLen = mask === undefined ? 4 : 8;
  const b = Buffer.alloc(HDR + CN + dataLen);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(NLMSG_DONE, 4);
  b.writeUInt32LE(portid >>> 0, 12);
  b.writeUInt32LE(CN_IDX_PROC, HDR);
  b.writeUInt32LE(CN_VAL_PROC, HDR + 4);
  b.writeUInt16LE(dataLen, HDR + 16);
  b.writeUInt32LE(op, EV);
  if (mask !== undefined) b.writeUInt32LE(mask >>> 0, EV + 4);
  return b;
}

/** Build an event datagram as the kernel sends it (tests, benchmarks). */
export function buildProcEvent(what: number, ts: bigint, fields: number[]): Buffer {
  const b = Buffer.alloc(76);
  b.writeUInt32LE(76, 0);
  b.writeUInt16LE(NLMSG_DONE, 4);
  b.writeUInt32LE(CN_IDX_PROC, HDR);
  b.writeUInt32LE(CN_VAL_PROC, HDR + 4);
  b.writeUInt16LE(40, HDR + 16);
  b.writeUInt32LE(what >>> 0, EV);
  b.writeBigUInt64LE(ts, EV + 8);
  fields.forEach((v, i) => b.writeInt32LE(v | 0, EV + 16 + 4 * i));
  return b;
}

/** kernel ≥ 6.6 honours the event mask (proc_input) */
export function kernelFiltersEvents(rel = release()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > 6 || (maj === 6 && min >= 6);
}

export interface ConnectorOptions {
  /**
   * An already-open NETLINK_CONNECTOR socket created in the initial network namespace.
   * `subscribed: true` when its owner already bound it and sent LISTEN. Ownership passes to
   * the connector (closed by close()).
   */
  fd?: number;
  subscribed?: boolean;
  /** create the socket in this network namespace (e.g. '/proc/1/ns/net') */
  netns?: string;
  /** event mask (PROC_EVENT bits); default fork + exec */
  mask?: number;
  /** bytes of SO_RCVBUF (events are lost, ENOBUFS, when the queue overflows) */
  rcvbuf?: number;
}

/** AWG_PROC_CONNECTOR_FD=N: an inherited socket opened in the initial namespace. */
export function connectorFdFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.AWG_PROC_CONNECTOR_FD;
  return v && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** socket(NETLINK_CONNECTOR) bound to CN_IDX_PROC (not yet subscribed), in `netns` if given. */
export function openConnectorSocket(netns?: string): number {
  return inNetns(netns, () => {
    const fd = check(
      'socket(NETLINK_CONNECTOR)',
      socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR),
    );
    try {
      const sa = Buffer.alloc(12);
      sa.writeUInt16LE(AF_NETLINK, 0);
      sa.writeUInt32LE(CN_IDX_PROC, 8);
      check('bind(CN_IDX_PROC)', bind(fd, sa));
      return fd;
    } catch (e) {
      close(fd);
      throw e;
    }
  });
}

export interface ConnectorStats {
  received: number;
  /** ENOBUFS: the receive queue overflowed, events were lost (rescan /proc) */
  overruns: number;
  /** events the kernel sent although the mask excludes them (filter unsupported) */
  unfiltered: number;
}

export class ProcConnector {
  readonly mask: number;
  readonly stats: ConnectorStats = { received: 0, overruns: 0, unfiltered: 0 };
  /** whether the kernel filters by `mask` (≥ 6.6); otherwise filtering happens here */
  readonly kernelFilter: boolean;
  private fd: number;
  private readonly portid: number;
  private poller: Poller | undefined;
  private readonly buf = Buffer.allocUnsafe(256);

  private constructor(fd: number, portid: number, mask: number, kernelFilter: boolean) {
    this.fd = fd;
    this.portid = portid;
    this.mask = mask;
    this.kernelFilter = kernelFilter;
  }

  /**
   * Open (or adopt) the socket and subscribe. Throws AwgError 'unsupported' with the reason
   * when the kernel refuses (not the initial network namespace, no CONFIG_PROC_EVENTS).
   */
  static open(opts: ConnectorOptions = {}): ProcConnector {
    const mask = opts.mask ?? PLACEMENT_MASK;
    const fd = opts.fd ?? openConnectorSocket(opts.netns);
    try {
      if (opts.fd !== undefined) setNonBlocking(fd);
      // SO_RCVBUFFORCE (root) is not capped by rmem_max; fall back to the capped SO_RCVBUF
      if (
        opts.rcvbuf !== undefined &&
        setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, opts.rcvbuf) < 0
      )
        setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, opts.rcvbuf);
      const sa = Buffer.alloc(12);
      check('getsockname', getsockname(fd, sa));
      const portid = sa.readUInt32LE(4);
      let kernelFilter = kernelFiltersEvents();
      if (!opts.subscribed) {
        // an inherited socket, bound long before, may have queued (and overflowed with) host
        // events: they are stale (the caller rescans /proc), so drop them and the ENOBUFS
        if (opts.fd !== undefined) drainStale(fd);
        const r = send(fd, buildMcastMessage(portid, PROC_CN_MCAST_LISTEN));
        if (r === -E.ECONNREFUSED)
          throw new AwgError(
            'unsupported',
            'the kernel refused the proc connector subscription (ECONNREFUSED): it only works from the initial network namespace; run the watcher there or pass it a socket opened there (AWG_PROC_CONNECTOR_FD)',
          );
        check('send(PROC_CN_MCAST_LISTEN)', r);
        waitAck(fd, 1000, () => send(fd, buildMcastMessage(portid, PROC_CN_MCAST_LISTEN)));
        // with a filter the ACK (event NONE) is filtered out, so none is awaited here
        if (kernelFilter) {
          const r2 = send(fd, buildMcastMessage(portid, PROC_CN_MCAST_LISTEN, mask));
          if (r2 < 0) kernelFilter = false;
        }
      }
      return new ProcConnector(fd, portid, mask, kernelFilter);
    } catch (e) {
      if (opts.fd === undefined) close(fd);
      throw e;
    }
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  /**
   * Deliver events (filtered by `mask`; ACKs dropped) batch by batch until close().
   * `onOverrun` is called after ENOBUFS (events were lost: rescan). `onError` receives a
   * fatal receive error; delivery stops.
   */
  listen(
    cb: (events: ProcEvent[]) => void,
    handlers: { onOverrun?: () => void; onError?: ((e: AwgError) => void) | undefined } = {},
  ): void {
    if (this.closed) throw new AwgError('bug', 'proc connector is closed');
    if (this.poller) throw new AwgError('bug', 'proc connector already listening');
    this.poller = new Poller(this.fd, (status) => {
      if (this.closed) return;
      const events: ProcEvent[] = [];
      let overrun = false;
      const fatal = this.drain(events, () => (overrun = true));
      if (fatal === undefined && status < 0) this.poller?.restart();
      if (events.length) cb(events);
      if (overrun) handlers.onOverrun?.();
      if (fatal !== undefined) {
        this.stop();
        handlers.onError?.(new SyscallError('recv', fatal, 'proc connector'));
      }
    });
  }

  /** Read every queued event now (one recv per datagram). Returns a fatal errno, if any. */
  drain(out: ProcEvent[], onOverrun: () => void = () => {}): number | undefined {
    for (;;) {
      const n = recv(this.fd, this.buf, this.buf.length);
      if (n < 0) {
        const errno = -n;
        if (errno === E.EAGAIN || errno === E.EINTR) return undefined;
        if (errno === E.ENOBUFS) {
          this.stats.overruns++;
          onOverrun();
          continue;
        }
        return errno;
      }
      const ev = parseProcMessage(this.buf.subarray(0, n));
      if (!ev || ev.type === 'ack') continue;
      this.stats.received++;
      const bit =
        ev.type === 'fork'
          ? PROC_EVENT.FORK
          : ev.type === 'exec'
            ? PROC_EVENT.EXEC
            : ev.type === 'exit'
              ? PROC_EVENT.EXIT
              : ev.what;
      if ((bit & this.mask) === 0) {
        this.stats.unfiltered++;
        continue;
      }
      out.push(ev);
    }
  }

  /** let the process exit while listening */
  unref(): void {
    this.poller?.unref();
  }

  stop(): void {
    this.poller?.close();
    this.poller = undefined;
  }

  /** IGNORE (the kernel stops generating events once no listener is left), then close. */
  close(): void {
    if (this.closed) return;
    this.stop();
    send(this.fd, buildMcastMessage(this.portid, PROC_CN_MCAST_IGNORE));
    close(this.fd);
    this.fd = -1;
  }
}

/** the first datagram after LISTEN is the ACK (event NONE); other events may precede it */
/** read and discard everything queued (ENOBUFS included) until the socket is empty */
function drainStale(fd: number): void {
  const buf = Buffer.allocUnsafe(4096);
  for (let i = 0; i < 1_000_000; i++) {
    const n = recv(fd, buf, buf.length);
    if (n < 0 && -n !== E.ENOBUFS && -n !== E.EINTR) return;
  }
}

/**
 * The first datagram after LISTEN is the ACK (event NONE); other events may precede it. An
 * overflow (ENOBUFS) may have dropped the ACK: `resend` asks again.
 */
function waitAck(fd: number, timeoutMs: number, resend: () => number): void {
  const buf = Buffer.allocUnsafe(256);
  const pfd = Buffer.alloc(8);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = recv(fd, buf, buf.length);
    if (n >= 0) {
      const ev = parseProcMessage(buf.subarray(0, n));
      if (ev?.type === 'ack') {
        if (ev.err !== 0) throw new SyscallError('proc connector LISTEN', ev.err);
        return;
      }
      continue;
    }
    if (-n === E.ENOBUFS && Date.now() < deadline) {
      resend();
      continue;
    }
    if (-n !== E.EAGAIN && -n !== E.EINTR) throw new SyscallError('recv', -n, 'proc connector');
    const left = deadline - Date.now();
    if (left <= 0)
      throw new AwgError(
        'unsupported',
        'no answer to the proc connector LISTEN: not in the initial PID namespace, or the kernel lacks CONFIG_PROC_EVENTS',
      );
    pfd.writeInt32LE(fd, 0);
    pfd.writeInt16LE(POLLIN, 4);
    pfd.writeInt16LE(0, 6);
    poll(pfd, left);
  }
}

/**
 * The daemon's connector: the inherited AWG_PROC_CONNECTOR_FD if set, else a socket of its
 * own (works only in the initial network namespace; otherwise AwgError 'unsupported').
 * Deliberately no automatic setns into /proc/1/ns/net: a daemon under test in a private
 * namespace would then move the host's processes into its cgroups.
 */
export function openPlacementConnector(env: NodeJS.ProcessEnv = process.env): ProcConnector {
  const fd = connectorFdFromEnv(env);
  return fd !== undefined ? ProcConnector.open({ fd }) : ProcConnector.open();
}
