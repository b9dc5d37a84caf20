/**
 * Shared harness of the Step 16 benchmarks (top.bench.ts, limit.bench.ts): two namespaces
 * joined by a veth, processes started inside a namespace AND a cgroup v2 of their own (so
 * their CPU, exited children included, is read exactly from the cgroup's `cpu.stat`), the
 * machine's CPU from /proc/stat, iperf3 runs, and a holder of many mostly idle TCP
 * connections plus a few UDP flows.
 *
 * CPU figures: cgroup `usage_usec` is the scheduler's own runtime (ns-exact, not tick-sampled:
 * this kernel has no IRQ time accounting, so softirq work done in a task's context is part
 * of it). /proc/PID/stat utime+stime(+cutime+cstime) is also read as a cross-check: it is
 * tick-sampled (4 ms at HZ 250), biased for a process that wakes briefly once a second.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import {
  cgroup2Mount,
  createNetns,
  destroyNetns,
  netnsPath,
  nsExec,
  vethPair,
} from '../test/helpers/netns.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// topology

export interface Pair {
  /** the measured side: the monitor, the limiter, the iperf3 client and the connection holder */
  a: string;
  /** the far side: servers */
  b: string;
  ifA: string;
  ifB: string;
  addrA: string;
  addrB: string;
  addrA6: string;
  addrB6: string;
}

/** Two namespaces `awgt-<prefix>{a,b}-<hex>` and a veth between them (IPv4 and IPv6). */
export async function createPair(prefix: string, subnet: number): Promise<Pair> {
  const a = await createNetns(`${prefix}a`);
  const b = await createNetns(`${prefix}b`);
  const addrA = `10.200.${subnet}.1`;
  const addrB = `10.200.${subnet}.2`;
  const addrA6 = `fd00:200::${subnet.toString(16)}:1`;
  const addrB6 = `fd00:200::${subnet.toString(16)}:2`;
  const v = await vethPair(a, b, {
    addrA: [`${addrA}/24`, `${addrA6}/112`],
    addrB: [`${addrB}/24`, `${addrB6}/112`],
  });
  return { a, b, ifA: v.ifA, ifB: v.ifB, addrA, addrB, addrA6, addrB6 };
}

export async function destroyPair(p: Pair): Promise<void> {
  await destroyNetns(p.a);
  await destroyNetns(p.b);
}

