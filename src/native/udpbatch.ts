/**
 * Batched UDP send on an existing socket fd: one `sendmmsg(2)` per burst instead of one
 * `sendmsg` per datagram through node:dgram (bench/RESULTS.md Step 3: the per-datagram
 * syscall was ~43 % of the engine's busy time).
 *
 * All kernel-facing memory (mmsghdr[], iovec[], cmsg[], one sockaddr, data) is one native
 * block from `koffi.alloc`, headers laid out once; a burst copies its datagrams back to back
 * and writes each message's iov (and, with UDP GSO, its UDP_SEGMENT cmsg: a run of equal-size
 * datagrams, the last may be shorter, becomes one message the kernel segments). koffi 3
 * pointers are BigInts. Socket options (SO_MARK) are per socket, so datagrams sent here carry
 * the same mark as node:dgram's.
 *
 * Oversized datagrams: UDP GSO needs every segment to fit the path MTU (the kernel answers
 * EMSGSIZE for a whole `UDP_SEGMENT` message otherwise), while a plain datagram larger than the
 * path MTU is fragmented by the kernel (IP_PMTUDISC_WANT, the socket default). AmneziaWG's S4
 * prefix makes a full-MTU packet exactly such a datagram (1420 + 32 + S4 > 1452). A refused GSO
 * message is therefore sent again a datagram at a time, and the batcher learns the largest
 * segment the path took (`segMax`), so later runs of larger datagrams go out unsegmented from
 * the start; the learnt limit is forgotten after SEG_MAX_TTL_MS, so a path whose MTU grew
 * gets GSO back (at the price of one refused message).
 *
 * Source address (`send(…, src)`): every message then carries an IP_PKTINFO (IPv4 and
 * v4-mapped destinations) or IPV6_PKTINFO cmsg naming the local address the peer reached us
 * at, so replies leave from it (wireguard-go's sticky sockets). When the kernel refuses that
 * address (it went away), the message is sent again without it and `sourceRefused` is set.
 *
 *   struct cmsghdr { size_t len @0; int level @8; int type @12; data @16 }  CMSG_SPACE(2) = 24
 *   struct in_pktinfo { int ifindex @0; in_addr spec_dst @4; in_addr addr @8 }  CMSG_SPACE = 32
 *   struct in6_pktinfo { in6_addr addr @0; int ifindex @16 }                 CMSG_SPACE = 40
 *   per message a 64-byte control area: [pktinfo ending at 40][UDP_SEGMENT at 40]
 *
 * x86-64 / aarch64 LP64 layouts (glibc):
 *   struct msghdr  { void *name @0; u32 namelen @8; iovec *iov @16; size_t iovlen @24;
 *                    void *control @32; size_t controllen @40; int flags @48 }  56 bytes
 *   struct mmsghdr { msghdr hdr @0; u32 msg_len @56 }                           64 bytes
 *   struct iovec   { void *base @0; size_t len @8 }                             16 bytes
 *   sockaddr_in  { u16 family; be16 port; u8 addr[4]; u8 zero[8] }              16 bytes
 *   sockaddr_in6 { u16 family; be16 port; u32 flowinfo; u8 addr[16]; u32 scope } 28 bytes
 */
import { Worker } from 'node:worker_threads';
import koffi from 'koffi';
import { E, rawLibcFunc } from './libc.js';

export const MMSG = 64;
const IOV = 16;
const SOCKADDR = 28;
const AF_INET = 2;
const AF_INET6 = 10;
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
const CMSG_LEN = 18; // CMSG_LEN(sizeof(u16))
const CMSG_SPACE = 24; // CMSG_SPACE(sizeof(u16))
/** control bytes per message: a pktinfo cmsg (≤ 40) then the UDP_SEGMENT one at SEG_AT */
const CTRL = 64;
const SEG_AT = 40;
const SOL_IP = 0;
const IP_PKTINFO = 8;
const SOL_IPV6 = 41;
const IPV6_PKTINFO = 50;
/** UDP GSO limits: 64 segments, and the whole run (+ headers) must fit an IP datagram. */
const GSO_MAX_SEGMENTS = 64;
const GSO_MAX_BYTES = 65000;
/** How long a learnt limit on GSO segments (a refused UDP_SEGMENT message) holds. */
export const SEG_MAX_TTL_MS = 60_000;
/** No limit on GSO segments known. */
const SEG_ANY = 0xffff;
/** Header bytes of a block: mmsghdr[], iovec[] and the control areas (what sendApart reads). */

/** Datagrams per sendmmsg call. */
export const BATCH_MAX = 64;
/** Header bytes of a block: mmsghdr[], iovec[] and the control areas (what `sendApart` reads). */
export const HEAD_BYTES = BATCH_MAX * (MMSG + IOV + CTRL);
/** Data bytes per datagram slot: a burst holds BATCH_MAX × SLOT_SIZE bytes back to back. */
export const SLOT_SIZE = 2048;
/** Largest datagram taken (a UDP payload); larger ones go the caller's fallback way. */
export const MAX_DATAGRAM = 65507;

