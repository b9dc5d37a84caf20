/**
 * TUN offloads (IFF_VNET_HDR + TUNSETOFFLOAD): what lets the kernel hand the engine 64 KiB
 * TCP super-packets and take coalesced ones back, instead of one syscall and one trip through
 * the stack per 1,420-byte packet. Pure functions over bytes; tun/file.ts does the I/O.
 *
 * Every read and write on such a TUN starts with a `struct virtio_net_hdr` (10 bytes, host
 * order, little-endian on the machines we run on):
 *
 *   u8 flags @0 (NEEDS_CSUM = 1); u8 gso_type @1 (NONE 0, TCPV4 1, TCPV6 4, ECN bit 0x80);
 *   u16 hdr_len @2; u16 gso_size @4; u16 csum_start @6; u16 csum_offset @8
 *
 * Read side: a GSO packet is split into MSS-sized segments, each with its own IP length,
 * IPv4 id and header checksum, TCP sequence number, FIN/PSH on the last segment only, and a
 * full TCP checksum (the peer's kernel verifies it); a NEEDS_CSUM packet without GSO gets its
 * checksum completed. hdr_len from the kernel is not trusted (it can span a whole packet on
 * the forward path): the TCP header length is read from the packet.
 *
 * Write side (GRO): consecutive in-order TCP segments of one flow (same addresses, ports,
 * ACK number, options, TOS/TTL/DF or traffic class/hop limit; flags ACK or ACK|PSH, PSH only
 * last) are joined into one packet the kernel treats as GSO with CHECKSUM_PARTIAL, which the
 * stack takes as verified. The segments' own checksums are not verified first: every packet
 * written here was authenticated by the transport AEAD, whose tag covers its bytes (Linux's
 * WireGuard marks decrypted packets CHECKSUM_UNNECESSARY for the same reason), and a peer
 * that could send a bad checksum could as well send a good one. A single packet is written
 * as it came (the kernel verifies it). Only a flow's last group is ever extended, so no flow
 * is reordered.
 *
 * The approach follows wireguard-go's tun/offload_linux.go (read for the facts; this is our
 * own code). Off with AWG_TUN_OFFLOAD=0.
 */

export const VNET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_TCPV6 = 4;
export const GSO_ECN = 0x80;

export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;

const PROTO_TCP = 6;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;
const TCP_CWR = 0x80;
/** Segments per coalesced packet (the kernel's GSO segment limit is far above; keeps groups bounded). */
export const GRO_MAX_SEGMENTS = 64;
/**
 * Flows a batch keeps open for coalescing (the most recent ones): bounds the search per
 * packet, so a peer interleaving many flows costs linear, not quadratic, work.
 */
export const GRO_MAX_OPEN_FLOWS = 16;
const MAX_IP_PACKET = 65535;

export interface VnetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function readVnetHdr(b: Uint8Array, off: number): VnetHdr {
  return {
    flags: b[off]!,
    gsoType: b[off + 1]!,
    hdrLen: b[off + 2]! | (b[off + 3]! << 8),
    gsoSize: b[off + 4]! | (b[off + 5]! << 8),
    csumStart: b[off + 6]! | (b[off + 7]! << 8),
    csumOffset: b[off + 8]! | (b[off + 9]! << 8),
  };
}

export function writeVnetHdr(b: Uint8Array, off: number, h: VnetHdr): void {
  b[off] = h.flags;
  b[off + 1] = h.gsoType;
  b[off + 2] = h.hdrLen & 0xff;
  b[off + 3] = h.hdrLen >> 8;
  b[off + 4] = h.gsoSize & 0xff;
  b[off + 5] = h.gsoSize >> 8;
  b[off + 6] = h.csumStart & 0xff;
  b[off + 7] = h.csumStart >> 8;
  b[off + 8] = h.csumOffset & 0xff;
  b[off + 9] = h.csumOffset >> 8;
}

/**
 * One's-complement sum of b[start, end) as big-endian 16-bit words, added to `initial`
 * (a previous unfolded sum), unfolded. The sum is order-independent, so words are read four
 * bytes at a time as little-endian u32 and swapped once at the end (`fold`). Where the range
 * starts on an even address (the TCP header of a packet the engine laid out or received), the
 * words are read through a Uint32Array over the whole buffer, four to an iteration, summed as
 * doubles: several times faster than byte loads (bench/checksum.ts compares them), and these
 * sums were a large share of the engine's thread in each direction of an iperf3 run.
 * Measurements: bench/RESULTS.md, section "Less work per packet".
 */
