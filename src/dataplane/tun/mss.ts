/**
 * TCP MSS clamping for transport prefixes (AmneziaWG S4). A tunnel MTU chosen by WireGuard's
 * rule (path MTU − 80) leaves no room for S4 bytes in front of every transport message: a
 * full-size packet becomes a datagram of MTU + 32 + S4 bytes that the path has to fragment
 * (and that peers which batch with UDP GSO lose: the kernel refuses the whole batch). The
 * engine therefore lowers the MSS option of TCP SYNs it carries, both ways, so that TCP's
 * segments fit the path whole; other traffic is fragmented by the kernel.
 *
 * The path is taken to be what the MTU was chosen for: max(1500, MTU + 80) bytes, minus the
 * outer IP and UDP headers (28 for an IPv4 endpoint, 48 for IPv6), the 32 bytes of WireGuard's
 * transport header and tag, and S4, rounded down to WireGuard's 16-byte padding grid (with
 * AmneziaWG 3.x content padding instead: minus its largest addition). Without S4 the limit is
 * never below what TCP already uses, so nothing is clamped (and callers skip the check).
 * Random trailers (3.1) pad up to the largest datagram seen, which a clamped flow keeps within
 * the path.
 *
 * The two directions differ with content padding. A SYN going out (from the TUN) sets the
 * segments the peer sends, which it pads at random up to its MTU: their limit leaves room for
 * the largest addition (`innerLimit`). A SYN coming in (to the TUN) sets the segments our host
 * sends, which this engine pads only up to what fits the path (`pathPlaintext`, the padding
 * cap of send.ts): those are clamped to that whole size, so every full-size segment gets no
 * padding and leaves in a datagram of the same size as the next — runs that UDP GSO sends as
 * one message and the peer's GRO takes as one. Segments clamped below it and padded at random
 * came in ~200 sizes and went out one datagram at a time: AmneziaWG 3.1 at MTU 1420 ran at
 * half the speed of 1417 (bench/RESULTS.md, Step 24).
 */

/** WireGuard's header (16) and tag (16) around every transport payload. */
const TRANSPORT_OVERHEAD = 32;

/**
 * The largest inner IP packet that keeps a transport datagram within the path, for a tunnel
 * of `mtu` with a `prefix`-byte transport prefix to an endpoint over IPv6 (`v6`) or IPv4;
 * `padMax`: the largest content padding addition (0: WireGuard's padding to 16 bytes).
 */
export function innerLimit(mtu: number, prefix: number, v6: boolean, padMax = 0): number {
  const room = Math.max(1500, mtu + 80) - (v6 ? 48 : 28) - TRANSPORT_OVERHEAD - prefix;
  // the plaintext is padded, but never past the MTU
  if (room >= mtu) return mtu;
  // content padding adds up to padMax; WireGuard's rule pads to the next multiple of 16
  return padMax > 0 ? room - padMax : room & ~15;
}

/**
 * The largest plaintext whose transport datagram fits the path (`innerLimit`'s room), never
 * past the MTU: what this engine pads a packet to at most, and the MSS limit of the segments
 * it sends itself.
 */
export function pathPlaintext(mtu: number, prefix: number, v6: boolean): number {
  return Math.min(mtu, Math.max(1500, mtu + 80) - (v6 ? 48 : 28) - TRANSPORT_OVERHEAD - prefix);
}

const TCP = 6;
const SYN = 0x02;
const MSS_OPTION = 2;

/**
 * Lowers the MSS option of the TCP SYN (or SYN-ACK) `b[at, at + len)` to what an inner packet
 * of at most `limit` bytes carries (limit − 40 over IPv4, − 60 over IPv6) and updates the TCP
 * checksum incrementally (RFC 1624). Anything else (not TCP, not a SYN, a fragment, IPv6
 * extension headers, no MSS option, an MSS already small enough) is left alone. Returns
 * whether the packet changed.
 */
export function clampMss(b: Uint8Array, at: number, len: number, limit: number): boolean {
  const v = b[at]! >> 4;
  let tcp: number;
  let max: number;
  if (v === 4) {
    if (len < 20 || b[at + 9] !== TCP) return false;
    if (((b[at + 6]! & 0x1f) | b[at + 7]!) !== 0) return false; // not the first fragment
    tcp = at + (b[at]! & 0x0f) * 4;
    max = limit - 40;
  } else if (v === 6) {
    if (len < 40 || b[at + 6] !== TCP) return false;
    tcp = at + 40;
    max = limit - 60;
  } else return false;
  const end = at + len;
  if (tcp + 20 > end || !(b[tcp + 13]! & SYN)) return false;
  const optEnd = Math.min(tcp + (b[tcp + 12]! >> 4) * 4, end);
  for (let o = tcp + 20; o < optEnd;) {
    const kind = b[o]!;
    if (kind === 0) return false;
    if (kind === 1) {
      o++;
      continue;
    }
    if (o + 1 >= optEnd) return false;
    const olen = b[o + 1]!;
    if (olen < 2 || o + olen > optEnd) return false;
    if (kind === MSS_OPTION && olen === 4) {
      const mss = (b[o + 2]! << 8) | b[o + 3]!;
      if (max <= 0 || mss <= max) return false;
      replaceU16(b, tcp, o + 2, max);
      return true;
    }
    o += olen;
  }
  return false;
}

/**
 * Writes the big-endian `value` at `off` (inside the TCP segment starting at `tcp`) and
 * adjusts the checksum at tcp + 16 for the change: the checksum sums 16-bit words from the
 * segment's start, so a value at an odd offset changes two words by one byte each.
 */
function replaceU16(b: Uint8Array, tcp: number, off: number, value: number): void {
  const w0 = (off - tcp) & 1 ? off - 1 : off; // first word the value touches
  const words = (off - tcp) & 1 ? 2 : 1;
  let sum = ~((b[tcp + 16]! << 8) | b[tcp + 17]!) & 0xffff;
  for (let k = 0; k < words; k++) sum += ~((b[w0 + 2 * k]! << 8) | b[w0 + 2 * k + 1]!) & 0xffff;
  b[off] = value >> 8;
  b[off + 1] = value & 0xff;
  for (let k = 0; k < words; k++) sum += (b[w0 + 2 * k]! << 8) | b[w0 + 2 * k + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  b[tcp + 16] = c >> 8;
  b[tcp + 17] = c & 0xff;
}
