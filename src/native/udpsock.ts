/**
 * A UDP socket of our own (not node:dgram) for the data plane: non-blocking, dual-stack when
 * the host has IPv6, a large receive buffer, the destination address of every datagram reported
 * (IP_PKTINFO / IPV6_RECVPKTINFO), and batched receive with one `recvmmsg(2)` per up to
 * BATCH datagrams. Readiness comes from `koffi.node.poll` (poll.ts); sends go through
 * udpbatch.ts's sendmmsg on the same fd.
 *
 * recvmmsg memory is one native block laid out once (x86-64 / aarch64 LP64 glibc, the
 * msghdr/mmsghdr/iovec layouts in mmsg-block.ts): mmsghdr[BATCH], iovec[BATCH], sockaddr
 * slots (32 B), control slots (64 B: one in_pktinfo or in6_pktinfo cmsg, ≤ 40 B, and with
 * UDP GRO one UDP_GRO cmsg, 24 B), then SLOT bytes of data per datagram. recvmmsg rewrites
 * msg_namelen and msg_controllen: both are reset before every call. The datagrams handed over
 * are views of the block, valid until the next call.
 *
 * UDP GRO (`enableGro`; the data plane's bind asks for it unless AWG_UDP_GRO=0): the kernel may hand over a run of datagrams of one flow as
 * one buffer with a UDP_GRO cmsg naming the segment size (every segment that size, the last
 * one possibly shorter); `receive` splits it and reports each segment as its own datagram.
 * A GSO sender looped back to a GRO socket (loopback, or veth) arrives this way without
 * being segmented at all.
 *
 *   struct in_pktinfo  { int ifindex @0; in_addr spec_dst @4; in_addr addr @8 }  (addr: the
 *                        packet's destination)          cmsg SOL_IP(0) / IP_PKTINFO(8)
 *   struct in6_pktinfo { in6_addr addr @0; int ifindex @16 }  cmsg SOL_IPV6(41) / IPV6_PKTINFO(50)
 */
import koffi from 'koffi';
import { AwgError } from '../errors.js';
import { releasePages } from './rawmem.js';
import {
  AF_INET,
  AF_INET6,
  E,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  SyscallError,
  bind as bindFd,
  close,
  getsockname,
  rawLibcFunc,
  setsockoptInt,
  socket,
} from './libc.js';
import { readSockaddr, writeSockaddr } from './sockaddr.js';

const SOL_IP = 0;
const IP_PKTINFO = 8;
const SOL_IPV6 = 41;
const IPV6_V6ONLY = 26;
const IPV6_RECVPKTINFO = 49;
const IPV6_PKTINFO = 50;
const SO_RCVBUFFORCE = 33;
const SO_RCVBUF = 8;
const EADDRINUSE = 98;
const MSG_TRUNC = 0x20;
const SOL_UDP = 17;
const UDP_GRO = 104;
const MSG_DONTWAIT = 0x40;

/** Datagrams per recvmmsg call. */
export const RECV_BATCH = 64;
/**
 * Messages per recvmmsg call with UDP GRO: each can be a 64 KiB run of one flow's datagrams,
 * so 16 of them (up to ~700 datagrams) fill the 4 MiB of 64 slots no more than a quarter: the
 * slots left out are never touched (the process's RSS under load is lower, the throughput the
 * same). Measurements: bench/RESULTS.md, section "Step 14", "Memory".
 */
export const RECV_BATCH_GRO = 16;
/** Receive slot: the largest UDP payload (jumbo underlays; AWG junk). Pages are touched only as used. */
const SLOT = 65536;
const MMSG = 64;
const IOV = 16;
const NAME = 32;
const CTRL = 64;
/** Receive buffer asked for (wireguard-go asks 7 MiB); FORCE works with CAP_NET_ADMIN. */
const SOCK_BUF = 4 << 20;

type RecvMmsg = (fd: number, vec: bigint, vlen: number, flags: number, timeout: null) => number;
const recvmmsg = () =>
  rawLibcFunc<RecvMmsg>(
    'int recvmmsg(int fd, void *msgvec, unsigned int vlen, int flags, void *timeout)',
  );

/** Whether this platform can run the native UDP socket (Linux x86-64/arm64 with recvmmsg). */
export function nativeUdpAvailable(): boolean {
  return recvmmsg() !== null;
}

export interface OpenedUdpSocket {
  fd: number;
  family: 4 | 6;
  port: number;
}