export function sumLE(b: Uint8Array, start: number, end: number, initial = 0): number {
  let a = b.byteOffset + start;
  if (!LITTLE_ENDIAN || end - start < 32 || (a & 1) !== 0) return sumBytes(b, start, end, initial);
  let s = initial;
  let i = start;
  if ((a & 2) !== 0) {
    s += b[i]! | (b[i + 1]! << 8);
    i += 2;
    a += 2;
  }
  const w = words(b.buffer);
  let j = a >>> 2;
  const n = (end - i) >>> 2;
  const jEnd = j + n;
  const jEnd4 = jEnd - 3;
  let d = 0;
  for (; j < jEnd4; j += 4) d += w[j]! + w[j + 1]! + w[j + 2]! + w[j + 3]!;
  for (; j < jEnd; j++) d += w[j]!;
  return sumBytes(b, i + (n << 2), end, s + d);
}

/** sumLE by byte loads: any alignment, any length */
function sumBytes(b: Uint8Array, start: number, end: number, initial: number): number {
  let s = initial;
  let i = start;
  const end4 = end - 3;
  for (; i < end4; i += 4)
    s += (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16)) + b[i + 3]! * 0x1000000;
  if (i + 1 < end) {
    s += b[i]! | (b[i + 1]! << 8);
    i += 2;
  }
  if (i < end) s += b[i]!;
  return s;
}

/** Uint32Array reads are little-endian here (every platform we run on; else byte loads) */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * A word view of the whole buffer, for the last two buffers summed (the engine sums in a few
 * long-lived slabs: the TUN split output, the receive block). A view of a buffer that is
 * detached later reads as empty, but then so does every Uint8Array over it: sumLE never
 * reaches it with a range to sum. The two views keep their buffers alive until two others
 * are summed (a closed device's slab at most, 1 MiB, and only its resident pages count).
 */
let wordsA: { buf: ArrayBufferLike; w: Uint32Array } | undefined;
let wordsB: { buf: ArrayBufferLike; w: Uint32Array } | undefined;
function words(buf: ArrayBufferLike): Uint32Array {
  if (wordsA?.buf === buf) return wordsA.w;
  if (wordsB?.buf === buf) return wordsB.w;
  wordsB = wordsA;
  wordsA = { buf, w: new Uint32Array(buf, 0, Math.floor(buf.byteLength / 4)) };
  return wordsA.w;
}

/** Folds an unfolded little-endian sum to the 16-bit big-endian one's-complement sum. */
export function fold(le: number): number {
  // `%` of a double is a call to fmod: the remainder by subtraction
  while (le > 0xffff) {
    const hi = Math.floor(le / 0x10000);
    le = le - hi * 0x10000 + hi;
  }
  return ((le & 0xff) << 8) | (le >> 8);
}

/** Pseudo-header sum (unfolded, LE) of the IPv4/IPv6 packet `p` for `proto` and `length`. */
export function pseudoSum(p: Uint8Array, v6: boolean, proto: number, length: number): number {
  const s = v6 ? sumLE(p, 8, 40) : sumLE(p, 12, 20);
  return s + (proto << 8) + (((length & 0xff) << 8) | (length >> 8));
}

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}

function get16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function get32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

function ipv4HeaderChecksum(p: Uint8Array, ihl: number): void {
  p[10] = 0;
  p[11] = 0;
  put16(p, 10, ~fold(sumLE(p, 0, ihl)) & 0xffff);
}

/** Whether the TCP checksum of `p` (IP header `iphLen` bytes, TCP to the end) is right. */
export function tcpChecksumValid(p: Uint8Array, iphLen: number, v6: boolean): boolean {
  const len = p.length - iphLen;
  return fold(sumLE(p, iphLen, p.length, pseudoSum(p, v6, PROTO_TCP, len))) === 0xffff;
}

/**
 * Completes a NEEDS_CSUM checksum in place: the field holds the pseudo-header sum; the
 * checksum covers csum_start to the end. false when the offsets do not fit the packet.
 */
