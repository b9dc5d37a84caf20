/**
 * tcpdump on the leak tests' client underlay (or another client device) and the pcap
 * classifier: which egress frames break the kill switch's contract on the wire.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nsExec, nsSpawn } from '../helpers/netns.js';
import { isTransportTrain } from '../helpers/wire-classify.js';
import { sleep, waitOutput } from './leak-cli.js';
import { CLIENT_TUN, ENDPOINT, UPLINK, V6, WG_PORT, type Topo } from './leak-topology.js';

export interface Capture {
  stop(): Promise<Buffer>;
}

/** tcpdump on the client's underlay, or on another client device (`iface`, e.g. the TUN) */
export async function capture(t: Topo, dir: string, iface = UPLINK): Promise<Capture> {
  const file = join(dir, `cap-${randomBytes(3).toString('hex')}.pcap`);
  // -U: write each packet at once; -Z root: keep writing into our root-only temp dir
  const p = nsSpawn(t.client, 'tcpdump', [
    '-i',
    iface,
    '-n',
    '-U',
    '--immediate-mode',
    '-Z',
    'root',
    '-s',
    '0',
    '-w',
    file,
  ]);
  await waitOutput(p, 'listening on', 'tcpdump');
  return {
    async stop() {
      // let the last packets reach the file
      await sleep(300);
      p.child.kill('SIGINT');
      await p.exited;
      return readFileSync(file);
    },
  };
}

export interface Pkt {
  /** frame from the client (egress) */
  out: boolean;
  kind: 'arp' | 'ipv4' | 'ipv6' | 'other';
  src?: string;
  dst?: string;
  proto?: number;
  sport?: number;
  dport?: number;
  icmpType?: number;
  /** TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10) */
  tcpFlags?: number;
  payload?: Buffer;
  text: string;
  /** capture time, seconds since the epoch */
  time?: number;
}

