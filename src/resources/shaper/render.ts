/**
 * ShaperSpec → the tc commands of its tree (docs/limits.md). Pure.
 *
 * One tree per device and direction:
 * - the HTB: on the device itself when it is a TUN of ours (egress, no `ifb`), else on the
 *   ifb. `default 0` leaves unclassified traffic unshaped (HTB's direct queue); a tunnel
 *   limit (`total`) adds the parent class 1:1 with the tunnel's rate, every class below it,
 *   and the rest in 1:2 (`default 2`). Each class has a short bfifo (leafLimit: 10 ms at its
 *   rate, at least room for whole GSO packets), so a limited flow waits in a short queue
 *   rather than a long one (no bufferbloat).
 * - egress classifies by skb priority (set by our nft table; HTB takes a priority that names
 *   a leaf class as the class), ingress by the connection's local port (u32 dport → classid
 *   on the ifb), since nothing restores a mark at ingress on kernels without act_connmark.
 * - the redirect: a clsact on the device sends the classes' port ranges (egress: source
 *   port, ingress: destination port; IPv4 and IPv6) to the ifb; with an ingress tunnel limit
 *   everything arriving on the TUN goes there.
 * Our redirect filters carry an action cookie (SHAPER_COOKIE): the only marker tc keeps on a
 * clsact, which is how a clsact of ours is told from one the user made. Preferences are ours
 * in PREF_FIRST…PREF_LAST.
 */
import type { ShaperClass, ShaperSpec } from '../../model/resources.js';
import { classMinor, REST_MINOR, SHAPE_PORT_MASK, TOTAL_MINOR } from '../../model/shaping.js';
import { MIN_RATE } from '../../config/rate.js';

/** `awg:managed` in hex: the cookie of every redirect filter of ours */
export const SHAPER_COOKIE = Buffer.from('awg:managed').toString('hex');

/**
 * Filter preferences awg uses: class n's IPv4 filter at PREF_FIRST + 2n (egress) or
 * PREF_FIRST + 0x80 + 2n (ingress), IPv6 one above. The two sides of a clsact must not share
 * a preference: u32 keeps the hash tables of one qdisc together and lists every table of a
 * preference under either side.
 */
export const PREF_FIRST = 0xa700;
/** the redirect of everything (an ingress tunnel limit) */
export const PREF_ALL = 0xa7ff;
export const PREF_LAST = PREF_ALL;

export function prefOf(n: number, family: 4 | 6, direction: 'egress' | 'ingress'): number {
  return PREF_FIRST + (direction === 'ingress' ? 0x80 : 0) + 2 * n + (family === 6 ? 1 : 0);
}

/** an Ethernet frame of 1500 bytes */
const FRAME = 1514;
/** a leaf queue holds this much time at its class's rate… */
const QUEUE_SECONDS = 0.01;
/**
 * …but at least one GSO packet of 64 KiB and a frame (egress), two (ingress). HTB cannot
 * segment, and a bfifo drops whatever does not fit whole: a smaller queue drops every TSO
 * burst of a local TCP sender and the flow collapses to a fraction of its limit (measured:
 * 0.25 Mbit/s of 20 through a TUN with a 25 kB queue). At ingress the remote sender's bursts
 * arrive GRO-merged into packets of up to 64 KiB with nothing holding the sender back (no
 * TCP small queues as for a local socket): one such packet's room lost 5-10 % of the rate,
 * two's lose < 1 % (docs/limits.md). Below ≈ 57 Mbit/s (egress), 114 Mbit/s (ingress) this
 * floor, not 10 ms, sets the queue: 29 ms at 20 Mbit/s up, 23 ms at 50 Mbit/s down.
 */
const GSO_MAX = 65_536;
/**
 * what a queue counts for one such packet: qdisc_pkt_len adds every segment's headers (IPv6
 * + TCP with timestamps + Ethernet: 86 bytes) to the GSO packet's length; ≤ 55 segments at
 * the smallest MSS an IPv6 path (MTU ≥ 1280) allows. Without them an IPv6 TCP upload through
 * a TUN lost whole TSO packets (measured: 0.7-10 Mbit/s of 20).
 */
const GSO_QUEUED = GSO_MAX + 56 * 86;

/** bytes of a class's bfifo */
export function leafLimit(rate: number, direction: 'egress' | 'ingress'): number {
  const floor = (direction === 'ingress' ? 2 : 1) * GSO_QUEUED + FRAME;
  return Math.max(floor, Math.round((rate / 8) * QUEUE_SECONDS));
}

