/**
 * The mmsg block: one native block from `koffi.alloc` holding everything a `sendmmsg(2)` of up
 * to BATCH_MAX messages reads (mmsghdr[], iovec[], the control areas, one sockaddr, the data),
 * its headers laid out once. A burst copies its datagrams back to back into the data and writes
 * each message's iov and, with UDP GSO, its UDP_SEGMENT cmsg: a run of equal-size datagrams (the
 * last may be shorter) becomes one message the kernel segments. With a source address every
 * message also carries an IP_PKTINFO / IPV6_PKTINFO cmsg naming it. koffi 3 pointers are
 * BigInts; the block's own pointers are written as 6-byte numbers (user space < 2^48).
 *
 * Also what works on a block's headers alone, without the class (the sender thread has only
 * the blocks' addresses): `sendApart` (a refused GSO message sent a datagram at a time) and
 * `stripSource` (the pktinfo cmsg dropped from messages not sent yet).
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
 *   the sockaddr: sockaddr.ts
 */
import koffi from 'koffi';
import { E } from './libc.js';
import { SOCKADDR_IN, SOCKADDR_IN6, parseIPv4, parseIPv6, writeSockaddr } from './sockaddr.js';

/** Bytes of a struct mmsghdr. */
export const MMSG = 64;
const IOV = 16;
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
/** No limit on GSO segments known. */
export const SEG_ANY = 0xffff;

/** Datagrams per sendmmsg call. */
export const BATCH_MAX = 64;
/** Header bytes of a block: mmsghdr[], iovec[] and the control areas (what `sendApart` reads). */
export const HEAD_BYTES = BATCH_MAX * (MMSG + IOV + CTRL);
/** Data bytes per datagram slot: a burst holds BATCH_MAX × SLOT_SIZE bytes back to back. */
export const SLOT_SIZE = 2048;
/** Largest datagram taken (a UDP payload); larger ones go the caller's fallback way. */
export const MAX_DATAGRAM = 65507;

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

/** One native block: mmsghdr[BATCH_MAX], iovec[], control areas, one sockaddr, data. */
export class MmsgBlock {
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
  /** the source's address bytes and ifindex, and how many control areas hold its cmsg */
  private readonly srcBytes = new Uint8Array(16);
  private srcIfindex = 0;
  private srcFilled = 0;

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
    const nameLen = family === 6 ? SOCKADDR_IN6 : SOCKADDR_IN;
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

  /** Points every message at `address`:`port` (kept while the same); false when it does not parse. */
  setAddress(family: 4 | 6, address: string, port: number): boolean {
    if (address === this.lastAddr && port === this.lastPort) return true;
    if (!writeSockaddr(this.view, this.addrOff, family, address, port)) return this.invalidate();
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
   * Sets the pktinfo cmsg for local address `src` (ifindex for link-local IPv6), or clears it
   * ('' or unparsable). `v6dest`: the destination is IPv6 proper (not v4 / v4-mapped), which
   * decides the cmsg kind. The control areas get it as `pack` uses them (`fillSource`): the
   * source changes with each new session of a peer (none for the initiation after a reset, then
   * the one its response came to), and writing all BATCH_MAX areas each time was a visible
   * share of a first ping's path.
   */
  setSource(src: string, ifindex: number, v6dest: boolean): void {
    const key = src === '' ? '' : `${src}%${ifindex}%${v6dest ? 6 : 4}`;
    if (key === this.lastSrc) return;
    this.lastSrc = key;
    this.srcSpace = 0;
    this.srcFilled = 0;
    if (src === '') return;
    const srcV6 = src.includes(':');
    const tmp = this.srcBytes;
    if (v6dest !== srcV6 || (srcV6 ? !parseIPv6(src, tmp, 0) : !parseIPv4(src, tmp, 0))) return;
    this.srcIfindex = ifindex;
    this.srcSpace = v6dest ? 40 : 32;
  }

  /** Writes the current source's cmsg into the control areas of messages [srcFilled, upTo). */
  private fillSource(upTo: number): void {
    const v = this.view;
    const space = this.srcSpace;
    const tmp = this.srcBytes;
    for (let i = this.srcFilled; i < upTo; i++) {
      const c = this.ctrlOff + i * CTRL + SEG_AT - space;
      v.fill(0, c, c + space);
      if (space === 40) {
        v.writeUInt32LE(36, c); // CMSG_LEN(20)
        v.writeInt32LE(SOL_IPV6, c + 8);
        v.writeInt32LE(IPV6_PKTINFO, c + 12);
        v.set(tmp, c + 16);
        v.writeInt32LE(this.srcIfindex, c + 32);
      } else {
        v.writeUInt32LE(28, c); // CMSG_LEN(12)
        v.writeInt32LE(SOL_IP, c + 8);
        v.writeInt32LE(IP_PKTINFO, c + 12);
        v.set(tmp.subarray(0, 4), c + 20); // ipi_spec_dst: the source to use
      }
    }
    if (upTo > this.srcFilled) this.srcFilled = upTo;
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
        if (sp && msgs >= this.srcFilled) this.fillSource(msgs + 1);
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