function sockaddr(family: 4 | 6, host: string | undefined, port: number): Buffer {
  const b = Buffer.alloc(family === 6 ? 28 : 16);
  // `family` is the host's own (openUdpSocket), so no v4-mapped form is ever written here
  if (host) {
    if (!writeSockaddr(b, 0, family, host, port))
      throw new AwgError('invalid-config', `not a numeric IP address: ${host}`);
  } else {
    b.writeUInt16LE(family === 6 ? AF_INET6 : AF_INET, 0);
    b.writeUInt16BE(port, 2);
  }
  return b;
}

/**
 * Opens and binds a UDP socket on `port` (0: any): on `host`, else dual-stack `::` when the
 * host has IPv6, else `0.0.0.0`. Throws AwgError('driver') (EADDRINUSE named) on failure.
 */
export function openUdpSocket(host: string | undefined, port: number): OpenedUdpSocket {
  const families: Array<4 | 6> = host ? [host.includes(':') ? 6 : 4] : [6, 4];
  let lastErrno = 0;
  for (const family of families) {
    const fd = socket(
      family === 6 ? AF_INET6 : AF_INET,
      SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
      0,
    );
    if (fd < 0) {
      lastErrno = -fd;
      continue; // no IPv6 in this kernel/namespace: try IPv4
    }
    if (family === 6 && !host) setsockoptInt(fd, SOL_IPV6, IPV6_V6ONLY, 0);
    const r = bindFd(fd, sockaddr(family, host, port));
    if (r < 0) {
      close(fd);
      lastErrno = -r;
      if (-r === EADDRINUSE) break;
      continue;
    }
    // where each datagram was addressed to (replies leave from there); v4 on a v6 socket
    // reports through IP_PKTINFO
    setsockoptInt(fd, SOL_IP, IP_PKTINFO, 1);
    if (family === 6) setsockoptInt(fd, SOL_IPV6, IPV6_RECVPKTINFO, 1);
    // a large receive buffer rides out bursts while the event loop is busy; the send buffer
    // stays the system default (a larger one made no measurable difference; the bind queues
    // for POLLOUT itself)
    if (setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, SOCK_BUF) < 0)
      setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, SOCK_BUF);
    const name = Buffer.alloc(28);
    const n = getsockname(fd, name);
    if (n < 0) {
      close(fd);
      lastErrno = -n;
      continue;
    }
    return { fd, family, port: readSockaddr(name, 0).port };
  }
  const code =
    lastErrno === EADDRINUSE ? 'EADDRINUSE' : new SyscallError('bind', lastErrno).message;
  throw new AwgError('driver', `cannot bind UDP port ${port}: ${code}`);
}

/** One received datagram's addressing, as raw bytes of the block (valid until the next call). */
export interface RecvMeta {
  /** sockaddr of the sender: family u16 @0, be16 port @2, v4 addr @4 or v6 addr @8 */
  readonly name: Uint8Array;
  /** the packet's destination address (4 or 16 bytes; empty when not reported) and ifindex */
  readonly dst: Uint8Array;
  readonly ifindex: number;
}

export class UdpReceiver {
  private readonly mem: bigint;
  private readonly memNum: number;
  private readonly view: Buffer;
  /** the block's memory as koffi views it (`view` is a Buffer over it) */
  private readonly blockBuffer: ArrayBuffer;
  private readonly nameOff = RECV_BATCH * (MMSG + IOV);
  private readonly ctrlOff = this.nameOff + RECV_BATCH * NAME;
  private readonly dataOff = this.ctrlOff + RECV_BATCH * CTRL;
  private closed = false;
  /** datagrams were received into the block since its pages were last released */
  private written = false;
  /** datagrams cut short (larger than a slot) and dropped */
  truncated = 0;
  /** UDP GRO: buffers that carried several datagrams, and the datagrams split from them */
  groReads = 0;
  /** messages asked for per recvmmsg: RECV_BATCH, or RECV_BATCH_GRO once GRO is on */
  batch = RECV_BATCH;
  groSegments = 0;

  private constructor(
    private readonly fd: number,
    private readonly call: RecvMmsg,
  ) {
    const size = this.dataOff + RECV_BATCH * SLOT;
    this.mem = koffi.alloc('uint8_t', size) as unknown as bigint;
    this.memNum = Number(this.mem);
    this.blockBuffer = koffi.view(this.mem as never, size) as ArrayBuffer;
    this.view = Buffer.from(this.blockBuffer);
    this.view.fill(0, 0, this.dataOff);
    for (let i = 0; i < RECV_BATCH; i++) {
      const h = i * MMSG;
      this.ptr(h, this.nameOff + i * NAME); // msg_name
      this.ptr(h + 16, RECV_BATCH * MMSG + i * IOV); // msg_iov
      this.view.writeUInt32LE(1, h + 24); // msg_iovlen
      this.ptr(h + 32, this.ctrlOff + i * CTRL); // msg_control
      const iov = RECV_BATCH * MMSG + i * IOV;
      this.ptr(iov, this.dataOff + i * SLOT);
      this.view.writeUInt32LE(SLOT, iov + 8);
    }
  }

