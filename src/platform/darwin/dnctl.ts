/**
 * dummynet on macOS (`dnctl`, the traffic shaper behind PF's `dummynet` rules): command
 * lines, the `dnctl list` parser, and the numbering awg uses for its pipes and ports. Pure.
 * Tested on captures (test/fixtures/macos/dummynet/) and on dnctl's print formats, read in
 * its source (network_cmds `dnctl/dnctl.c`: list_pipes, print_flowset_parms, list_queues).
 *
 * Facts from that source and xnu (bsd/netinet/ip_dummynet.c), which decide what is built:
 * - `dnctl pipe N config …` creates pipe N or reconfigures it in place (packets queued in it
 *   stay); every parameter not given goes back to its default (bandwidth 0 = unlimited, delay
 *   0, queue 50 slots), so a config names them all.
 * - `bw` is parsed with strtoul into an int: at most 2147483647 bit/s (DN_MAX_BANDWIDTH); a
 *   leading 0 would read as octal, so the number is written plain, in bit/s.
 * - `queue NKbytes` is a queue of N×1024 bytes (at most 1 MB); listed as `N KB` from 8 KB, as
 *   `N×1024 B` below.
 * - `dnctl list` prints each pipe as `%05d: <bw> %4d ms  %3d sl.|<n> KB|<n> B[plr %f] <q>
 *   queues (<b> buckets) droptail`, the bandwidth as `%7.3f Mbit/s` (≥ 1000000), `Kbit/s`
 *   (≥ 1000) or `bit/s `, `unlimited` for 0; then a `mask:` line and, with flows, a `BKT`
 *   header and one row per flow (IPv4 flows under a second `mask:`/`BKT` pair, IPv6 flows
 *   under their own header). The printed rate is rounded to three decimals at its unit.
 * - `dnctl pipe delete N` of a pipe that does not exist: `dnctl: rule N:
 *   setsockopt(IP_DUMMYNET_DEL): Invalid argument`, exit 1 (xnu delete_pipe: EINVAL).
 * - dnctl opens a raw socket first: without root `dnctl: socket: Operation not permitted`.
 */

/** awg's pipes: N = DN_PIPE_BASE + 2·(n − 1) + (ingress ? 1 : 0) for slot n (1..96) */
export const DN_PIPE_BASE = 45056;
/** slots 1..32: the shaping classes (rules, runtime limits); 33..96: the tunnels' own limits */
export const DN_TUNNEL_SLOT_BASE = 33;
export const DN_MAX_SLOT = 96;
/** dummynet's bandwidth is a C int of bit/s */
export const DN_MAX_BANDWIDTH = 2_147_483_647;
/** queue: 10 ms at the rate, at least two full packets, at most dnctl's 1 MB */
export const DN_QUEUE_MS = 10;
export const DN_QUEUE_MIN_BYTES = 3000;
export const DN_QUEUE_MAX_KB = 1024;

/**
 * The local ports of class n's connections on macOS: 32 × 128 ports in 45056-49151, just
 * below macOS's ephemeral range (net.inet.ip.portrange.first, 49152 by default), so no
 * program's ephemeral socket falls into them. (Linux's classes use 61440-65535, which is
 * inside macOS's ephemeral range; model/shaping.ts.)
 */
export const DARWIN_SHAPE_PORT_BASE = 45056;
export const DARWIN_SHAPE_PORTS_PER_CLASS = 128;

export function darwinClassPorts(n: number): [number, number] {
  const lo = DARWIN_SHAPE_PORT_BASE + (n - 1) * DARWIN_SHAPE_PORTS_PER_CLASS;
  return [lo, lo + DARWIN_SHAPE_PORTS_PER_CLASS - 1];
}

export type Direction = 'egress' | 'ingress';

export function dnPipeNumber(slot: number, direction: Direction): number {
  if (!Number.isInteger(slot) || slot < 1 || slot > DN_MAX_SLOT)
    throw new Error(`dummynet slot ${slot} out of 1..${DN_MAX_SLOT}`);
  return DN_PIPE_BASE + 2 * (slot - 1) + (direction === 'ingress' ? 1 : 0);
}

/** every pipe number awg may use */
export function isOurPipeNumber(pipe: number): boolean {
  return pipe >= DN_PIPE_BASE && pipe < DN_PIPE_BASE + 2 * DN_MAX_SLOT;
}

/** the queue (KB) for a rate: 10 ms of it, at least two full packets, at most 1 MB */
export function dnQueueKB(rate: number): number {
  const bytes = Math.max(DN_QUEUE_MIN_BYTES, (rate * DN_QUEUE_MS) / 1000 / 8);
  return Math.min(DN_QUEUE_MAX_KB, Math.ceil(bytes / 1024));
}

export interface DnPipeConfig {
  pipe: number;
  /** bit/s, 1..DN_MAX_BANDWIDTH */
  bandwidth: number;
  queueKB: number;
}

