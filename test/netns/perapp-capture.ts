/**
 * Packet captures for the per-app topology's tests: tcpdump -w in a namespace, the file parsed
 * here; an ICMP marker to the server brackets what a capture saw (perapp-topology.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nsExec, nsSpawn, type NsProcess } from '../helpers/netns.js';
import { ADDR } from './perapp-addr.js';

export interface Pkt {
  proto: 'tcp' | 'udp' | 'icmp' | number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
}

/** classic libpcap: Ethernet (1) or raw IP (101, 12, 14, 228) link types; IPv4 only */
export function parsePcap(b: Buffer): Pkt[] {
  if (b.length < 24) return [];
  const m = b.readUInt32LE(0);
  const le = m === 0xa1b2c3d4 || m === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error(`not a pcap file (magic ${m.toString(16)})`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const link = u32(20);
  if (![1, 12, 14, 101, 228].includes(link))
    throw new Error(`pcap link type ${link} not supported`);
  const out: Pkt[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const incl = u32(o + 8);
    const f = b.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    let ip = f;
    if (link === 1) {
      if (f.length < 14 || f.readUInt16BE(12) !== 0x0800) continue;
      ip = f.subarray(14);
    }
    if (ip.length < 20 || ip[0]! >> 4 !== 4) continue;
    const ihl = (ip[0]! & 0x0f) * 4;
    const p = ip[9]!;
    const src = `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
    const dst = `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`;
    if ((p === 6 || p === 17) && ip.length >= ihl + 4) {
      out.push({
        proto: p === 6 ? 'tcp' : 'udp',
        src,
        dst,
        sport: ip.readUInt16BE(ihl),
        dport: ip.readUInt16BE(ihl + 2),
      });
    } else out.push({ proto: p === 1 ? 'icmp' : p, src, dst });
  }
  return out;
}

export interface Capture {
  iface: string;
  file: string;
  /** stop tcpdump (its buffer flushed) and return the parsed packets */
  stop(): Promise<Pkt[]>;
}

const isMarker = (p: Pkt) => p.proto === 'icmp' && (p.dst === ADDR.server || p.src === ADDR.server);

/**
 * tcpdump -w on `iface` in `ns`; resolves once tcpdump is capturing. `--immediate-mode`:
 * libpcap otherwise hands packets over only when a ring block retires, so the last ones
 * before SIGINT are lost. `stop()` first sends markers (`ping -I iface` to the server, bound
 * to the device) until one is in the file, so every packet before it has been written
 * (marker packets are left out of the result); when awg routes the marker away, it waits.
 */
export async function startCapture(ns: string, iface: string, dir: string): Promise<Capture> {
  const file = join(dir, `${iface}-${randomBytes(3).toString('hex')}.pcap`);
  const proc: NsProcess = nsSpawn(ns, 'tcpdump', [
    '-i',
    iface,
    '-n',
    '-U',
    '--immediate-mode',
    '-s',
    '128',
    '-w',
    file,
  ]);
  const end = Date.now() + 20_000;
  while (!/listening on/.test(proc.output())) {
    if (proc.child.exitCode !== null)
      throw new Error(`tcpdump on ${iface} exited: ${proc.output()}`);
    if (Date.now() > end) throw new Error(`tcpdump on ${iface} did not start: ${proc.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const read = () => {
    try {
      return parsePcap(readFileSync(file));
    } catch {
      return [];
    }
  };
  return {
    iface,
    file,
    async stop() {
      if (proc.child.exitCode === null) {
        for (let i = 0; i < 5 && !read().some(isMarker); i++) {
          await nsExec(ns, 'ping', ['-n', '-q', '-c', '1', '-W', '1', '-I', iface, ADDR.server], {
            allowFail: true,
          });
          for (let j = 0; j < 10 && !read().some(isMarker); j++)
            await new Promise((r) => setTimeout(r, 50));
        }
        // awg's policy may route the marker elsewhere (full-tunnel mode re-routes it by mark);
        // then a generous pause: in immediate mode a packet reaches the file within microseconds
        if (!read().some(isMarker)) await new Promise((r) => setTimeout(r, 2000));
      }
      proc.child.kill('SIGINT');
      const t = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
      await proc.exited;
      clearTimeout(t);
      return read().filter((p) => !isMarker(p));
    },
  };
}

/** packets of the flows to/from the server's `port` (either direction) */
export function flowPackets(pkts: Pkt[], port: number): Pkt[] {
  return pkts.filter(
    (p) =>
      (p.dst === ADDR.server && p.dport === port) || (p.src === ADDR.server && p.sport === port),
  );
}
