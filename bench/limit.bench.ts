/**
 * Step 16 benchmark: the limiter's CPU cost per Gbit/s, against no limit, both directions.
 *
 * Topology (traffic-env.ts): namespaces A and B joined by a veth; an iperf3 server in B; the
 * iperf3 client in A runs in a cgroup of its own ("the limited app"). What is measured is the
 * machine's busy CPU (/proc/stat: everything but idle and iowait, all CPUs, so softirq work,
 * ifb and ksoftirqd count) from the client's start to its exit, divided by the gigabits the
 * receiver counted: CPU-seconds per Gbit transferred. The machine is shared, so before each
 * run its busy CPU is also sampled for `BG_S` s with no transfer; "net" subtracts that
 * background. Modes, alternated within every round so drift hits them alike:
 *
 * - `unshaped, full speed`: no nft table, no qdisc, iperf3 unpaced;
 * - `unshaped, iperf3 -b R`: the same at the limiter's rate, paced by iperf3 itself (the
 *   reference at equal throughput);
 * - `HTB R`: the tc/nft setup of the design, by hand (shape()): nft `route_out` sets
 *   `meta priority 1:1` for the app's cgroup, `nat_post` source-NATs such connections to the
 *   class's port range 61440–61567; on the veth a clsact whose egress u32 `sport` and ingress
 *   u32 `dport` filters (IPv4 and IPv6, cookie) mirror to two ifbs; on each ifb an HTB root
 *   with class 1:1 at R (quantum max(MTU, R/8/1000)) and a bfifo leaf of max(2·MTU, R·10 ms)
 *   bytes; upload is classified by skb->priority, download by a u32 dport filter on the ifb.
 *
 * Directions: upload (iperf3 -c, A sends) and download (-R, B sends to A).
 * Run: `npx tsx bench/run.ts --only=limit [--smoke]` (root, iperf3, tc, nft, ifb).
 */
import { loadavg } from 'node:os';
import { median, type Sample } from './lib.js';
import { nsExec, run } from '../test/helpers/netns.js';
import {
  CpuGroups,
  createPair,
  destroyPair,
  groupCpuSeconds,
  ksoftirqdSeconds,
  parseIperf,
  sleep,
  spawnIn,
  stop,
  systemCpu,
  waitOutput,
  type Pair,
  type Subject,
} from './traffic-env.js';

const BG_S = 1.5;
/** below this background (cores busy without our transfer) a run starts at once */
const QUIET_CORES = 0.3;
const REV_PORT = 5202;
const MTU = 1500;
const PORTS = { base: 61440, mask: 0xff80, last: 61567 };
const COOKIE = '6177670031'; // "awg\0" + class 1: recognisably ours, as the design's filters are
const IFB_UP = 'awgqbench-e';
const IFB_DOWN = 'awgqbench-i';

type Dir = 'upload' | 'download';

interface Mode {
  key: string;
  label: string;
  /** the sender's TCP paced by the kernel at this rate (SO_MAX_PACING_RATE: iperf3 --fq-rate) */
  pace?: number;
  /** the shaper's rate, bit/s */
  shape?: number;
}

const gbit = (r: number) => `${r / 1e9} Gbit/s`;

function modes(rates: number[]): Mode[] {
  return [
    { key: 'full', label: 'unshaped, full speed' },
    ...rates.flatMap((r) => [
      { key: `paced-${r}`, label: `unshaped, sender paced to ${gbit(r)}`, pace: r },
      {
        key: `htb-${r}`,
        label: `HTB ${gbit(r)} (clsact + mirred + ifb, nft priority + snat)`,
        shape: r,
      },
    ]),
  ];
}