const ip4 = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const ip6 = (b: Buffer, o: number) => {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(o + i).toString(16));
  return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
};
const mac = (b: Buffer, o: number) =>
  [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

const RAW_LINKTYPES = new Set([12, 101]);
const CLIENT_TUN_ADDRS = new Set([CLIENT_TUN, V6.clientTun]);

/**
 * classic libpcap, Ethernet or raw IP (a TUN: a frame is the client's egress when its source
 * is the client's tunnel address); IPv4/IPv6 with TCP, UDP, ICMP, ICMPv6 (hop-by-hop skipped)
 */
export function parsePcap(b: Buffer, clientMac: string): Pkt[] {
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error(`not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const nano = (le ? magic : b.readUInt32BE(0)) === 0xa1b23c4d;
  const raw = RAW_LINKTYPES.has(u32(20));
  if (u32(20) !== 1 && !raw) throw new Error(`link type ${u32(20)}, expected Ethernet or raw IP`);
  const out: Pkt[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const incl = u32(o + 8);
    const time = u32(o) + u32(o + 4) / (nano ? 1e9 : 1e6);
    let f = b.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    if (raw) {
      // give it an Ethernet header: the parsing below is the same
      if (f.length < 1) continue;
      const hdr = Buffer.alloc(14);
      hdr.writeUInt16BE(f[0]! >> 4 === 6 ? 0x86dd : 0x0800, 12);
      f = Buffer.concat([hdr, f]);
    }
    if (f.length < 14) continue;
    let isOut = mac(f, 6) === clientMac.toLowerCase();
    const et = f.readUInt16BE(12);
    if (raw)
      isOut =
        et === 0x0800
          ? CLIENT_TUN_ADDRS.has(ip4(f, 26))
          : f.length >= 54 && CLIENT_TUN_ADDRS.has(ip6(f, 22));
    const dir = isOut ? 'out' : 'in';
    if (et === 0x0806) {
      out.push({ out: isOut, kind: 'arp', text: `${dir} arp` });
      continue;
    }
    let p: Pkt;
    let l4: Buffer;
    if (et === 0x0800 && f.length >= 34) {
      const ip = f.subarray(14);
      const ihl = (ip[0]! & 0x0f) * 4;
      p = {
        out: isOut,
        kind: 'ipv4',
        src: ip4(ip, 12),
        dst: ip4(ip, 16),
        proto: ip[9]!,
        text: '',
        time,
      };
      l4 = ip.subarray(ihl, Math.min(ip.length, ip.readUInt16BE(2)));
    } else if (et === 0x86dd && f.length >= 54) {
      const ip = f.subarray(14);
      let nh = ip[6]!;
      let off = 40;
      while ((nh === 0 || nh === 43 || nh === 60) && off + 8 <= ip.length) {
        nh = ip[off]!;
        off += (ip[off + 1]! + 1) * 8;
      }
      p = {
        out: isOut,
        kind: 'ipv6',
        src: ip6(ip, 8),
        dst: ip6(ip, 24),
        proto: nh,
        text: '',
        time,
      };
      l4 = ip.subarray(off);
    } else {
      out.push({ out: isOut, kind: 'other', text: `${dir} ethertype 0x${et.toString(16)}` });
      continue;
    }
    if ((p.proto === 6 || p.proto === 17) && l4.length >= 4) {
      p.sport = l4.readUInt16BE(0);
      p.dport = l4.readUInt16BE(2);
      const hl = p.proto === 6 ? (l4.length >= 13 ? (l4[12]! >> 4) * 4 : 20) : 8;
      if (p.proto === 6 && l4.length >= 14) p.tcpFlags = l4[13]!;
      p.payload = Buffer.from(l4.subarray(hl));
    } else if ((p.proto === 1 || p.proto === 58) && l4.length >= 1) p.icmpType = l4[0]!;
    const pr =
      p.proto === 6
        ? 'tcp'
        : p.proto === 17
          ? 'udp'
          : p.proto === 1
            ? 'icmp'
            : p.proto === 58
              ? 'icmp6'
              : `proto ${p.proto}`;
    const flags =
      p.tcpFlags === undefined
        ? ''
        : ` [${[...'FSRPAU'].filter((_, i) => p.tcpFlags! & (1 << i)).join('')}]`;
    p.text = `${dir} ${pr} ${p.src}${p.sport !== undefined ? `:${p.sport}` : ''} > ${p.dst}${p.dport !== undefined ? `:${p.dport}` : ''}${flags}${p.icmpType !== undefined ? ` type ${p.icmpType}` : ''}${p.payload?.length ? ` len ${p.payload.length}` : ''}`;
    out.push(p);
  }
  return out;
}

const LAN4 = [
  [10, 8],
  [(172 << 8) | 16, 12],
  [(192 << 8) | 168, 16],
  [(169 << 8) | 254, 16],
  [224, 4],
] as const;

function inLan4(a: string): boolean {
  if (a === '255.255.255.255') return true;
  const n = a.split('.').map(Number);
  const v = ((n[0]! << 24) | (n[1]! << 16) | (n[2]! << 8) | n[3]!) >>> 0;
  return LAN4.some(([p, len]) => {
    const base = (len <= 8 ? p << 24 : len <= 16 ? p << 16 : p) >>> 0;
    const mask = (0xffffffff << (32 - len)) >>> 0;
    return (v & mask) >>> 0 === (base & mask) >>> 0;
  });
}
const inLan6 = (a: string) => /^(f[cd]|fe[89ab]|ff)/i.test(a);

/** a WireGuard message: type 1–4 then three zero bytes, sized as the protocol says */
function isWireGuard(p: Pkt): boolean {
  const b = p.payload;
  if (!b || b.length < 32) return false;
  const t = b.readUInt32LE(0);
  if (t === 1) return b.length === 148;
  if (t === 2) return b.length === 92;
  if (t === 3) return b.length === 64;
  return t === 4 && isTransportTrain(b);
}

export interface Verdict {
  /** egress frames that are not allowed (the leaks), as text */
  leaks: string[];
  /** egress WireGuard datagrams to the endpoint */
  wireguard: number;
  lan: number;
  all: Pkt[];
}

/**
 * The kill switch contract on the wire: every IP packet the client sends on its underlay is
 * encrypted WireGuard to the endpoint (a tunnel's port of it: `wgPorts`), DHCP, neighbour discovery (link-layer resolution like
 * ARP), or — with `allowLan` — to a private/link-local/multicast destination. Destinations in
 * `never` are leaks even under allowLan (a tunnelled app's server), and so is any payload that
 * carries one of the `secrets` (an app's tag in the clear).
 */
export function classify(
  pkts: Pkt[],
  o: {
    allowLan?: boolean;
    never?: string[];
    secrets?: string[];
    /** the endpoint's WireGuard ports of every tunnel the configs have (default: WG_PORT) */
    wgPorts?: readonly number[];
  } = {},
): Verdict {
  const wgPorts = o.wgPorts ?? [WG_PORT];
  const v: Verdict = { leaks: [], wireguard: 0, lan: 0, all: pkts };
  for (const p of pkts) {
    if (!p.out || p.kind === 'arp') continue;
    if (p.kind === 'other') {
      v.leaks.push(p.text);
      continue;
    }
    const clear = (o.secrets ?? []).some((s) => p.payload?.includes(s));
    if (
      p.proto === 17 &&
      p.dst === ENDPOINT &&
      wgPorts.includes(p.dport!) &&
      isWireGuard(p) &&
      !clear
    ) {
      v.wireguard++;
      continue;
    }
    if (p.proto === 17 && p.sport === 68 && p.dport === 67) continue;
    if (p.proto === 17 && p.sport === 546 && p.dport === 547) continue;
    if (p.proto === 58 && p.icmpType !== undefined && p.icmpType >= 133 && p.icmpType <= 136)
      continue;
    const lan = p.kind === 'ipv4' ? inLan4(p.dst!) : inLan6(p.dst!);
    if (o.allowLan && lan && !clear && !(o.never ?? []).includes(p.dst!)) {
      v.lan++;
      continue;
    }
    v.leaks.push(p.text);
  }
  return v;
}

/** the nft table and routes, for failure messages */
export async function diag(t: Topo): Promise<string> {
  const nft = await nsExec(t.client, 'nft', ['list', 'table', 'inet', 'awg'], { allowFail: true });
  const routes = await nsExec(t.client, 'ip', ['route', 'show', 'table', 'all'], {
    allowFail: true,
  });
  const rules = await nsExec(t.client, 'ip', ['rule'], { allowFail: true });
  return [nft.stdout || nft.stderr, rules.stdout, routes.stdout].join('\n----\n');
}
