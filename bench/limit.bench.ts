/**
 * Step 16 benchmark: the limiter's CPU cost per Gbit/s, against no limit, both directions.
 *
 * Topology (traffic-env.ts): namespaces A and B joined by a veth (A's default route points
 * at B, so the veth is A's uplink); an iperf3 server in B; the iperf3 client in A runs in the
 * limited cgroup ("the limited app"). Two CPU figures per run, each divided by the gigabits
 * the receiver counted (CPU-seconds per Gbit transferred):
 * - "ours": our processes' cgroups (iperf3 both ends, with the softirq work done in their
 *   context: this kernel has no IRQ time accounting) plus the ksoftirqd threads. Robust to the
 *   machine's other users; it misses softirq work that interrupted another task or the idle
 *   loop (timers of the pacing and of HTB).
 * - "machine": the busy CPU of /proc/stat (everything but idle and iowait, all CPUs) from the
 *   client's start to its exit, minus the background measured just before and just after the
 *   run with no transfer of ours (the bench waits up to 9 s for a quiet moment first); kept
 *   only for quiet runs (≤ QUIET_CORES busy around it), since on a shared 2-vCPU machine a
 *   busy neighbour's CPU would swamp it.
 * Modes, alternated within every round so drift hits them alike:
 *
 * - `unshaped, full speed`: no nft table of ours, no qdisc, iperf3 unpaced;
 * - `unshaped, sender paced to R`: the reference at equal throughput, the sending socket
 *   paced by TCP itself (SO_MAX_PACING_RATE: iperf3 --fq-rate; for download B's client sends
 *   to a second server in A, since iperf3 applies it only to the client's socket);
 * - `design by hand, R`: the design's setup written out here (shapeByHand()): nft `route_out`
 *   sets `meta priority 1:1` for the app's cgroup, `nat_post` source-NATs such connections to
 *   ports 61440–61567; on the veth a clsact whose egress u32 `sport` and ingress u32 `dport`
 *   filters (IPv4 and IPv6, cookie) mirror to two ifbs; on each an HTB root, class 1:1 at R
 *   (quantum max(MTU, R/8/1000), default burst) and a bfifo leaf of max(2·MTU, R·10 ms);
 *   upload classified by skb->priority, download by a u32 dport filter on the ifb;
 * - `awg apply, R`: what awg installs for a config with a rule `limit: {upload: R, download:
 *   R}` (target direct), applied with `awg apply` from the checkout's sources (its whole nft
 *   table included, not only the limiter's rules), the client placed in the rule's cgroup.
 *
 * Directions: upload (iperf3 -c, A sends) and download (-R, B sends to A).
 * Run: `npx tsx bench/run.ts --only=limit [--smoke]` (root, iperf3, tc, nft, ifb).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { median, type Sample } from './lib.js';
import { ROOT } from './apply.bench.js';
import { cgroup2Mount, nsExec, run } from '../test/helpers/netns.js';
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
/** the awg CLI from this checkout's sources (never a stale dist/) */
const AWG_CLI = [
  '--import',
  `file://${join(ROOT, 'node_modules/tsx/dist/loader.mjs')}`,
  join(ROOT, 'test/helpers/awg-cli.ts'),
];

type Dir = 'upload' | 'download';

interface Mode {
  key: string;
  label: string;
  /** the sender's TCP paced by the kernel at this rate (SO_MAX_PACING_RATE: iperf3 --fq-rate) */
  pace?: number;
  /** the shaper's rate, bit/s, set up by hand or by `awg apply` */
  shape?: { rate: number; by: 'hand' | 'awg' };
}

const gbit = (r: number) => `${r / 1e9} Gbit/s`;

function modes(rates: number[]): Mode[] {
  return [
    { key: 'full', label: 'unshaped, full speed' },
    ...rates.flatMap((r): Mode[] => [
      { key: `paced-${r}`, label: `unshaped, sender paced to ${gbit(r)}`, pace: r },
      { key: `hand-${r}`, label: `design by hand, ${gbit(r)}`, shape: { rate: r, by: 'hand' } },
      { key: `awg-${r}`, label: `awg apply, ${gbit(r)}`, shape: { rate: r, by: 'awg' } },
    ]),
  ];
}