export const dnctlArgs = {
  config: (p: DnPipeConfig): string[] => [
    'pipe',
    String(p.pipe),
    'config',
    'bw',
    `${p.bandwidth}bit/s`,
    'queue',
    `${p.queueKB}Kbytes`,
  ],
  delete: (pipe: number): string[] => ['pipe', 'delete', String(pipe)],
  list: (): string[] => ['list'],
};

/** the bandwidth as `dnctl list` prints it */
export function formatDnBandwidth(bits: number): string {
  if (bits === 0) return 'unlimited';
  if (bits >= 1_000_000) return `${(bits / 1_000_000).toFixed(3)} Mbit/s`;
  if (bits >= 1000) return `${(bits / 1000).toFixed(3)} Kbit/s`;
  return `${bits.toFixed(3)} bit/s`;
}

/** a byte-sized queue as `dnctl list` prints it */
export function formatDnQueueBytes(bytes: number): string {
  return bytes >= 8192 ? `${Math.floor(bytes / 1024)} KB` : `${bytes} B`;
}

export interface DnFlow {
  proto: string;
  src: string;
  dst: string;
  packets: number;
  bytes: number;
  drops: number;
}

export interface DnPipe {
  pipe: number;
  /** as printed (`20.000 Mbit/s`, `unlimited`, an interface name) */
  bandwidthText: string;
  /** bit/s read back from the print (rounded there to three decimals at its unit); undefined for an interface clock */
  bandwidth?: number;
  delayMs: number;
  /** as printed: `50 sl.`, `24 KB`, `3072 B` */
  queueText: string;
  plr?: number;
  queues: number;
  buckets: number;
  flows: DnFlow[];
}

/** `unit` multipliers of the printed bandwidth */
const BW_UNIT: Record<string, number> = { 'Mbit/s': 1e6, 'Kbit/s': 1e3, 'bit/s': 1 };

const PIPE_RE =
  /^(\d+):\s+(unlimited|\d+\.\d+ (?:Mbit\/s|Kbit\/s|bit\/s)|\S+)\s+(\d+) ms\s+(\d+ sl\.|\d+ KB|\d+ B)(?:plr (\d+\.\d+))?\s+(\d+) queues \((\d+) buckets\)(?:\s+droptail)?$/;
/** IPv4 flows: `BKT Prot src/port dst/port Tot_pkt bytes Pkt Byte Drp`; IPv6 flows add a flow id after the protocol */
const FLOW_RE =
  /^\s*\d+\s+(\S+)\s+(?:\d+\s+)?(\S+\/\d+)\s+(\S+\/\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s+(\d+)$/;

/**
 * `dnctl list` (or `show`): every pipe with its parameters and flows. Queue (`q00001:`)
 * blocks, mask and header lines are passed over; an unknown line is an error (a format this
 * parser was not written for must not read as "no pipes").
 */
export function parseDnctlList(text: string): DnPipe[] {
  const out: DnPipe[] = [];
  let cur: DnPipe | undefined;
  let inQueue = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+$/, '');
    if (!line.trim()) continue;
    const m = PIPE_RE.exec(line);
    if (m) {
      const [num, unit] = m[2]!.split(' ') as [string, string | undefined];
      const bandwidth =
        m[2] === 'unlimited'
          ? 0
          : unit && BW_UNIT[unit] !== undefined
            ? Math.round(Number(num) * BW_UNIT[unit])
            : undefined;
      cur = {
        pipe: Number(m[1]),
        bandwidthText: m[2]!,
        ...(bandwidth !== undefined ? { bandwidth } : {}),
        delayMs: Number(m[3]),
        queueText: m[4]!,
        ...(m[5] !== undefined ? { plr: Number(m[5]) } : {}),
        queues: Number(m[6]),
        buckets: Number(m[7]),
        flows: [],
      };
      out.push(cur);
      inQueue = false;
      continue;
    }
    if (/^q\d+: weight /.test(line)) {
      inQueue = true;
      cur = undefined;
      continue;
    }
    if (/^\s*mask: /.test(line) || /^BKT /.test(line) || /^\s+G?RED /.test(line)) continue;
    const f = FLOW_RE.exec(line);
    if (f && (cur || inQueue)) {
      cur?.flows.push({
        proto: f[1]!,
        src: f[2]!,
        dst: f[3]!,
        packets: Number(f[4]),
        bytes: Number(f[5]),
        drops: Number(f[6]),
      });
      continue;
    }
    throw new Error(`dnctl list: a line this parser does not know: ${JSON.stringify(line)}`);
  }
  return out;
}

/** what a failed dnctl said (its stderr), classified */
export function parseDnctlError(
  stderr: string,
): { kind: 'permission' | 'no-such-pipe' | 'other'; message: string } | undefined {
  const msg = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');
  if (!msg) return undefined;
  if (/Operation not permitted|Permission denied/.test(msg))
    return { kind: 'permission', message: msg };
  if (/setsockopt\(IP_DUMMYNET_DEL\): Invalid argument/.test(msg))
    return { kind: 'no-such-pipe', message: msg };
  return { kind: 'other', message: msg };
}