type SendMmsg = ((fd: number, vec: bigint, vlen: number, flags: number) => number) & {
  /** koffi: the same call on a thread of libuv's pool; the callback runs on the caller's loop */
  async?: (
    fd: number,
    vec: bigint,
    vlen: number,
    flags: number,
    cb: (err: unknown, r: number) => void,
  ) => void;
};
type Poll = ((fds: Buffer, n: number, timeout: number) => number) & {
  async?: (fds: Buffer, n: number, timeout: number, cb: (err: unknown, r: number) => void) => void;
};
const sendmmsg = () =>
  rawLibcFunc<SendMmsg>('int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)');
export const POLLOUT = 4;
/** Longest a burst waits for room in the socket buffer (the sender thread, the pool sender). */
export const WAIT_WRITABLE_MS = 1000;

/**
 * Sends message `m` of a block, a UDP_SEGMENT run the kernel refused (EMSGSIZE: a segment is
 * larger than the path MTU), one datagram at a time without the UDP_SEGMENT cmsg, so the
 * kernel fragments each instead. `v` views at least the block's HEAD_BYTES, `mem` is the
 * block's address. The message's header is restored afterwards. Returns the segment size and
 * the datagrams the kernel did not take (full socket buffer, other errors: dropped, as UDP).
 */
export function sendApart(
  call: (fd: number, vec: bigint, vlen: number, flags: number) => number,
  fd: number,
  v: Buffer,
  mem: number,
  m: number,
): { seg: number; dropped: number } {
  const h = m * MMSG;
  const iov = v.readUIntLE(h + 16, 6) - mem;
  const base = v.readUIntLE(iov, 6);
  const total = v.readUInt32LE(iov + 8);
  const clen = v.readUInt32LE(h + 40);
  const ctl = v.readUIntLE(h + 32, 6) - mem;
  const seg = clen >= CMSG_SPACE ? v.readUInt16LE(ctl + clen - CMSG_SPACE + 16) : total;
  if (seg <= 0) return { seg: total, dropped: 0 };
  v.writeUInt32LE(clen - CMSG_SPACE, h + 40); // keeps a pktinfo cmsg ahead of it
  let dropped = 0;
  for (let off = 0; off < total; off += seg) {
    v.writeUIntLE(base + off, iov, 6);
    v.writeUInt32LE(Math.min(seg, total - off), iov + 8);
    let r = call(fd, BigInt(mem + h), 1, 0);
    while (r < 0 && koffi.errno() === E.EINTR) r = call(fd, BigInt(mem + h), 1, 0);
    if (r !== 1) dropped++;
  }
  v.writeUIntLE(base, iov, 6);
  v.writeUInt32LE(total, iov + 8);
  v.writeUInt32LE(clen, h + 40);
  return { seg, dropped };
}

/** Drops the pktinfo cmsg (`sp` bytes ahead of the UDP_SEGMENT one) from messages m.. of a block's headers. */
export function stripSource(h: Buffer, m: number, msgs: number, sp: number): void {
  for (; m < msgs; m++) {
    const o = m * MMSG;
    const len = h.readUInt32LE(o + 40);
    if (len <= sp) {
      h.writeUIntLE(0, o + 32, 6);
      h.writeUInt32LE(0, o + 40);
    } else {
      h.writeUIntLE(h.readUIntLE(o + 32, 6) + sp, o + 32, 6);
      h.writeUInt32LE(len - sp, o + 40);
    }
  }
}

/** Parses a numeric IPv4 (dotted quad) into 4 bytes; null when malformed. */
export function parseIPv4(s: string, out: Uint8Array, off: number): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return false;
    const n = Number(p);
    if (n > 255) return false;
    out[off + i] = n;
  }
  return true;
}

