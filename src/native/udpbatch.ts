/**
 * Batched UDP send on an existing socket fd: one `sendmmsg(2)` per burst instead of one
 * `sendmsg` per datagram through node:dgram (bench/RESULTS.md Step 3: the per-datagram
 * syscall was ~43 % of the engine's busy time).
 *
 * All kernel-facing memory (mmsghdr[], iovec[], one sockaddr, data slots) is one native block
 * from `koffi.alloc`, laid out once; a burst only copies each datagram into its slot and
 * writes the iov lengths. koffi 3 pointers are BigInts. Socket options (SO_MARK) are per
 * socket, so datagrams sent here carry the same mark as node:dgram's.
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
  private readonly view: Buffer;
  private readonly dataOff: number;
  private readonly addrOff: number;
  private lastAddr = '';
  private lastPort = -1;
  private closed = false;

  /**
   * @param fd the socket's fd (owned by the caller; not closed here)
   * @param family 6 for an AF_INET6 socket (v4 peers as ::ffff:a.b.c.d), 4 for AF_INET
   */
  private constructor(
    private readonly fd: number,
    private readonly family: 4 | 6,
    private readonly call: SendMmsg,
  ) {
    const hdrs = BATCH_MAX * MMSG;
    const iovs = BATCH_MAX * IOV;
    this.addrOff = hdrs + iovs;
    this.dataOff = this.addrOff + 64; // keep slots 64-byte aligned
    const size = this.dataOff + BATCH_MAX * SLOT_SIZE;
    this.mem = koffi.alloc('uint8_t', size) as unknown as bigint;
    this.view = Buffer.from(koffi.view(this.mem as never, size) as ArrayBuffer);
    this.view.fill(0);
    const base = this.mem;
    const nameLen = family === 6 ? 28 : 16;
    for (let i = 0; i < BATCH_MAX; i++) {
      const h = i * MMSG;
      this.view.writeBigUInt64LE(base + BigInt(this.addrOff), h); // msg_name
      this.view.writeUInt32LE(nameLen, h + 8); // msg_namelen
      this.view.writeBigUInt64LE(base + BigInt(hdrs + i * IOV), h + 16); // msg_iov
      this.view.writeBigUInt64LE(1n, h + 24); // msg_iovlen
      const v = hdrs + i * IOV;
      this.view.writeBigUInt64LE(base + BigInt(this.dataOff + i * SLOT_SIZE), v); // iov_base
    }
  }

  /** A batcher for `fd`, or null where sendmmsg is unavailable (other OS, koffi failure). */
  static create(fd: number, family: 4 | 6): UdpBatcher | null {
    const fn = sendmmsg();
    if (!fn || fd < 0) return null;
    try {
      return new UdpBatcher(fd, family, fn);
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
    let i = start;
    while (i < bufs.length) {
      let n = 0;
      while (n < BATCH_MAX && i + n < bufs.length) {
        const b = bufs[i + n]!;
        if (b.length > SLOT_SIZE) break;
        v.set(b, this.dataOff + n * SLOT_SIZE);
        v.writeUInt32LE(b.length, hdrs + n * IOV + 8); // iov_len (high half stays 0)
        n++;
      }
      if (n === 0) return i; // oversized datagram: caller's way
      const r = this.call(this.fd, this.mem, n, 0);
      if (r > 0) {
        i += r; // a short count: the next call reports datagram i's error
        continue;
      }
      const e = koffi.errno();
      // full socket buffer: the caller's way (dgram queues until writable, keeps order)
      if (r === 0 || e === EAGAIN || e === EINTR) return i;
      i++; // this datagram failed (EPERM from a firewall, ENETUNREACH, …): dropped, as dgram does
    }
    return i;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    koffi.free(this.mem as never);
  }
}