/** Makes conntrack track `ns`'s flows (a `ct state` rule) and count bytes (nf_conntrack_acct). */
export async function conntrackOn(ns: string): Promise<void> {
  await nsExec(ns, 'nft', ['-f', '-'], {
    input:
      'table inet awgt_bench_ct {\n' +
      '\tchain ct_out {\n\t\ttype filter hook output priority 0; policy accept;\n\t\tct state new counter\n\t}\n' +
      '\tchain ct_in {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tct state new counter\n\t}\n' +
      '}\n',
  });
  await nsExec(ns, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1']);
}

// ---------------------------------------------------------------------------------------
// CPU

const liveGroups = new Set<CpuGroups>();
// an interrupted run: no process of ours outlives it (the namespaces' own hook removes them)
process.once('exit', () => {
  for (const g of liveGroups) g.kill();
});

/** A cgroup v2 directory of the bench: `<mount>/awgt-bench-<tag>` with one child per subject. */
export class CpuGroups {
  readonly root: string;
  private readonly mount: string;
  /** the root's path as nft's `socket cgroupv2` names it, and its level */
  readonly nftRoot: string;
  private readonly made: string[] = [];

  constructor(tag: string) {
    const mount = cgroup2Mount();
    if (!mount) throw new Error('no cgroup v2 mount');
    this.mount = mount;
    this.root = join(mount, `awgt-bench-${tag}-${randomBytes(3).toString('hex')}`);
    // nft resolves paths below /sys/fs/cgroup (hybrid hosts: `unified/…`)
    this.nftRoot = this.root.replace(/^\/sys\/fs\/cgroup\/?/, '');
    mkdirSync(this.root);
    this.made.push(this.root);
    liveGroups.add(this);
  }

  /** A child group `name`; its path. */
  group(name: string): string {
    const g = join(this.root, name);
    if (!existsSync(g)) {
      mkdirSync(g);
      this.made.push(g);
    }
    return g;
  }

  /** Depth of group `name` below the cgroup v2 root (for `socket cgroupv2 level N`). */
  level(name: string): number {
    return relative(this.mount, join(this.root, name)).split('/').length;
  }

  /** Kills every process left in our groups (best effort, synchronous: the exit hook's part). */
  kill(): void {
    for (const g of this.made)
      try {
        writeFileSync(join(g, 'cgroup.kill'), '1');
      } catch {
        /* gone */
      }
  }

  /** Kills every process left in our groups and removes them (children first). */
  async destroy(): Promise<void> {
    liveGroups.delete(this);
    for (const g of [...this.made].reverse()) {
      try {
        writeFileSync(join(g, 'cgroup.kill'), '1');
      } catch {
        /* gone */
      }
      for (let i = 0; i < 100; i++) {
        try {
          rmdirSync(g);
          break;
        } catch {
          await sleep(20);
        }
      }
    }
  }
}

/** CPU time used by the processes of cgroup `dir` (exited ones included), in seconds. */
export function groupCpuSeconds(dir: string): number {
  const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'));
  if (!m) throw new Error(`no usage_usec in ${dir}/cpu.stat`);
  return Number(m[1]) / 1e6;
}

const CLK_TCK = 100; // USER_HZ: the unit of /proc/*/stat and /proc/stat on Linux

/** utime+stime (+cutime+cstime: waited-for children) of `pid`, seconds; NaN once it is gone. */
export function procCpuSeconds(pid: number): number {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const s = st.slice(st.lastIndexOf(')') + 2).split(' ');
    // fields 14–17 of stat(5), counted from the state field (3) here
    return (Number(s[11]) + Number(s[12]) + Number(s[13]) + Number(s[14])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/**
 * CPU time of the kernel's softirq threads (ksoftirqd/N), seconds, exact (schedstat): network
 * work the kernel defers there under load runs in no cgroup of ours.
 */
export function ksoftirqdSeconds(): number {
  let sum = 0;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (!readFileSync(`/proc/${p}/comm`, 'utf8').startsWith('ksoftirqd/')) continue;
      sum += Number(readFileSync(`/proc/${p}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
    } catch {
      /* gone */
    }
  }
  return sum;
}

/** The machine's CPU from /proc/stat: busy (everything but idle and iowait) and total, seconds. */
export function systemCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = v as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / CLK_TCK, total: (busy + idle + iowait) / CLK_TCK };
}

// ---------------------------------------------------------------------------------------
// processes inside a namespace and a cgroup

export interface Subject {
  name: string;
  group: string;
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** stdout then stderr */
  output(): string;
  exited: Promise<number>;
}

/**
 * Starts `cmd args` inside namespace `ns` and cgroup `group` (the shell writes itself into the
 * group, then execs nsenter, which execs the command: one pid throughout).
 */
export function spawnIn(
  name: string,
  ns: string,
  group: string,
  cmd: string,
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    stdout?: 'pipe' | 'ignore';
    /** keep only the last this many characters of stdout (a child that prints a lot) */
    tail?: number;
  } = {},
): Subject {
  const child = spawn(
    'sh',
    [
      '-c',
      'echo $$ > "$0/cgroup.procs" && exec "$@"',
      group,
      'nsenter',
      `--net=${netnsPath(ns)}`,
      '--',
      cmd,
      ...args,
    ],
    { stdio: ['ignore', opts.stdout ?? 'pipe', 'pipe'], env: opts.env ?? process.env },
  );
  let out = '';
  let err = '';
  const tail = opts.tail ?? Infinity;
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.length > 2 * tail) out = out.slice(-tail);
  });
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  return {
    name,
    group,
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    output: () => out + err,
    exited,
  };
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(s: Subject, graceMs = 2000): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  s.child.kill('SIGTERM');
  const t = setTimeout(() => s.child.kill('SIGKILL'), graceMs);
  await s.exited;
  clearTimeout(t);
}

/** Resolves when `s`'s output contains `marker`; rejects if it exits first or after `ms`. */
export async function waitOutput(
  s: Subject,
  marker: string,
  stream: 'stdout' | 'stderr' | 'both' = 'both',
  ms = 60_000,
): Promise<void> {
  const end = Date.now() + ms;
  const text = stream === 'both' ? s.output : stream === 'stdout' ? s.stdout : s.stderr;
  while (!text().includes(marker)) {
    if (s.child.exitCode !== null || s.child.signalCode !== null)
      throw new Error(`${s.name} exited before "${marker}": ${s.output().slice(-2000)}`);
    if (Date.now() > end) throw new Error(`${s.name}: no "${marker}" in ${ms} ms`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------
// many connections

const SERVER = `
const net = require('node:net'), dgram = require('node:dgram');
const [port, a4, a6] = process.argv.slice(1);
let n = 0;
for (const host of [a4, a6]) {
  net.createServer((s) => { n++; s.on('data', (d) => s.write(d)); s.on('error', () => {}); })
    .listen({ port: +port, host, backlog: 4096 });
  const u = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  u.on('message', (m, r) => u.send(m, r.port, r.address));
  u.bind(+port + 1, host);
}
setTimeout(() => console.log('listening'), 200);
`;

const CLIENT = `
const net = require('node:net'), dgram = require('node:dgram');
const [port, a4, a6, tcpN, udpN, activeN] = process.argv.slice(1).map((x, i) => (i === 1 || i === 2 ? x : +x));
const socks = []; const udp = [];
let up = 0, i = 0;
const payload = Buffer.alloc(64, 120);
function open() {
  // in batches: a SYN burst of 1,000 would overflow the accept queue's SYN backlog
  for (let k = 0; k < 50 && i < tcpN; k++, i++) {
    const host = i % 10 === 9 ? a6 : a4;
    const s = net.connect(port, host, () => { if (++up === tcpN) ready(); });
    s.on('error', (e) => { console.error('tcp', e.message); process.exit(1); });
    s.on('data', () => {});
    socks.push(s);
  }
  if (i < tcpN) setTimeout(open, 20);
}
function ready() {
  for (let k = 0; k < udpN; k++) {
    const host = k % 2 ? a6 : a4;
    const u = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    u.connect(port + 1, host, () => u.send(payload));
    u.on('message', () => {});
    udp.push(u);
  }
  // mostly idle: each second \`activeN\` TCP connections (round robin) and every UDP flow
  // send 64 bytes, echoed back
  let rr = 0;
  setInterval(() => {
    for (let k = 0; k < activeN; k++) socks[rr++ % socks.length].write(payload);
    for (const u of udp) u.send(payload);
  }, 1000);
  console.log('held ' + socks.length + ' tcp ' + udp.length + ' udp');
}
open();
`;

export interface Holder {
  server: Subject;
  client: Subject;
}

/**
 * `tcp` TCP connections (every tenth over IPv6) from `p.a` to a server in `p.b`, and `udp`
 * connected UDP flows (half IPv6); each second `active` of the TCP connections and every UDP
 * flow carry 64 bytes each way. Resolves when all are connected.
 */
export async function holdConnections(
  p: Pair,
  groups: CpuGroups,
  opts: { tcp: number; udp: number; active: number; port?: number },
): Promise<Holder> {
  const port = opts.port ?? 7100;
  const server = spawnIn('conn-server', p.b, groups.group('conn-server'), process.execPath, [
    '-e',
    SERVER,
    String(port),
    p.addrB,
    p.addrB6,
  ]);
  await waitOutput(server, 'listening');
  const client = spawnIn('conn-client', p.a, groups.group('conn-client'), process.execPath, [
    '-e',
    CLIENT,
    String(port),
    p.addrB,
    p.addrB6,
    String(opts.tcp),
    String(opts.udp),
    String(opts.active),
  ]);
  await waitOutput(client, 'held ');
  return { server, client };
}

// ---------------------------------------------------------------------------------------
// iperf3

export interface IperfResult {
  /** bytes the receiving side counted */
  bytes: number;
  seconds: number;
  bitsPerSecond: number;
  /** iperf3's own CPU figures (% of one core, user+system of its process) */
  hostCpu: number;
  remoteCpu: number;
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bytes: number; seconds: number; bits_per_second: number };
    cpu_utilization_percent?: { host_total: number; remote_total: number };
  };
}

export function parseIperf(out: string): IperfResult {
  let j: IperfJson;
  try {
    j = JSON.parse(out) as IperfJson;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${out.slice(0, 2000)}`);
  }
  if (j.error || !j.end?.sum_received) throw new Error(`iperf3: ${j.error ?? out.slice(0, 2000)}`);
  const r = j.end.sum_received;
  return {
    bytes: r.bytes,
    seconds: r.seconds,
    bitsPerSecond: r.bits_per_second,
    hostCpu: j.end.cpu_utilization_percent?.host_total ?? NaN,
    remoteCpu: j.end.cpu_utilization_percent?.remote_total ?? NaN,
  };
}