/** HTB quantum (bytes a class may send per round when borrowing): 1 ms at its rate, ≥ a frame */
export function quantumOf(rate: number): number {
  return Math.min(200_000, Math.max(FRAME, Math.round(rate / 8 / 1000)));
}

/** HTB burst and cburst (bytes): 1 ms at its rate, ≥ a frame (tc's default overflows above ~30 Gbit/s) */
export function burstOf(rate: number): number {
  return Math.max(FRAME + 86, Math.round(rate / 8 / 1000));
}

export const hex = (n: number): string => n.toString(16);

/** where the HTB of a spec lives */
export function htbDevice(spec: Pick<ShaperSpec, 'device' | 'ifb'>): string {
  return spec.ifb ?? spec.device;
}

/** a class's rate and ceiling under the spec's tunnel limit */
export function classRate(spec: Pick<ShaperSpec, 'total'>, c: Pick<ShaperClass, 'rate'>): number {
  return spec.total !== undefined ? Math.min(c.rate, spec.total) : c.rate;
}

/** the rest's guaranteed rate under a tunnel limit: what the classes leave, at least MIN_RATE */
export function restRate(spec: Pick<ShaperSpec, 'total' | 'classes'>): number {
  const total = spec.total ?? 0;
  const used = spec.classes.reduce((s, c) => s + classRate(spec, c), 0);
  return Math.max(MIN_RATE, Math.round((total - used) / 8) * 8);
}

function htbClass(dev: string, parent: string, minor: number, rate: number, ceil: number): string {
  return `class add dev ${dev} parent ${parent} classid 1:${hex(minor)} htb rate ${rate}bit ceil ${ceil}bit burst ${burstOf(ceil)} cburst ${burstOf(ceil)} quantum ${quantumOf(rate)}`;
}

function leaf(spec: ShaperSpec, minor: number, rate: number): string {
  return `qdisc add dev ${htbDevice(spec)} parent 1:${hex(minor)} handle ${hex(minor)}: bfifo limit ${leafLimit(rate, spec.direction)}`;
}

/** `match ip sport|dport` (and the ip6 twin) of class n's port range */
function portMatch(family: 4 | 6, dir: 'sport' | 'dport', ports: [number, number]): string {
  return `u32 match ${family === 4 ? 'ip' : 'ip6'} ${dir} ${ports[0]} 0x${hex(SHAPE_PORT_MASK)}`;
}

const PROTOCOL = { 4: 'ip', 6: 'ipv6' } as const;

/** The HTB and its classes (and, at ingress, its port filters), on a device with no root qdisc of ours. */
export function htbCommands(spec: ShaperSpec): string[] {
  const dev = htbDevice(spec);
  const out = [
    `qdisc add dev ${dev} root handle 1: htb default ${spec.total !== undefined ? REST_MINOR : 0}`,
  ];
  let parent = '1:';
  if (spec.total !== undefined) {
    out.push(htbClass(dev, '1:', TOTAL_MINOR, spec.total, spec.total));
    parent = `1:${hex(TOTAL_MINOR)}`;
    out.push(htbClass(dev, parent, REST_MINOR, restRate(spec), spec.total));
    out.push(leaf(spec, REST_MINOR, spec.total));
  }
  for (const c of spec.classes) {
    const rate = classRate(spec, c);
    const minor = classMinor(c.n);
    out.push(htbClass(dev, parent, minor, rate, rate));
    out.push(leaf(spec, minor, rate));
    if (spec.direction === 'ingress')
      for (const f of [4, 6] as const)
        out.push(
          `filter add dev ${dev} parent 1: pref ${prefOf(c.n, f, 'ingress')} protocol ${PROTOCOL[f]} ${portMatch(f, 'dport', c.ports)} classid 1:${hex(minor)}`,
        );
  }
  return out;
}

/** The redirect filters on the device's clsact side (none for a TUN's own egress HTB). */
export function redirectCommands(spec: ShaperSpec): string[] {
  if (spec.ifb === undefined) return [];
  const to = `action mirred egress redirect dev ${spec.ifb} cookie ${SHAPER_COOKIE}`;
  if (spec.direction === 'ingress' && spec.total !== undefined)
    return [
      `filter add dev ${spec.device} ingress pref ${PREF_ALL} protocol all u32 match u32 0 0 ${to}`,
    ];
  const dir = spec.direction === 'egress' ? 'sport' : 'dport';
  return spec.classes.flatMap((c) =>
    ([4, 6] as const).map(
      (f) =>
        `filter add dev ${spec.device} ${spec.direction} pref ${prefOf(c.n, f, spec.direction)} protocol ${PROTOCOL[f]} ${portMatch(f, dir, c.ports)} ${to}`,
    ),
  );
}