/** Parses a numeric IPv6 (RFC 4291 text, optional dotted tail, no zone) into 16 bytes. */
export function parseIPv6(s: string, out: Uint8Array, off: number): boolean {
  if (s.includes('%')) s = s.slice(0, s.indexOf('%'));
  const words: number[] = [];
  let tail: number[] = [];
  const dbl = s.indexOf('::');
  if (dbl !== s.lastIndexOf('::')) return false;
  const parseGroups = (t: string, dst: number[], allowV4: boolean): boolean => {
    if (t === '') return true;
    const gs = t.split(':');
    for (let i = 0; i < gs.length; i++) {
      const g = gs[i]!;
      if (allowV4 && i === gs.length - 1 && g.includes('.')) {
        const v4 = new Uint8Array(4);
        if (!parseIPv4(g, v4, 0)) return false;
        dst.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      dst.push(parseInt(g, 16));
    }
    return true;
  };
  if (dbl >= 0) {
    if (!parseGroups(s.slice(0, dbl), words, false)) return false;
    if (!parseGroups(s.slice(dbl + 2), tail, true)) return false;
    if (words.length + tail.length > 7) return false;
    while (words.length + tail.length < 8) words.push(0);
  } else {
    if (!parseGroups(s, words, true)) return false;
    if (words.length !== 8) return false;
    tail = [];
  }
  const all = words.concat(tail);
  for (let i = 0; i < 8; i++) {
    out[off + 2 * i] = all[i]! >> 8;
    out[off + 2 * i + 1] = all[i]! & 0xff;
  }
  return true;
}

/** One native block: mmsghdr[BATCH_MAX], iovec[], control areas, one sockaddr, data. */
class Block {
  readonly mem: bigint;
  private readonly memNum: number;
  readonly view: Buffer;
  readonly dataOff: number;
  readonly addrOff: number;
  readonly ctrlOff: number;
  private lastAddr = '';
  private lastPort = -1;
  /** the source the control areas hold ('' none), and its cmsg length */
  private lastSrc = '';
  srcSpace = 0;

  constructor(family: 4 | 6) {
    const hdrs = BATCH_MAX * MMSG;
    const iovs = BATCH_MAX * IOV;
    this.ctrlOff = hdrs + iovs;
    this.addrOff = this.ctrlOff + BATCH_MAX * CTRL;
    this.dataOff = this.addrOff + 64; // keep the data 64-byte aligned
    const size = this.dataOff + Math.max(BATCH_MAX * SLOT_SIZE, MAX_DATAGRAM);
    this.mem = koffi.alloc('uint8_t', size) as unknown as bigint;
    this.memNum = Number(this.mem);
    this.view = Buffer.from(koffi.view(this.mem as never, size) as ArrayBuffer);
    this.view.fill(0);
    const nameLen = family === 6 ? 28 : 16;
    for (let i = 0; i < BATCH_MAX; i++) {
      const h = i * MMSG;
      this.ptr(h, this.addrOff); // msg_name
      this.view.writeUInt32LE(nameLen, h + 8); // msg_namelen
      this.ptr(h + 16, hdrs + i * IOV); // msg_iov
      this.view.writeUInt32LE(1, h + 24); // msg_iovlen
      // struct cmsghdr { size_t len = CMSG_LEN(2); int level = SOL_UDP; int type = UDP_SEGMENT }
      const c = this.ctrlOff + i * CTRL + SEG_AT;
      this.view.writeUInt32LE(CMSG_LEN, c);
      this.view.writeInt32LE(SOL_UDP, c + 8);
      this.view.writeInt32LE(UDP_SEGMENT, c + 12);
    }
  }

  /** The block's address as a number. */
  get address(): number {
    return this.memNum;
  }

  /** Writes the address of byte `off` of the block as a pointer at `at` (user space < 2^48). */
  ptr(at: number, off: number): void {
    this.view.writeUIntLE(this.memNum + off, at, 6);
  }

  setAddress(family: 4 | 6, address: string, port: number): boolean {
    if (address === this.lastAddr && port === this.lastPort) return true;
    const v = this.view;
    const o = this.addrOff;
    v.fill(0, o, o + SOCKADDR);
    const v6 = address.includes(':');
    if (family === 4) {
      if (v6 || !parseIPv4(address, v, o + 4)) return this.invalidate();
      v.writeUInt16LE(AF_INET, o);
    } else {
      if (v6) {
        if (!parseIPv6(address, v, o + 8)) return this.invalidate();
      } else {
        if (!parseIPv4(address, v, o + 20)) return this.invalidate();
        v[o + 18] = 0xff;
        v[o + 19] = 0xff;
      }
      v.writeUInt16LE(AF_INET6, o);
    }
    v.writeUInt16BE(port, o + 2);
    this.lastAddr = address;
    this.lastPort = port;
    return true;
  }

  private invalidate(): false {
    this.lastAddr = '';
    this.lastPort = -1;
    return false;
  }

  /**
   * Writes the pktinfo cmsg for local address `src` (ifindex for link-local IPv6) into every
   * control area, or clears it ('' or unparsable). `v6dest`: the destination is IPv6 proper
   * (not v4 / v4-mapped), which decides the cmsg kind.
   */
  setSource(src: string, ifindex: number, v6dest: boolean): void {
    const key = src === '' ? '' : `${src}%${ifindex}%${v6dest ? 6 : 4}`;
    if (key === this.lastSrc) return;
    this.lastSrc = key;
    this.srcSpace = 0;
    if (src === '') return;
    const v = this.view;
    const tmp = new Uint8Array(16);
    const srcV6 = src.includes(':');
    if (v6dest !== srcV6 || (srcV6 ? !parseIPv6(src, tmp, 0) : !parseIPv4(src, tmp, 0))) return;
    const space = v6dest ? 40 : 32;
    for (let i = 0; i < BATCH_MAX; i++) {
      const c = this.ctrlOff + i * CTRL + SEG_AT - space;
      v.fill(0, c, c + space);
      if (v6dest) {
        v.writeUInt32LE(36, c); // CMSG_LEN(20)
        v.writeInt32LE(SOL_IPV6, c + 8);
        v.writeInt32LE(IPV6_PKTINFO, c + 12);
        v.set(tmp, c + 16);
        v.writeInt32LE(ifindex, c + 32);
      } else {
        v.writeUInt32LE(28, c); // CMSG_LEN(12)
        v.writeInt32LE(SOL_IP, c + 8);
        v.writeInt32LE(IP_PKTINFO, c + 12);
        v.set(tmp.subarray(0, 4), c + 20); // ipi_spec_dst: the source to use
      }
    }
    this.srcSpace = space;
  }

  /**
   * Copies up to BATCH_MAX of `bufs[i..]` back to back and groups them into messages (with
   * `gso`, runs of equal-size datagrams of at most `segMax` bytes into one UDP_SEGMENT
   * message; a larger datagram goes alone, for the kernel to fragment). `end[m]`: index,
   * relative to i, after message m's last datagram. Returns the number of messages (0: the
   * first datagram is too large).
   */
  pack(
    bufs: readonly Uint8Array[],
    i: number,
    gso: boolean,
    end: Int32Array,
    segMax = SEG_ANY,
  ): number {
    const v = this.view;
    const cap = Math.max(BATCH_MAX * SLOT_SIZE, MAX_DATAGRAM);
    const hdrs = BATCH_MAX * MMSG;
    let n = 0;
    let off = 0;
    let msgs = 0;
    let seg = 0; // segment size of the open GSO run (0: no run open)
    let runBytes = 0;
    while (n < BATCH_MAX && i + n < bufs.length) {
      const b = bufs[i + n]!;
      const len = b.length;
      if (len > MAX_DATAGRAM || off + len > cap) break;
      v.set(b, this.dataOff + off);
      const inRun = msgs > 0 ? end[msgs - 1]! - (msgs > 1 ? end[msgs - 2]! : 0) : 0;
      // joins the open run when equal-size, or as the shorter last segment of a run of ≥ 2
      // (so two random-size datagrams, e.g. AWG junk, never merge), within the 64 KiB cap
      if (
        gso &&
        seg > 0 &&
        len > 0 &&
        (len === seg || (len < seg && inRun >= 2)) &&
        runBytes + len <= GSO_MAX_BYTES &&
        inRun < GSO_MAX_SEGMENTS
      ) {
        runBytes += len;
        end[msgs - 1] = n + 1;
        v.writeUInt32LE(runBytes, hdrs + (msgs - 1) * IOV + 8);
        seg = len === seg ? seg : 0; // a short segment closes the run
      } else {
        const h = msgs * MMSG;
        this.ptr(hdrs + msgs * IOV, this.dataOff + off); // iov_base
        v.writeUInt32LE(len, hdrs + msgs * IOV + 8); // iov_len
        // msg_control: the pktinfo cmsg when there is a source; UDP_SEGMENT once a second
        // segment joins (below)
        const sp = this.srcSpace;
        v.writeUInt32LE(sp, h + 40);
        if (sp) this.ptr(h + 32, this.ctrlOff + msgs * CTRL + SEG_AT - sp);
        else v.writeUIntLE(0, h + 32, 6);
        end[msgs] = n + 1;
        msgs++;
        seg = len <= segMax ? len : 0;
        runBytes = len;
      }
      off += len;
      n++;
    }
    if (gso) {
      const sp = this.srcSpace;
      for (let m = 0; m < msgs; m++) {
        const first = m > 0 ? end[m - 1]! : 0;
        if (end[m]! - first < 2) continue;
        const h = m * MMSG;
        const c = this.ctrlOff + m * CTRL + SEG_AT;
        v.writeUInt16LE(bufs[i + first]!.length, c + 16); // gso_size
        this.ptr(h + 32, c - sp); // msg_control
        v.writeUInt32LE(sp + CMSG_SPACE, h + 40); // msg_controllen
      }
    }
    return msgs;
  }

  free(): void {
    koffi.free(this.mem as never);
  }
}

/**
 * The sender thread's ring (SharedArrayBuffer of int32): a header, then per slot the burst's
 * message count, its pktinfo size, whether it used GSO, and `end[]` (as Block.pack).
 */
export const RING = {
  head: 0,
  tail: 1,
  close: 2,
  ready: 3,
  /** datagrams the thread dropped (kernel refusal, no room in the socket buffer for 1 s) */
  dropped: 4,
  /** set by the thread: a source address was refused (cleared by the batcher) */
  refused: 5,
  /** set by the thread: UDP GSO failed on this path */
  gsoFailed: 6,
  /** set by the thread: the smallest segment size the kernel refused with EMSGSIZE (0: none) */
  segRefused: 7,
  header: 8,
  slot: 4 + BATCH_MAX,
} as const;
/** Bursts the sender thread can have queued. */
export const RING_SLOTS = 8;
/**
 * Sends of fewer datagrams than this stay on the caller's thread while the pool sender has
 * nothing queued (as the crypto pool's runs of fewer than 8 messages do).
 */
export const POOL_MIN_DATAGRAMS = 8;
/** Longest the caller waits for a free slot before dropping the rest of a send. */
const RING_WAIT_MS = 20;

export class UdpBatcher {
  private readonly blocks: Block[];
  /** per message of the current burst: index (relative to the burst) after its last datagram */
  private readonly msgEnd = new Int32Array(BATCH_MAX);
  private closed = false;
  /** the sender thread, once it is running (threaded mode) */
  private thread: Worker | null = null;
  private ring: Int32Array | null = null;
  private head = 0;
  private threadState: 'off' | 'starting' | 'on' | 'failed' = 'off';
  /**
   * the pool sender (`startPoolSender`): bursts packed into the ring's blocks (head), bursts
   * done (tail), messages of the burst at tail already sent, whether a call is out, and each
   * burst's slot in the sender thread's ring layout (RING; not shared: no thread reads it)
   */
  private pool: {
    head: number;
    tail: number;
    sent: number;
    busy: boolean;
    slots: Int32Array;
    pfd: Buffer;
    poll: Poll;
    drained: (() => void) | null;
  } | null = null;
  private threadExit: Promise<void> | null = null;
  /** a send with a source address was refused and repeated without it */
  sourceRefused = false;
  /** the last `send` stopped early because the socket buffer (pool sender: the ring) was full */
  full = false;
  /** the last `send` stopped early because the pool sender's ring was full (wait for onRoom, not POLLOUT) */
  ringFull = false;
  /** pool sender: a block of the ring is free again (the caller sends what it kept) */
  onRoom: (() => void) | null = null;
  /**
   * pool sender: whether new bursts go to the pool; while false they stay on the caller's
   * thread once the ring is empty (what is queued leaves first, in order)
   */
  poolActive = true;
  /** datagrams dropped because the sender thread's ring stayed full */
  ringDropped = 0;
  /** the largest GSO segment the path takes (learnt from EMSGSIZE; SEG_ANY: no limit known) */
  private segLimit = SEG_ANY;
  private segLimitAt = 0;
  /** UDP_SEGMENT messages the kernel refused as too large and that went out a datagram at a time */
  segmentsApart = 0;

  /**
   * @param fd the socket's fd (owned by the caller; not closed while the thread runs)
   * @param family 6 for an AF_INET6 socket (v4 peers as ::ffff:a.b.c.d), 4 for AF_INET
   * @param gso coalesce runs of equal-size datagrams into one message with UDP_SEGMENT
   *   (one pass through the stack per run); turned off for good on the first EIO/EINVAL
   */
  private constructor(
    private readonly fd: number,
    private readonly family: 4 | 6,
    private readonly call: SendMmsg,
    public gso: boolean,
  ) {
    this.blocks = [new Block(family)];
  }

  /** A batcher for `fd`, or null where sendmmsg is unavailable (other OS, koffi failure). */
  static create(fd: number, family: 4 | 6, gso = false): UdpBatcher | null {
    const fn = sendmmsg();
    if (!fn || fd < 0) return null;
    try {
      return new UdpBatcher(fd, family, fn, gso);
    } catch {
      return null;
    }
  }

  /**
   * The largest datagram that may join a GSO run now: what the path took when a run was last
   * refused, forgotten SEG_MAX_TTL_MS later.
   */
  get segMax(): number {
    if (this.segLimit !== SEG_ANY && performance.now() - this.segLimitAt > SEG_MAX_TTL_MS)
      this.segLimit = SEG_ANY;
    return this.segLimit;
  }

  /** A UDP_SEGMENT run of `seg`-byte datagrams was refused with EMSGSIZE. */
  private segRefused(seg: number): void {
    this.segLimit = Math.min(this.segLimit, seg - 1);
    this.segLimitAt = performance.now();
    this.segmentsApart++;
  }

  /** Whether bursts go to the sender thread. */
  get threaded(): boolean {
    return this.threadState === 'on';
  }

  /** Whether the sender thread has started and the next burst goes to it (tests). */
  get threadReady(): boolean {
    return (
      this.threadState === 'on' ||
      (this.threadState === 'starting' && !!this.ring && Atomics.load(this.ring, RING.ready) === 1)
    );
  }

  /** datagrams the sender thread dropped (refused by the kernel, or no room for 1 s) */
  get threadDropped(): number {
    return this.ring ? Atomics.load(this.ring, RING.dropped) : 0;
  }

  /**
   * Starts the sender thread (udpsend-worker.ts): from when it is ready, `send` packs each
   * burst into a free slot of a ring of native blocks and returns; the thread runs the
   * sendmmsg calls (and waits for room in the socket buffer itself), in order. Until then,
   * and when it cannot start, sends stay on the caller's thread.
   */
  startThread(): void {
    if (this.threadState !== 'off' || this.closed) return;
    this.threadState = 'starting';
    try {
      for (let k = this.blocks.length; k < RING_SLOTS; k++)
        this.blocks.push(new Block(this.family));
      const ring = new Int32Array(
        new SharedArrayBuffer(4 * (RING.header + RING_SLOTS * RING.slot)),
      );
      const workerData = { ring, fd: this.fd, blocks: this.blocks.map((b) => b.mem) };
      const w = import.meta.url.endsWith('.ts')
        ? // the sources (tests): through tsx, which a worker's entry does not get from --import
          new Worker(
            `import('tsx/esm/api').then((t) => t.tsImport(${JSON.stringify(new URL('./udpsend-worker.ts', import.meta.url).href)}, ${JSON.stringify(import.meta.url)}))`,
            { eval: true, workerData, stdout: false, stderr: false },
          )
        : new Worker(new URL('./udpsend-worker.js', import.meta.url), {
            workerData,
            stdout: false,
            stderr: false,
          });
      w.unref();
      this.ring = ring;
      this.thread = w;
      this.threadExit = new Promise((resolve) => w.once('exit', () => resolve()));
      w.once('error', () => this.threadFailed());
      w.once('exit', () => this.threadFailed());
    } catch {
      this.threadFailed();
    }
  }

  /**
   * Starts the pool sender: from now on `send` packs each burst into a free block of the ring
   * and the sendmmsg calls run on a thread of libuv's pool (koffi's async calls), one burst at
   * a time and in order, so the kernel's transmit work (for a veth: the receiving namespace's
   * stack too) runs beside the engine's thread. Unlike the sender thread it needs no isolate:
   * no heap, no second copy of the code. A burst the kernel does not take whole is finished on
   * the caller's thread, which sees the errno (refused source, GSO failure) and handles it as
   * `send` does; a full socket buffer is waited for (POLLOUT, up to 1 s) on the pool too.
   * Returns false (and nothing changes) where koffi has no async calls.
   */
  startPoolSender(): boolean {
    if (this.threadState !== 'off' || this.closed) return false;
    const poll = rawLibcFunc<Poll>('int poll(void *fds, unsigned long nfds, int timeout)');
    if (typeof this.call.async !== 'function' || !poll || typeof poll.async !== 'function')
      return false;
    for (let k = this.blocks.length; k < RING_SLOTS; k++) this.blocks.push(new Block(this.family));
    const pfd = Buffer.alloc(8);
    pfd.writeInt32LE(this.fd, 0);
    pfd.writeInt16LE(POLLOUT, 4);
    this.pool = {
      head: 0,
      tail: 0,
      sent: 0,
      busy: false,
      slots: new Int32Array(RING.header + RING_SLOTS * RING.slot),
      pfd,
      poll,
      drained: null,
    };
    this.threadState = 'on';
    return true;
  }

  /** Whether bursts go to libuv's pool (startPoolSender). */
  get pooled(): boolean {
    return this.pool !== null;
  }

  /** Packs each burst into the ring's next free block; the pool sends them in order. */
  private sendPooled(
    bufs: readonly Uint8Array[],
    address: string,
    port: number,
    start: number,
    src: string,
    srcIfindex: number,
  ): number {
    const u = this.pool!;
    let i = start;
    while (i < bufs.length) {
      // every block queued: the rest is the caller's to keep (`full`) until `onRoom`
      if (u.head - u.tail >= RING_SLOTS) {
        this.full = true;
        this.ringFull = true;
        return i;
      }
      const n = this.packSlot(
        u.slots,
        u.head % RING_SLOTS,
        bufs,
        i,
        address,
        port,
        src,
        srcIfindex,
      );
      if (n === 0) return i;
      i += n;
      u.head++;
      if (!u.busy) this.poolNext();
    }
    return i;
  }

  /** Hands the rest of the burst at the ring's tail to the pool. */
  private poolNext(): void {
    const u = this.pool!;
    const k = u.tail % RING_SLOTS;
    u.busy = true;
    const msgs = u.slots[RING.header + k * RING.slot]!;
    this.call.async!(
      this.fd,
      this.blocks[k]!.mem + BigInt(u.sent * MMSG),
      msgs - u.sent,
      0,
      this.poolSent,
    );
  }

  private readonly poolSent = (err: unknown, r: number): void => {
    const u = this.pool!;
    u.busy = false;
    const k = u.tail % RING_SLOTS;
    if (!err && r > 0) u.sent += r;
    else if (this.poolFinish(k) === 'wait') {
      // no room in the socket buffer: wait for it on the pool, then go on with this burst
      u.busy = true;
      u.pfd.writeInt16LE(0, 6);
      u.poll.async!(u.pfd, 1, WAIT_WRITABLE_MS, (e, ready) => {
        u.busy = false;
        if (e || ready <= 0) this.poolDrop(k);
        this.poolAdvance();
      });
      return;
    }
    this.poolAdvance();
  };

  private poolAdvance(): void {
    const u = this.pool!;
    const k = u.tail % RING_SLOTS;
    let freed = false;
    if (u.sent >= u.slots[RING.header + k * RING.slot]!) {
      u.tail++;
      u.sent = 0;
      freed = true;
    }
    if (u.head !== u.tail) this.poolNext();
    else if (u.drained) u.drained();
    if (freed && !this.closed) this.onRoom?.();
  }

  /** Drops what is left of burst k (counted). */
  private poolDrop(k: number): void {
    const u = this.pool!;
    const s = RING.header + k * RING.slot;
    const msgs = u.slots[s]!;
    const end = u.slots.subarray(s + 4, s + 4 + BATCH_MAX);
    this.ringDropped += end[msgs - 1]! - (u.sent > 0 ? end[u.sent - 1]! : 0);
    u.sent = msgs;
  }

  /**
   * The pool's call sent nothing: the rest of burst k goes on here, where errno is ours to
   * read (refused source: stripped and reported; GSO failure: that message dropped, GSO off;
   * other errors drop the message, as `send` does). 'wait': the socket buffer is full.
   */
  private poolFinish(k: number): 'done' | 'wait' {
    const u = this.pool!;
    const b = this.blocks[k]!;
    const s = RING.header + k * RING.slot;
    const msgs = u.slots[s]!;
    const end = u.slots.subarray(s + 4, s + 4 + BATCH_MAX);
    const count = (m: number) => end[m]! - (m > 0 ? end[m - 1]! : 0);
    while (u.sent < msgs) {
      const m = u.sent;
      const r = this.call(this.fd, b.mem + BigInt(m * MMSG), msgs - m, 0);
      if (r > 0) {
        u.sent += r;
        continue;
      }
      const e = koffi.errno();
      if (e === E.EINTR) continue;
      if (r === 0 || e === E.EAGAIN) return 'wait';
      const sp = u.slots[s + 1]!;
      if (sp && (e === E.EINVAL || e === E.EADDRNOTAVAIL || e === E.ENETUNREACH)) {
        stripSource(b.view, m, msgs, sp);
        u.slots[s + 1] = 0;
        b.setSource('', 0, false); // the block's control areas no longer match what it cached
        this.sourceRefused = true;
        continue;
      }
      if (u.slots[s + 2] === 1 && count(m) > 1 && e === E.EMSGSIZE) {
        // a segment larger than the path MTU: the run's datagrams go alone, fragmented
        const r = sendApart(this.call, this.fd, b.view, b.address, m);
        this.segRefused(r.seg);
        this.ringDropped += r.dropped;
        u.sent++;
        continue;
      }
      if (u.slots[s + 2] === 1 && (e === E.EIO || e === E.EINVAL) && count(m) > 1) this.gso = false;
      this.ringDropped += count(m);
      u.sent++;
    }
    return 'done';
  }

  private threadFailed(): void {
    if (this.closed) return;
    // bursts still queued are lost (UDP); sends go on on this thread
    this.threadState = 'failed';
    this.thread = null;
  }

  /**
   * Sends `bufs[start..]` to address:port in sendmmsg bursts. A datagram the kernel rejects
   * (EPERM, ENETUNREACH, …) is dropped, like dgram's swallowed send errors. Returns the index
   * of the first datagram NOT handled (bufs.length when all were): the caller sends the rest
   * its own way (full socket buffer, an oversized datagram, an unparsable address).
   * Never throws.
   */
  send(
    bufs: readonly Uint8Array[],
    address: string,
    port: number,
    start = 0,
    src = '',
    srcIfindex = 0,
  ): number {
    this.full = false;
    if (this.closed) return start;
    if (this.threadState === 'starting' && this.ring && Atomics.load(this.ring, RING.ready) === 1)
      this.threadState = 'on';
    this.ringFull = false;
    const u = this.pool;
    // a short send with nothing queued stays here: a handshake, a ping or an ACK does not wait
    // for a pool thread to get a CPU (the handshake boost raises only the engine's thread)
    if (
      u &&
      (u.busy ||
        u.head !== u.tail ||
        (this.poolActive && bufs.length - start >= POOL_MIN_DATAGRAMS))
    )
      return this.sendPooled(bufs, address, port, start, src, srcIfindex);
    if (this.threadState === 'on' && !u)
      return this.sendThreaded(bufs, address, port, start, src, srcIfindex);
    const b = this.blocks[0]!;
    if (!b.setAddress(this.family, address, port)) return start;
    b.setSource(src, srcIfindex, address.includes(':'));
    const end = this.msgEnd;
    let i = start;
    while (i < bufs.length) {
      const msgs = b.pack(bufs, i, this.gso, end, this.segMax);
      if (msgs === 0) return i; // oversized datagram: caller's way
      const r = this.call(this.fd, b.mem, msgs, 0);
      if (r > 0) {
        i += end[r - 1]!; // a short count: the next call reports the next message's error
        continue;
      }
      const e = koffi.errno();
      // full socket buffer: the caller's way (dgram queues until writable, keeps order)
      if (r === 0 || e === E.EAGAIN || e === E.EINTR) {
        this.full = true;
        return i;
      }
      if (b.srcSpace && (e === E.EINVAL || e === E.EADDRNOTAVAIL || e === E.ENETUNREACH)) {
        // the source address is no longer ours (or not routable from): send without it
        this.sourceRefused = true;
        b.setSource('', 0, false);
        continue;
      }
      if (this.gso && e === E.EMSGSIZE && end[0]! > 1) {
        // a segment larger than the path MTU (AmneziaWG's S4 prefix on a full-MTU packet):
        // pack again with the limit learnt, the run's datagrams go alone and are fragmented
        this.segRefused(bufs[i]!.length);
        continue;
      }
      if (this.gso && (e === E.EIO || e === E.EINVAL) && end[0]! > 1) {
        this.gso = false; // no UDP GSO on this path: plain messages from now on
        continue;
      }
      i += end[0]!; // this message failed (EPERM from a firewall, ENETUNREACH, …): dropped, as dgram does
    }
    return i;
  }

  /**
   * Packs a burst of `bufs[i..]` into block k and describes it in slot k of `slots` (RING
   * layout: message count, pktinfo size, GSO, `end[]`). Returns the datagrams it took; 0 when
   * the address does not parse or the first datagram is too large (the caller's way).
   */
  private packSlot(
    slots: Int32Array,
    k: number,
    bufs: readonly Uint8Array[],
    i: number,
    address: string,
    port: number,
    src: string,
    srcIfindex: number,
  ): number {
    const b = this.blocks[k]!;
    if (!b.setAddress(this.family, address, port)) return 0;
    b.setSource(src, srcIfindex, address.includes(':'));
    const s = RING.header + k * RING.slot;
    const end = slots.subarray(s + 4, s + 4 + BATCH_MAX);
    const msgs = b.pack(bufs, i, this.gso, end, this.segMax);
    if (msgs === 0) return 0;
    slots[s] = msgs;
    slots[s + 1] = b.srcSpace;
    slots[s + 2] = this.gso ? 1 : 0;
    return end[msgs - 1]!;
  }

  /** Packs each burst into the next free slot of the ring and hands it to the thread. */
  private sendThreaded(
    bufs: readonly Uint8Array[],
    address: string,
    port: number,
    start: number,
    src: string,
    srcIfindex: number,
  ): number {
    const ring = this.ring!;
    // what the thread found since the last call
    if (Atomics.load(ring, RING.refused)) {
      Atomics.store(ring, RING.refused, 0);
      this.sourceRefused = true;
    }
    if (this.gso && Atomics.load(ring, RING.gsoFailed)) this.gso = false;
    const refused = Atomics.exchange(ring, RING.segRefused, 0);
    if (refused > 0) this.segRefused(refused);
    let i = start;
    while (i < bufs.length) {
      // a free slot: wait a little for the thread, then drop the rest (a full queue, as UDP does)
      let tail = Atomics.load(ring, RING.tail);
      if (this.head - tail >= RING_SLOTS) {
        const until = Date.now() + RING_WAIT_MS;
        while (this.head - tail >= RING_SLOTS && Date.now() < until) {
          Atomics.wait(ring, RING.tail, tail, RING_WAIT_MS);
          tail = Atomics.load(ring, RING.tail);
        }
        if (this.head - tail >= RING_SLOTS) {
          this.ringDropped += bufs.length - i;
          return bufs.length;
        }
      }
      const n = this.packSlot(
        ring,
        this.head % RING_SLOTS,
        bufs,
        i,
        address,
        port,
        src,
        srcIfindex,
      );
      if (n === 0) return i;
      i += n;
      this.head++;
      Atomics.store(ring, RING.head, this.head);
      Atomics.notify(ring, RING.head);
    }
    return i;
  }

  /** Stops the sender thread (after the bursts it has) and frees the blocks; the fd stays open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ring) {
      Atomics.store(this.ring, RING.close, 1);
      Atomics.notify(this.ring, RING.head);
    }
    // the pool's bursts go out first (a call in flight uses a block)
    const u = this.pool;
    if (u && u.head !== u.tail) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        u.drained = () => {
          clearTimeout(t);
          resolve();
        };
      });
      if (u.busy) return; // a call still holds a block after 2 s: leave the blocks (leak, not a use-after-free)
    }
    if (this.threadExit) {
      const t = setTimeout(() => void this.thread?.terminate(), 2000);
      await this.threadExit;
      clearTimeout(t);
    }
    for (const b of this.blocks) b.free();
  }
}