export function completeChecksum(p: Uint8Array, csumStart: number, csumOffset: number): boolean {
  const at = csumStart + csumOffset;
  if (csumStart >= p.length || at + 2 > p.length) return false;
  const initial = p[at]! | (p[at + 1]! << 8);
  p[at] = 0;
  p[at + 1] = 0;
  put16(p, at, ~fold(sumLE(p, csumStart, p.length, initial)) & 0xffff);
  return true;
}

/**
 * Splits the GSO TCP packet `p` (after its vnet header `h`) into segments written back to
 * back into `out` from `off` (each 8-byte aligned); `emit(start, end)` is called per segment.
 * Returns the offset after the last segment, or -1 when the header does not describe `p`
 * (the packet is dropped). `out` must hold `p.length + segments × headers + 8 × segments`.
 */
export function splitTcp(
  p: Uint8Array,
  h: VnetHdr,
  out: Uint8Array,
  off: number,
  emit: (start: number, end: number) => void,
): number {
  const gso = h.gsoType & ~GSO_ECN;
  if (gso !== GSO_TCPV4 && gso !== GSO_TCPV6) return -1;
  const v6 = gso === GSO_TCPV6;
  if (p.length < 1 || p[0]! >> 4 !== (v6 ? 6 : 4)) return -1;
  const iphLen = h.csumStart;
  if (iphLen < (v6 ? 40 : 20) || p.length < iphLen + 20 || h.csumOffset !== 16) return -1;
  if (!v6 && (p[0]! & 0x0f) * 4 !== iphLen) return -1;
  const tcphLen = (p[iphLen + 12]! >> 4) * 4;
  if (tcphLen < 20) return -1;
  const hdrLen = iphLen + tcphLen;
  const mss = h.gsoSize;
  if (p.length < hdrLen || mss < 1) return -1;
  const payload = p.length - hdrLen;
  const segments = Math.max(1, Math.ceil(payload / mss));
  if (off + payload + segments * (hdrLen + 8) > out.length) return -1;
  const seq0 = get32(p, iphLen + 4);
  const id0 = v6 ? 0 : get16(p, 4);
  // the source and destination addresses (the pseudo header's constant part)
  const addrSum = v6 ? sumLE(p, 8, 40) : sumLE(p, 12, 20);
  const flags = p[iphLen + 13]!;
  // no view per segment: the header is copied from one view, the payload within the slab
  // when `p` lies in `out`'s buffer (TunFile), and every field is written at its offset in
  // `out`; the checksum reads `out` through one word view
  const same = p.buffer === out.buffer;
  const header = same ? null : p.subarray(0, hdrLen);
  const pAt = p.byteOffset - out.byteOffset;
  const w = LITTLE_ENDIAN ? words(out.buffer) : null;
  const base = out.byteOffset;
  let o = off;
  for (let i = 0, at = hdrLen; i < segments; i++, at += mss) {
    const end = Math.min(at + mss, p.length);
    const segLen = hdrLen + (end - at);
    if (same) {
      out.copyWithin(o, pAt, pAt + hdrLen);
      out.copyWithin(o + hdrLen, pAt + at, pAt + end);
    } else {
      out.set(header!, o);
      out.set(p.subarray(at, end), o + hdrLen);
    }
    if (v6) put16(out, o + 4, segLen - 40);
    else {
      put16(out, o + 2, segLen);
      put16(out, o + 4, (id0 + i) & 0xffff);
      out[o + 10] = 0;
      out[o + 11] = 0;
      put16(out, o + 10, ~fold(sumBytes(out, o, o + iphLen, 0)) & 0xffff);
    }
    const t = o + iphLen;
    put32(out, t + 4, (seq0 + i * mss) >>> 0);
    // FIN and PSH on the last segment only, CWR on the first only (as the kernel's TSO)
    let f = flags;
    if (i < segments - 1) f &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) f &= ~TCP_CWR;
    out[t + 13] = f;
    out[t + 16] = 0;
    out[t + 17] = 0;
    const l4 = segLen - iphLen;
    const ps = addrSum + (PROTO_TCP << 8) + (((l4 & 0xff) << 8) | (l4 >> 8));
    const sum =
      w && ((base + t) & 3) === 0
        ? sumWords(w, out, base, t, o + segLen, ps)
        : sumLE(out, t, o + segLen, ps);
    put16(out, t + 16, ~fold(sum) & 0xffff);
    emit(o, o + segLen);
    o += (segLen + 7) & ~7;
  }
  return o;
}