/** The design's shaping of the app's cgroup on the veth of A, at `rate` bit/s both ways. */
async function shapeByHand(p: Pair, groups: CpuGroups, rate: number): Promise<void> {
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

async function unshapeByHand(p: Pair): Promise<void> {
  await nsExec(p.a, 'nft', ['delete', 'table', 'inet', 'awgt_bench_shape'], { allowFail: true });
  await run('tc', ['-n', p.a, 'qdisc', 'del', 'dev', p.ifA, 'clsact'], { allowFail: true });
  for (const ifb of [IFB_UP, IFB_DOWN])
    await run('ip', ['-n', p.a, 'link', 'del', ifb], { allowFail: true });
}

/** awg's own state for the `awg apply` mode: a private state dir, cgroup subtree and DNS file. */
interface AwgEnv {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** the limited rule's cgroup directory (exists while applied) */
  ruleGroup: string;
}

function awgEnv(): AwgEnv {
  const dir = mkdtempSync(join(tmpdir(), 'awgt-bench-limit-'));
  const root = `awgt-bench-limawg-${randomBytes(3).toString('hex')}`;
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 10.200.0.53\n');
  return {
    dir,
    env: {
      ...process.env,
      AWG_CGROUP_ROOT: root,
      AWG_DNS_MANAGER: 'static',
      AWG_RESOLV_CONF: join(dir, 'resolv.conf'),
      AWG_UAPI_DIR: join(dir, 'uapi'),
      NO_COLOR: '1',
    },
    ruleGroup: join(cgroup2Mount()!, root, 'bench'),
  };
}

async function awg(p: Pair, a: AwgEnv, args: string[]): Promise<void> {
  await nsExec(p.a, process.execPath, [...AWG_CLI, ...args, '--state-dir', join(a.dir, 'state')], {
    env: a.env,
    timeoutMs: 60_000,
  });
}

/** A rule limited to `rate` both ways; it matches no executable (the client is placed by the bench). */
async function shapeByAwg(p: Pair, a: AwgEnv, rate: number): Promise<void> {
  const r = `${rate / 1e6}Mbit`;
  writeFileSync(
    join(a.dir, 'limit.yaml'),
    `version: 1\ntunnels: {}\nrules:\n  - name: bench\n    match: { path: /nonexistent/awg-bench-limited-app }\n    target: direct\n    limit: { upload: ${r}, download: ${r} }\n`,
  );
  await awg(p, a, ['apply', '-f', join(a.dir, 'limit.yaml')]);
}

/** Bytes the HTB classes on A's ifbs sent (a check that the traffic went through a shaper). */
async function shapedBytes(p: Pair): Promise<number> {
  const links = JSON.parse(
    (await run('ip', ['-n', p.a, '-j', 'link', 'show', 'type', 'ifb'])).stdout || '[]',
  ) as { ifname: string }[];
  let sum = 0;
  for (const { ifname } of links) {
    // `tc -j class show` prints htb classes as text here: read the text
    const r = await run('tc', ['-n', p.a, '-s', 'class', 'show', 'dev', ifname]);
    for (const m of r.stdout.matchAll(/^class htb [^\n]* leaf [^\n]*\n\s*Sent (\d+) bytes/gm))
      sum += Number(m[1]);
  }
  return sum;
}

/** One transfer; CPU per Gbit in % of one core per Gbit/s (= CPU-seconds per Gbit × 100). */
interface Run {
  /** the machine's busy CPU (/proc/stat) per Gbit: everything, other users' work included */
  cpuPerGbit: number;
  /** the same minus the background measured around the run */
  netPerGbit: number;
  /** ours alone per Gbit: the iperf3 processes' cgroups plus the ksoftirqd threads */
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

interface Ends {
  server: Subject;
  rev: Subject;
  groups: CpuGroups;
}

async function transfer(
  p: Pair,
  ends: Ends,
  app: string,
  dir: Dir,
  mode: Mode,
  seconds: number,
  quiet: { tries: number; seconds: number },
): Promise<Run> {
  let bgBefore = Infinity;
  for (let i = 0; i < quiet.tries && bgBefore > QUIET_CORES; i++)
    bgBefore = await background(quiet.seconds);
  const reversed = dir === 'download' && mode.pace !== undefined;
  const revClient = ends.groups.group('iperf3-rev-c');
  const ours = () =>
    [app, ends.server.group, ends.rev.group, revClient].reduce(
      (a, g) => a + groupCpuSeconds(g),
      0,
    ) + ksoftirqdSeconds();
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
  const r = parseIperf(client.stdout());
  const bgAfter = await background(quiet.seconds);
  const gb = (r.bytes * 8) / 1e9;
  const busy = s1.busy - s0.busy;
  // CPU-seconds per Gbit transferred = cores per Gbit/s; ×100: % of a core per Gbit/s
  return {
    cpuPerGbit: (100 * busy) / gb,
    netPerGbit: (100 * (busy - ((bgBefore + bgAfter) / 2) * wall)) / gb,
    oursPerGbit: (100 * (c1 - c0)) / gb,
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
  const quiet = { tries: smoke ? 1 : 6, seconds: smoke ? 0.3 : BG_S };
  const list = modes(rates);
  const dirs: Dir[] = ['upload', 'download'];
  const groups = new CpuGroups('limit');
  const pair = await createPair('bench-lim', 162);
  const a = awgEnv();
  const started: Subject[] = [];
  try {
    // the veth is A's uplink: awg shapes the devices of the default routes
    await run('ip', ['-n', pair.a, 'route', 'add', 'default', 'via', pair.addrB]);
    const server = spawnIn('iperf3-s', pair.b, groups.group('iperf3-s'), 'iperf3', [
      '-s',
      '--forceflush',
      '-B',
      pair.addrB,
    ]);
    const rev = spawnIn('iperf3-rev-s', pair.a, groups.group('iperf3-rev-s'), 'iperf3', [
      '-s',
      '--forceflush',
      '-B',
      pair.addrA,
      '-p',
      String(REV_PORT),
    ]);
    started.push(server, rev);
    await waitOutput(server, 'Server listening');
    await waitOutput(rev, 'Server listening');
    const ends = { server, rev, groups };
    const res = new Map<string, Run[]>();
    const shaped = new Map<string, number>();
    for (let round = 0; round < rounds; round++) {
      for (const dir of dirs) {
        for (const m of list) {
          let app = groups.group('app');
          if (m.shape?.by === 'hand') await shapeByHand(pair, groups, m.shape.rate);
          if (m.shape?.by === 'awg') {
            await shapeByAwg(pair, a, m.shape.rate);
            app = a.ruleGroup;
          }
          try {
            const r = await transfer(pair, ends, app, dir, m, seconds, quiet);
            const k = `${dir}/${m.key}`;
            res.set(k, [...(res.get(k) ?? []), r]);
            process.stderr.write(
              `[limit] round ${round + 1}/${rounds} ${k}: ${r.gbps.toFixed(2)} Gbit/s, % of a core per Gbit/s: machine ${r.cpuPerGbit.toFixed(1)}, ours ${r.oursPerGbit.toFixed(1)}; background ${r.bgBefore.toFixed(2)}/${r.bgAfter.toFixed(2)} cores\n`,
            );
            if (m.shape)
              shaped.set(k, Math.min(shaped.get(k) ?? Infinity, await shapedBytes(pair)));
          } finally {
            if (m.shape?.by === 'hand') await unshapeByHand(pair);
            if (m.shape?.by === 'awg') await awg(pair, a, ['down']);
          }
        }
      }
    }
    return report(list, rates, dirs, res, shaped);
  } finally {
    for (const s of started) await stop(s, 1000);
    await unshapeByHand(pair).catch(() => undefined);
    await awg(pair, a, ['down']).catch(() => undefined);
    await destroyPair(pair);
    await groups.destroy();
    rmSync(a.dir, { recursive: true, force: true });
  }
}

/** A run the machine's other users left alone: ≤ QUIET_CORES busy just before and just after it. */
const isQuiet = (r: Run) => Math.max(r.bgBefore, r.bgAfter) <= QUIET_CORES;

function report(
  list: Mode[],
  rates: number[],
  dirs: Dir[],
  res: Map<string, Run[]>,
  shaped: Map<string, number>,
): Sample[] {
  const out: Sample[] = [];
  const r1 = (x: number) => x.toFixed(1);
  const ours = (x: Run) => x.oursPerGbit;
  for (const dir of dirs) {
    for (const m of list) {
      const k = `${dir}/${m.key}`;
      const rs = res.get(k)!;
      if (m.shape && !(shaped.get(k)! > 0))
        throw new Error(`${k}: a run sent no bytes through an HTB class`);
      const loads = rs.map((r) => r.load1);
      const gbps = median(rs.map((r) => r.gbps));
      const accuracy = m.shape
        ? ` (${(((gbps * 1e9) / m.shape.rate) * 100).toFixed(1)} % of the limit)`
        : '';
      out.push({
        name: `${dir}, ${m.label}: ours per Gbit (iperf3 cgroups + ksoftirqd)`,
        unit: '% of a core per Gbit/s',
        runs: rs.map(ours),
        median: median(rs.map(ours)),
        note:
          `iperf3 ${gbps.toFixed(2)} Gbit/s${accuracy}; ` +
          `load1 ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`,
      });
      // the machine's figure means something only when nobody else was busy
      const quiet = rs.filter(isQuiet);
      out.push({
        name: `${dir}, ${m.label}: machine CPU per Gbit, net of background, quiet runs`,
        unit: '% of a core per Gbit/s',
        runs: quiet.map((r) => r.netPerGbit),
        median: quiet.length ? median(quiet.map((r) => r.netPerGbit)) : NaN,
        note:
          `${quiet.length}/${rs.length} runs quiet (≤ ${QUIET_CORES} cores busy before and after); ` +
          `all runs: machine ${r1(median(rs.map((r) => r.cpuPerGbit)))}, background ` +
          `${median(rs.map((r) => (r.bgBefore + r.bgAfter) / 2)).toFixed(2)} cores`,
      });
    }
    // per round: the runs were minutes apart at most, in the same order every round
    const full = res.get(`${dir}/full`)!;
    for (const r of rates) {
      const paced = res.get(`${dir}/paced-${r}`)!;
      for (const by of ['hand', 'awg'] as const) {
        const lim = res.get(`${dir}/${by}-${r}`)!;
        for (const [what, ref] of [
          ['sender paced to the same rate', paced],
          ['unshaped full speed', full],
        ] as const) {
          const ratio = lim.map((h, i) => ours(h) / ours(ref[i]!));
          out.push({
            name: `${dir}, ${gbit(r)}: ${by === 'awg' ? 'awg apply' : 'design by hand'} / ${what}, ours per Gbit`,
            unit: '×',
            runs: ratio,
            median: median(ratio),
            note: 'per round',
          });
        }
      }
    }
  }
  return out;
}
