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
 *   struct cmsghdr { size_t len @0; int level @8; int type @12; data @16 }  CMSG_SPACE(2) = 24
 *
 * x86-64 / aarch64 LP64 layouts (glibc):
 *   struct msghdr  { void *name @0; u32 namelen @8; iovec *iov @16; size_t iovlen @24;
 *                    void *control @32; size_t controllen @40; int flags @48 }  56 bytes
 *   struct mmsghdr { msghdr hdr @0; u32 msg_len @56 }                           64 bytes
 *   struct iovec   { void *base @0; size_t len @8 }                             16 bytes
 *   sockaddr_in  { u16 family; be16 port; u8 addr[4]; u8 zero[8] }              16 bytes
 *   sockaddr_in6 { u16 family; be16 port; u32 flowinfo; u8 addr[16]; u32 scope } 28 bytes
 */
import koffi from 'koffi';

const MMSG = 64;
const IOV = 16;
const SOCKADDR = 28;
const AF_INET = 2;
const AF_INET6 = 10;
const EINTR = 4;
const EIO = 5;
const EINVAL = 22;
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
const CMSG_LEN = 18; // CMSG_LEN(sizeof(u16))
const CMSG_SPACE = 24; // CMSG_SPACE(sizeof(u16))
/** UDP GSO limits: 64 segments, and the whole run (+ headers) must fit an IP datagram. */
const GSO_MAX_SEGMENTS = 64;
const GSO_MAX_BYTES = 65000;
const EAGAIN = 11;

/** Datagrams per sendmmsg call. */
export const BATCH_MAX = 64;
/** Largest datagram a slot holds; larger ones go the caller's fallback way. */
export const SLOT_SIZE = 2048;

type SendMmsg = (fd: number, vec: bigint, vlen: number, flags: number) => number;
let sendmmsgFn: SendMmsg | null | undefined;

function sendmmsg(): SendMmsg | null {
  if (sendmmsgFn !== undefined) return sendmmsgFn;
  try {
    if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64'))
      return (sendmmsgFn = null);
    const lib = koffi.load('libc.so.6');
    sendmmsgFn = lib.func(
      'int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)',
    ) as unknown as SendMmsg;
  } catch {
    sendmmsgFn = null;
  }
  return sendmmsgFn;
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

export class UdpBatcher {
  private readonly mem: bigint;
  private readonly memNum: number;
  private readonly view: Buffer;
  private readonly dataOff: number;
  private readonly addrOff: number;
  private readonly ctrlOff: number;
  /** per message of the current burst: index (relative to the burst) after its last datagram */
  private readonly msgEnd = new Int32Array(BATCH_MAX);
  private lastAddr = '';
  private lastPort = -1;
  private closed = false;

  /**
   * @param fd the socket's fd (owned by the caller; not closed here)
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
    const hdrs = BATCH_MAX * MMSG;
    const iovs = BATCH_MAX * IOV;
    this.ctrlOff = hdrs + iovs;
    this.addrOff = this.ctrlOff + BATCH_MAX * CMSG_SPACE;
    this.dataOff = this.addrOff + 64; // keep the data 64-byte aligned
    const size = this.dataOff + BATCH_MAX * SLOT_SIZE;
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
      const c = this.ctrlOff + i * CMSG_SPACE;
      this.view.writeUInt32LE(CMSG_LEN, c);
      this.view.writeInt32LE(SOL_UDP, c + 8);
      this.view.writeInt32LE(UDP_SEGMENT, c + 12);
    }
  }

  /** Writes the address of byte `off` of the block as a pointer at `at` (user space < 2^48). */
  private ptr(at: number, off: number): void {
    this.view.writeUIntLE(this.memNum + off, at, 6);
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

  private setAddress(address: string, port: number): boolean {
    if (address === this.lastAddr && port === this.lastPort) return true;
    const v = this.view;
    const o = this.addrOff;
    v.fill(0, o, o + SOCKADDR);
    const v6 = address.includes(':');
    if (this.family === 4) {
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
   * Sends `bufs[start..]` to address:port in sendmmsg bursts. A datagram the kernel rejects
   * (EPERM, ENETUNREACH, …) is dropped, like dgram's swallowed send errors. Returns the index
   * of the first datagram NOT handled (bufs.length when all were): the caller sends the rest
   * its own way (full socket buffer, an oversized datagram, an unparsable address).
   * Never throws.
   */
  send(bufs: readonly Uint8Array[], address: string, port: number, start = 0): number {
    if (this.closed || !this.setAddress(address, port)) return start;
    const v = this.view;
    const hdrs = BATCH_MAX * MMSG;
    const end = this.msgEnd;
    let i = start;
    while (i < bufs.length) {
      // copy up to BATCH_MAX datagrams back to back; group them into messages
      let n = 0;
      let off = 0;
      let msgs = 0;
      let seg = 0; // segment size of the open GSO run (0: no run open)
      let runBytes = 0;
      while (n < BATCH_MAX && i + n < bufs.length) {
        const b = bufs[i + n]!;
        const len = b.length;
        if (len > SLOT_SIZE) break;
        v.set(b, this.dataOff + off);
        const inRun = msgs > 0 ? end[msgs - 1]! - (msgs > 1 ? end[msgs - 2]! : 0) : 0;
        // joins the open run when equal-size, or as the shorter last segment of a run of ≥ 2
        // (so two random-size datagrams, e.g. AWG junk, never merge), within the 64 KiB cap
        if (
          this.gso &&
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
          v.writeUInt32LE(0, h + 40); // msg_controllen: none until a second segment joins
          v.writeUIntLE(0, h + 32, 6);
          end[msgs] = n + 1;
          msgs++;
          seg = len;
          runBytes = len;
        }
        off += len;
        n++;
      }
      if (n === 0) return i; // oversized datagram: caller's way
      if (this.gso) {
        for (let m = 0; m < msgs; m++) {
          const first = m > 0 ? end[m - 1]! : 0;
          if (end[m]! - first < 2) continue;
          const h = m * MMSG;
          const c = this.ctrlOff + m * CMSG_SPACE;
          v.writeUInt16LE(bufs[i + first]!.length, c + 16); // gso_size
          this.ptr(h + 32, c); // msg_control
          v.writeUInt32LE(CMSG_SPACE, h + 40); // msg_controllen
        }
      }
      const r = this.call(this.fd, this.mem, msgs, 0);
      if (r > 0) {
        i += end[r - 1]!; // a short count: the next call reports the next message's error
        continue;
      }
      const e = koffi.errno();
      // full socket buffer: the caller's way (dgram queues until writable, keeps order)
      if (r === 0 || e === EAGAIN || e === EINTR) return i;
      if (this.gso && (e === EIO || e === EINVAL) && end[0]! > 1) {
        this.gso = false; // no UDP GSO on this path: plain messages from now on
        continue;
      }
      i += end[0]!; // this message failed (EPERM from a firewall, ENETUNREACH, …): dropped, as dgram does
    }
    return i;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    koffi.free(this.mem as never);
  }
}