/** The design's shaping of the app's cgroup on the veth of A, at `rate` bit/s both ways. */
async function shape(p: Pair, groups: CpuGroups, rate: number): Promise<void> {
  const ns = p.a;
  const group = `${groups.nftRoot}/app`;
  await nsExec(ns, 'nft', ['-f', '-'], {
    input: `table inet awgt_bench_shape {
\tchain route_out {
\t\ttype route hook output priority mangle; policy accept;
\t\tsocket cgroupv2 level ${groups.level('app')} "${group}" meta priority set 1:1
\t}
\tchain nat_post {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta priority 1:1 meta l4proto { tcp, udp } snat ip to ip saddr:${PORTS.base}-${PORTS.last}
\t\tmeta priority 1:1 meta l4proto { tcp, udp } snat ip6 to ip6 saddr:${PORTS.base}-${PORTS.last}
\t}
}
`,
  });
  const quantum = Math.max(MTU, Math.round(rate / 8 / 1000));
  const limit = Math.max(2 * MTU, Math.round((rate * 0.01) / 8));
  const mask = `0x${PORTS.mask.toString(16)}`;
  const lines: string[] = [
    `qdisc add dev ${p.ifA} clsact`,
    ...(['egress', 'ingress'] as const).flatMap((hook) => {
      const field = hook === 'egress' ? 'sport' : 'dport';
      const ifb = hook === 'egress' ? IFB_UP : IFB_DOWN;
      return [
        `filter add dev ${p.ifA} ${hook} protocol ip prio 1 u32 match ip ${field} ${PORTS.base} ${mask} action mirred egress redirect dev ${ifb} cookie ${COOKIE}`,
        `filter add dev ${p.ifA} ${hook} protocol ipv6 prio 2 u32 match ip6 ${field} ${PORTS.base} ${mask} action mirred egress redirect dev ${ifb} cookie ${COOKIE}`,
      ];
    }),
    ...[IFB_UP, IFB_DOWN].flatMap((ifb) => [
      `qdisc add dev ${ifb} root handle 1: htb default 0`,
      `class add dev ${ifb} parent 1: classid 1:1 htb rate ${rate}bit ceil ${rate}bit quantum ${quantum}`,
      `qdisc add dev ${ifb} parent 1:1 handle 10: bfifo limit ${limit}`,
    ]),
    // download: the ifb sees the replies, whose dport is in the class's range
    `filter add dev ${IFB_DOWN} parent 1: protocol ip prio 1 u32 match ip dport ${PORTS.base} ${mask} classid 1:1`,
    `filter add dev ${IFB_DOWN} parent 1: protocol ipv6 prio 2 u32 match ip6 dport ${PORTS.base} ${mask} classid 1:1`,
  ];
  for (const ifb of [IFB_UP, IFB_DOWN]) {
    await run('ip', ['-n', ns, 'link', 'add', ifb, 'type', 'ifb']);
    await run('ip', ['-n', ns, 'link', 'set', ifb, 'up']);
  }
  await run('tc', ['-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
}

async function unshape(p: Pair): Promise<void> {
  await nsExec(p.a, 'nft', ['delete', 'table', 'inet', 'awgt_bench_shape'], { allowFail: true });
  await run('tc', ['-n', p.a, 'qdisc', 'del', 'dev', p.ifA, 'clsact'], { allowFail: true });
  for (const ifb of [IFB_UP, IFB_DOWN])
    await run('ip', ['-n', p.a, 'link', 'del', ifb], { allowFail: true });
}

/** Bytes the shaper's classes sent (a check that the traffic went through HTB). */
async function shapedBytes(p: Pair): Promise<number> {
  let sum = 0;
  for (const ifb of [IFB_UP, IFB_DOWN]) {
    // `tc -j class show` prints htb classes as text here: read the text
    const r = await run('tc', ['-n', p.a, '-s', 'class', 'show', 'dev', ifb]);
    const m = /class htb 1:1 [^\n]*\n\s*Sent (\d+) bytes/.exec(r.stdout);
    sum += m ? Number(m[1]) : 0;
  }
  return sum;
}

interface Run {
  /** the machine's busy CPU (/proc/stat) per Gbit: everything, other users' work included */
  cpuPerGbit: number;
  /** the same minus the background measured around the run */
  netPerGbit: number;
  /**
   * ours alone per Gbit: the iperf3 processes' cgroups (with the softirq work done in their
   * context) plus the ksoftirqd threads; misses softirq work that interrupted other tasks or idle
   */
  oursPerGbit: number;
  gbps: number;
  /** busy cores without our transfer, just before and just after it */
  bgBefore: number;
  bgAfter: number;
  load1: number;
}

/** Cores busy over `seconds` (no transfer of ours running). */
async function background(seconds: number): Promise<number> {
  const b0 = systemCpu();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  return (systemCpu().busy - b0.busy) / ((performance.now() - t0) / 1000);
}

async function transfer(
  p: Pair,
  groups: CpuGroups,
  server: Subject,
  rev: Subject,
  dir: Dir,
  mode: Mode,
  seconds: number,
  quiet: { tries: number; seconds: number },
): Promise<Run> {
  // the machine is shared: wait (a while) for a quiet moment, and record what it was
  let bgBefore = Infinity;
  for (let i = 0; i < quiet.tries && bgBefore > QUIET_CORES; i++)
    bgBefore = await background(quiet.seconds);
  const app = groups.group('app');
  // download paced by the sender: B's client sends to A's second server (iperf3 applies
  // --fq-rate only to the client's own socket); the data still flows B → A
  const reversed = dir === 'download' && mode.pace !== undefined;
  const revClient = groups.group('iperf3-rev-c');
  const ours = () =>
    [app, server.group, rev.group, revClient].reduce((a, g) => a + groupCpuSeconds(g), 0) +
    ksoftirqdSeconds();
  const c0 = ours();
  const s0 = systemCpu();
  const t0 = performance.now();
  const client = reversed
    ? spawnIn('iperf3-rev-c', p.b, revClient, 'iperf3', [
        '-c',
        p.addrA,
        '-p',
        String(REV_PORT),
        '-t',
        String(seconds),
        '-J',
        '--fq-rate',
        String(mode.pace),
      ])
    : spawnIn('iperf3-c', p.a, app, 'iperf3', [
        '-c',
        p.addrB,
        '-t',
        String(seconds),
        '-J',
        ...(dir === 'download' ? ['-R'] : []),
        ...(mode.pace !== undefined ? ['--fq-rate', String(mode.pace)] : []),
      ]);
  await client.exited;
  const s1 = systemCpu();
  const wall = (performance.now() - t0) / 1000;
  const c1 = ours();
  const r = parseIperf(client.output());
  const bgAfter = await background(quiet.seconds);
  const gb = (r.bytes * 8) / 1e9;
  const busy = s1.busy - s0.busy;
  return {
    cpuPerGbit: busy / gb,
    netPerGbit: (busy - ((bgBefore + bgAfter) / 2) * wall) / gb,
    oursPerGbit: (c1 - c0) / gb,
    gbps: r.bitsPerSecond / 1e9,
    bgBefore,
    bgAfter,
    load1: loadavg()[0]!,
  };
}

export async function limitBench(smoke: boolean): Promise<Sample[]> {
  if (process.getuid?.() !== 0)
    throw new Error('the Step 16 limiter benchmark needs root (network namespaces)');
  const rates = smoke ? [1e9] : [1e9, 2e9, 5e9];
  const rounds = smoke ? 1 : 5;
  const seconds = smoke ? 1 : 5;
  const list = modes(rates);
  const dirs: Dir[] = ['upload', 'download'];
  const groups = new CpuGroups('limit');
  groups.group('app');
  const pair = await createPair('bench-lim', 162);
  let server: Subject | undefined;
  let rev: Subject | undefined;
  try {
    server = spawnIn('iperf3-s', pair.b, groups.group('iperf3-s'), 'iperf3', [
      '-s',
      '--forceflush',
      '-B',
      pair.addrB,
    ]);
    rev = spawnIn('iperf3-rev-s', pair.a, groups.group('iperf3-rev-s'), 'iperf3', [
      '-s',
      '--forceflush',
      '-B',
      pair.addrA,
      '-p',
      String(REV_PORT),
    ]);
    await waitOutput(server, 'Server listening');
    await waitOutput(rev, 'Server listening');
    const res = new Map<string, Run[]>();
    const shapedOk = new Map<string, number>();
    for (let round = 0; round < rounds; round++) {
      for (const dir of dirs) {
        for (const m of list) {
          if (m.shape) await shape(pair, groups, m.shape);
          try {
            const r = await transfer(pair, groups, server, rev, dir, m, seconds, {
              tries: smoke ? 1 : 20,
              seconds: smoke ? 0.3 : BG_S,
            });
            const k = `${dir}/${m.key}`;
            res.set(k, [...(res.get(k) ?? []), r]);
            if (m.shape) shapedOk.set(k, await shapedBytes(pair));
          } finally {
            if (m.shape) await unshape(pair);
          }
        }
      }
    }
    const out: Sample[] = [];
    const r3 = (x: number) => x.toFixed(3);
    for (const dir of dirs) {
      for (const m of list) {
        const k = `${dir}/${m.key}`;
        const rs = res.get(k)!;
        if (m.shape && !(shapedOk.get(k)! > 0))
          throw new Error(`${k}: no bytes went through the HTB class`);
        const loads = rs.map((r) => r.load1);
        const bg = rs.map((r) => Math.max(r.bgBefore, r.bgAfter));
        const quiet = bg.filter((x) => x <= QUIET_CORES).length;
        out.push({
          name: `${dir}, ${m.label}: machine CPU per Gbit`,
          unit: 'CPU-s/Gbit',
          runs: rs.map((r) => r.cpuPerGbit),
          median: median(rs.map((r) => r.cpuPerGbit)),
          note:
            `${median(rs.map((r) => r.gbps)).toFixed(2)} Gbit/s; net of background ` +
            `${r3(median(rs.map((r) => r.netPerGbit)))}; background ${median(bg).toFixed(2)} cores ` +
            `(${quiet}/${rs.length} runs ≤ ${QUIET_CORES} before and after); ` +
            `load1 ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`,
        });
        out.push({
          name: `${dir}, ${m.label}: ours per Gbit (iperf3 cgroups + ksoftirqd)`,
          unit: 'CPU-s/Gbit',
          runs: rs.map((r) => r.oursPerGbit),
          median: median(rs.map((r) => r.oursPerGbit)),
        });
      }
      for (const r of rates) {
        const paced = res.get(`${dir}/paced-${r}`)!;
        const htb = res.get(`${dir}/htb-${r}`)!;
        // per round: the two ran back to back
        for (const [what, f] of [
          ['machine CPU', (x: Run) => x.cpuPerGbit],
          ['ours', (x: Run) => x.oursPerGbit],
        ] as const) {
          const ratio = htb.map((h, i) => f(h) / f(paced[i]!));
          out.push({
            name: `${dir}, ${gbit(r)}: HTB / unshaped sender paced to the same rate, ${what} per Gbit`,
            unit: '×',
            runs: ratio,
            median: median(ratio),
            note: 'per round (the two runs back to back)',
          });
        }
      }
    }
    return out;
  } finally {
    if (server) await stop(server, 1000);
    if (rev) await stop(rev, 1000);
    await unshape(pair).catch(() => undefined);
    await destroyPair(pair);
    await groups.destroy();
  }
}