/**
 * sumLE of b[start, end) for a 4-byte aligned start (`base` + start, `base` being b's offset
 * in its buffer), through the word view `w` of that buffer: no `.buffer` lookup per call.
 */
function sumWords(
  w: Uint32Array,
  b: Uint8Array,
  base: number,
  start: number,
  end: number,
  initial: number,
): number {
  let j = (base + start) >>> 2;
  const n = (end - start) >>> 2;
  const jEnd = j + n;
  const jEnd4 = jEnd - 3;
  let d = 0;
  for (; j < jEnd4; j += 4) d += w[j]! + w[j + 1]! + w[j + 2]! + w[j + 3]!;
  for (; j < jEnd; j++) d += w[j]!;
  return sumBytes(b, start + (n << 2), end, initial + d);
}

/** A run of packets to be written as one (a coalesced TCP group, or a single packet). */
export interface GroGroup {
  pkts: Uint8Array[];
  /** 0: written alone, as it came (no coalescing attempted or possible) */
  iphLen: number;
  tcphLen: number;
  v6: boolean;
  /** payload size of the first segment (the GSO size) */
  gsoSize: number;
  nextSeq: number;
  bytes: number;
  /** a segment shorter than gsoSize or carrying PSH closed the group */
  closed: boolean;
}

/** TCP header facts of a GRO candidate, or null (not TCP, fragmented, options in IPv4, odd flags, no payload). */
function candidate(
  p: Uint8Array,
): { iphLen: number; tcphLen: number; v6: boolean; payload: number } | null {
  const ver = p[0]! >> 4;
  let iphLen: number;
  let v6 = false;
  if (ver === 4) {
    if (p[0] !== 0x45 || p.length < 40 || p[9] !== PROTO_TCP) return null;
    if (get16(p, 2) !== p.length) return null;
    if ((p[6]! & 0x3f) !== 0 || p[7] !== 0) return null; // MF or a fragment offset
    iphLen = 20;
  } else if (ver === 6) {
    if (p.length < 60 || p[6] !== PROTO_TCP) return null;
    if (get16(p, 4) !== p.length - 40) return null;
    iphLen = 40;
    v6 = true;
  } else return null;
  const tcphLen = (p[iphLen + 12]! >> 4) * 4;
  if (tcphLen < 20 || p.length < iphLen + tcphLen) return null;
  const flags = p[iphLen + 13]!;
  if (flags !== TCP_ACK && flags !== (TCP_ACK | TCP_PSH)) return null;
  const payload = p.length - iphLen - tcphLen;
  if (payload < 1) return null;
  return { iphLen, tcphLen, v6, payload };
}