  private ptr(at: number, off: number): void {
    this.view.writeUIntLE(this.memNum + off, at, 6);
  }

  static create(fd: number): UdpReceiver | null {
    const fn = recvmmsg();
    if (!fn || fd < 0) return null;
    return new UdpReceiver(fd, fn);
  }

  /**
   * One recvmmsg: calls `each(data, meta)` per datagram (data: a view of the block, valid
   * during the call only) and returns how many came, 0 when none was waiting, or -errno.
   */
  receive(each: (data: Uint8Array, meta: RecvMeta) => void): number {
    if (this.closed) return -E.EBADF;
    const v = this.view;
    // datagram views on the block's ArrayBuffer: Buffer#subarray reads `.buffer` per call
    const ab = this.blockBuffer;
    const base = v.byteOffset;
    const batch = this.batch;
    for (let i = 0; i < batch; i++) {
      const h = i * MMSG;
      v.writeUInt32LE(NAME, h + 8); // msg_namelen
      v.writeUInt32LE(CTRL, h + 40); // msg_controllen
    }
    const r = this.call(this.fd, this.mem, batch, MSG_DONTWAIT, null);
    if (r < 0) {
      const e = koffi.errno();
      return e === E.EAGAIN || e === E.EINTR ? 0 : -e;
    }
    if (r > 0) this.written = true;
    for (let i = 0; i < r; i++) {
      const h = i * MMSG;
      const len = v.readUInt32LE(h + 56);
      if (v.readInt32LE(h + 48) & MSG_TRUNC) {
        this.truncated++;
        continue;
      }
      const name = v.subarray(this.nameOff + i * NAME, this.nameOff + i * NAME + 28);
      let dst: Uint8Array = EMPTY;
      let ifindex = 0;
      let segment = 0;
      const clen = v.readUInt32LE(h + 40);
      // walk the cmsgs (we asked for pktinfo only; skip anything else)
      for (let c = 0; c + 16 <= clen;) {
        const at = this.ctrlOff + i * CTRL + c;
        const cl = Number(v.readBigUInt64LE(at));
        if (cl < 16 || c + cl > clen) break;
        const level = v.readInt32LE(at + 8);
        const type = v.readInt32LE(at + 12);
        if (level === SOL_IP && type === IP_PKTINFO && cl >= 28) {
          ifindex = v.readInt32LE(at + 16);
          dst = v.subarray(at + 24, at + 28);
        } else if (level === SOL_IPV6 && type === IPV6_PKTINFO && cl >= 36) {
          dst = v.subarray(at + 16, at + 32);
          ifindex = v.readInt32LE(at + 32);
        } else if (level === SOL_UDP && type === UDP_GRO && cl >= 20) {
          segment = v.readInt32LE(at + 16);
        }
        c += (cl + 7) & ~7;
      }
      const start = this.dataOff + i * SLOT;
      const meta = { name, dst, ifindex };
      if (segment > 0 && len > segment) {
        this.groReads++;
        for (let o = 0; o < len; o += segment) {
          this.groSegments++;
          each(new Uint8Array(ab, base + start + o, Math.min(segment, len - o)), meta);
        }
      } else each(new Uint8Array(ab, base + start, len), meta);
    }
    return r;
  }

  /**
   * Gives the datagram slots' pages back to the kernel (the idle release of
   * dataplane/buffers.ts): their contents are dead once `receive` returns. Bytes released; 0
   * when nothing was received since the last release.
   */
  releaseIdle(): number {
    if (this.closed || !this.written) return 0;
    this.written = false;
    return releasePages(this.view.subarray(this.dataOff));
  }

  /**
   * Asks the kernel for UDP GRO on this socket (Linux ≥ 5.0); false when refused. Segments
   * are split in `receive`.
   */
  enableGro(): boolean {
    const on = !this.closed && setsockoptInt(this.fd, SOL_UDP, UDP_GRO, 1) === 0;
    if (on) this.batch = RECV_BATCH_GRO;
    return on;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    koffi.free(this.mem as never);
  }
}

const EMPTY = new Uint8Array(0);
