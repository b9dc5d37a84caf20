/**
 * What a capture of the underlay shows about datagram sizes: per source address, the UDP
 * datagrams by payload size (how many distinct sizes, the commonest, how many at the largest
 * size a 1500-byte path carries whole), IP fragments, ICMP "fragmentation needed". Reads a
 * classic pcap file (tcpdump -w, Ethernet link type, IPv4 only: the benches' underlays) by
 * itself; `tcpdump -s 96` is enough. For bench/interop-matrix.ts `--capture`.
 */
import { readFileSync } from 'node:fs';

export interface SourceSummary {
  src: string;
  /** UDP datagrams that are not fragments (or first fragments) */
  datagrams: number;
  /** distinct UDP payload sizes */
  sizes: number;
  /** the five commonest payload sizes and their counts */
  top: [number, number][];
  /** payload ≥ 1473 bytes: more than an IPv4 1500-byte path carries in one packet */
  oversized: number;
  /** IP packets with MF set or a fragment offset */
  fragments: number;
  /** ICMP destination unreachable, fragmentation needed */
  fragNeeded: number;
}

const FITS_IPV4 = 1500 - 28;

/** Summarises the IPv4 packets of a pcap file by source address. */
export function summarisePcap(file: string): SourceSummary[] {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const link = u32(20);
  // Ethernet (1) or Linux cooked v1 (113)
  const l2 = link === 113 ? 16 : 14;
  const by = new Map<string, SourceSummary & { hist: Map<number, number> }>();
  for (let o = 24; o + 16 <= b.length;) {
    const caplen = u32(o + 8);
    const p = o + 16;
    o = p + caplen;
    if (caplen < l2 + 20 || b.readUInt16BE(p + l2 - 2) !== 0x0800) continue;
    const ip = p + l2;
    const src = `${b[ip + 12]}.${b[ip + 13]}.${b[ip + 14]}.${b[ip + 15]}`;
    let s = by.get(src);
    if (!s) {
      s = {
        src,
        datagrams: 0,
        sizes: 0,
        top: [],
        oversized: 0,
        fragments: 0,
        fragNeeded: 0,
        hist: new Map(),
      };
      by.set(src, s);
    }
    const frag = b.readUInt16BE(ip + 6);
    const more = (frag & 0x2000) !== 0;
    const offset = frag & 0x1fff;
    if (more || offset) s.fragments++;
    if (offset) continue;
    const proto = b[ip + 9];
    const l4 = ip + (b[ip]! & 0x0f) * 4;
    if (proto === 1 && l4 + 2 <= p + caplen && b[l4] === 3 && b[l4 + 1] === 4) s.fragNeeded++;
    if (proto !== 17 || l4 + 8 > p + caplen) continue;
    const payload = b.readUInt16BE(l4 + 4) - 8;
    s.datagrams++;
    if (payload > FITS_IPV4) s.oversized++;
    s.hist.set(payload, (s.hist.get(payload) ?? 0) + 1);
  }
  return [...by.values()].map(({ hist, ...s }) => ({
    ...s,
    sizes: hist.size,
    top: [...hist].sort((x, y) => y[1] - x[1]).slice(0, 5),
  }));
}

export function formatSummary(s: SourceSummary): string {
  const top = s.top.map(([n, c]) => `${n}×${c}`).join(' ');
  return `from ${s.src}: ${s.datagrams} UDP datagrams in ${s.sizes} sizes (commonest: ${top}); ${s.oversized} over ${FITS_IPV4} bytes, ${s.fragments} IP fragments, ${s.fragNeeded} ICMP frag-needed`;
}