function bytesEqual(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Same flow and headers that may be merged: addresses, ports, ack, options, IP fields. */
function sameFlow(a: Uint8Array, b: Uint8Array, g: GroGroup): boolean {
  const { iphLen, tcphLen, v6 } = g;
  if (v6) {
    if (a[0] !== b[0] || a[1]! >> 4 !== b[1]! >> 4 || a[7] !== b[7]) return false;
    if (!bytesEqual(a, b, 8, 40)) return false;
  } else {
    if (a[1] !== b[1] || a[6]! >> 5 !== b[6]! >> 5 || a[8] !== b[8]) return false;
    if (!bytesEqual(a, b, 12, 20)) return false;
  }
  // ports, then ack number, then options
  return (
    bytesEqual(a, b, iphLen, iphLen + 4) &&
    bytesEqual(a, b, iphLen + 8, iphLen + 12) &&
    bytesEqual(a, b, iphLen + 20, iphLen + tcphLen)
  );
}

/**
 * Groups `packets` for writing (order of each group's first packet; no flow reordered).
 * Reuses `groups` entries; returns the number of groups filled.
 */
export function planGro(packets: readonly Uint8Array[], groups: GroGroup[]): number {
  let n = 0;
  // indices of open groups by flow are searched linearly: batches hold few flows
  const open: number[] = [];
  for (const p of packets) {
    const c = candidate(p);
    if (c) {
      const seq = get32(p, c.iphLen + 4);
      let joined = false;
      for (let k = open.length - 1; k >= 0; k--) {
        const g = groups[open[k]!]!;
        if (g.v6 !== c.v6 || g.tcphLen !== c.tcphLen) continue;
        const first = g.pkts[0]!;
        if (!sameFlow(first, p, g)) continue;
        // the flow's last group: join it or start a new one (which becomes the last)
        if (
          !g.closed &&
          seq === g.nextSeq &&
          c.payload <= g.gsoSize &&
          g.pkts.length < GRO_MAX_SEGMENTS &&
          g.bytes + c.payload <= MAX_IP_PACKET - (c.v6 ? 0 : c.iphLen) - c.tcphLen
        ) {
          g.pkts.push(p);
          g.bytes += c.payload;
          g.nextSeq = (seq + c.payload) >>> 0;
          if (c.payload < g.gsoSize || p[c.iphLen + 13]! & TCP_PSH) g.closed = true;
          joined = true;
        } else open.splice(k, 1);
        break;
      }
      if (joined) continue;
      const g = reuse(groups, n++);
      g.pkts.push(p);
      g.iphLen = c.iphLen;
      g.tcphLen = c.tcphLen;
      g.v6 = c.v6;
      g.gsoSize = c.payload;
      g.nextSeq = (seq + c.payload) >>> 0;
      g.bytes = c.payload;
      g.closed = (p[c.iphLen + 13]! & TCP_PSH) !== 0;
      open.push(n - 1);
      if (open.length > GRO_MAX_OPEN_FLOWS) open.shift(); // the oldest flow is written as it is
      continue;
    }
    const g = reuse(groups, n++);
    g.pkts.push(p);
    g.iphLen = 0;
  }
  return n;
}

function reuse(groups: GroGroup[], i: number): GroGroup {
  let g = groups[i];
  if (!g) {
    g = {
      pkts: [],
      iphLen: 0,
      tcphLen: 0,
      v6: false,
      gsoSize: 0,
      nextSeq: 0,
      bytes: 0,
      closed: false,
    };
    groups[i] = g;
  } else g.pkts = [];
  return g;
}

const NO_GSO: VnetHdr = {
  flags: 0,
  gsoType: 0,
  hdrLen: 0,
  gsoSize: 0,
  csumStart: 0,
  csumOffset: 0,
};

/**
 * Writes group `g` as vnet header + one packet into `out` from 0; returns the length.
 * A group of one is copied unchanged behind an all-zero header (the kernel verifies it).
 */
export function assembleGroup(g: GroGroup, out: Uint8Array): number {
  const first = g.pkts[0]!;
  if (g.pkts.length === 1) {
    writeVnetHdr(out, 0, NO_GSO);
    out.set(first, VNET_HDR_LEN);
    return VNET_HDR_LEN + first.length;
  }
  const { iphLen, tcphLen, v6 } = g;
  const hdrLen = iphLen + tcphLen;
  const o = VNET_HDR_LEN;
  out.set(first, o);
  let end = o + first.length;
  let psh = 0;
  for (let i = 1; i < g.pkts.length; i++) {
    const p = g.pkts[i]!;
    out.set(p.subarray(hdrLen), end);
    end += p.length - hdrLen;
    psh |= p[iphLen + 13]! & TCP_PSH;
  }
  const pkt = out.subarray(o, end);
  const len = end - o;
  pkt[iphLen + 13] = pkt[iphLen + 13]! | psh;
  if (v6) put16(pkt, 4, len - 40);
  else {
    put16(pkt, 2, len);
    ipv4HeaderChecksum(pkt, iphLen);
  }
  // CHECKSUM_PARTIAL: the field holds the pseudo-header sum; the kernel completes it
  put16(pkt, iphLen + 16, fold(pseudoSum(pkt, v6, PROTO_TCP, len - iphLen)));
  writeVnetHdr(out, 0, {
    flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType: v6 ? GSO_TCPV6 : GSO_TCPV4,
    hdrLen,
    gsoSize: g.gsoSize,
    csumStart: iphLen,
    csumOffset: 16,
  });
  return end;
}
