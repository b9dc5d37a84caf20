/**
 * Step 16 benchmark: the monitor's own CPU cost (`awg top`), in % of one core.
 *
 * Topology (traffic-env.ts): namespaces A and B joined by a veth. In A a holder keeps 1,000
 * TCP connections open to a server in B (every tenth over IPv6), mostly idle: each second 10
 * of them and each of 40 UDP flows (half IPv6) carry 64 bytes each way. Conntrack is on in A
 * with byte accounting (as awg sets it). Each measured subject runs in A (the monitor reads
 * its own namespace's sockets) in a cgroup of its own; its CPU is the cgroup's `usage_usec`
 * delta over a window of `WINDOW_S` s (exited children included), median of the windows.
 * All subjects run at the same time, so each window's references saw the same machine:
 *
 * - `monitor loop`: bench/top-loop.ts, the TrafficSource read + one JSON document per second
 *   (what `awg top --json --direct` does without the CLI around it);
 * - `awg top --json --direct` (dist/, stdout to a pipe the bench drains), once it exists;
 * - `Node idle`: top-loop.ts `--idle`: the same runtime with the loop disabled;
 * - `ss -tin` once per second (a shell loop with `sleep 1`): a well-known peer doing a
 *   similar kernel read (sock_diag + tcp_info) for the same sockets; `ss -tinp` adds the
 *   owner process of each socket (a /proc/PID/fd walk), as the monitor does.
 *
 * Phases: idle refresh (the 1,000 connections only), then under load: the same plus iperf3
 * `-P 8 -b 1.25G` (10 Gbit/s asked for) from A to B over the veth; the throughput reached
 * is reported. The load average is recorded at every window; bench/RESULTS.md has the runs.
 *
 * Run: `npx tsx bench/run.ts --only=top [--smoke]` (root, iperf3, ss, cgroup v2).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, type Sample } from './lib.js';
import { ROOT, must } from './apply.bench.js';
import {
  CpuGroups,
  conntrackOn,
  createPair,
  destroyPair,
  groupCpuSeconds,
  holdConnections,
  parseIperf,
  procCpuSeconds,
  sleep,
  spawnIn,
  stop,
  systemCpu,
  waitOutput,
  type IperfResult,
  type Subject,
} from './traffic-env.js';

const TSX = join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const LOOP = join(ROOT, 'bench/top-loop.ts');
const IPERF_STREAMS = 8;
const IPERF_RATE = '1.25G';

interface Def {
  key: string;
  label: string;
  cmd: string;
  args: string[];
  /** printed once the subject is set up: on stderr (`ready`) or stdout (`{`) */
  ready?: { stream: 'stdout' | 'stderr'; marker: string };
}

/**
 * The measured subjects. `awg top` runs from dist/ (built first: what users run) in a full
 * run, from the sources through tsx in the smoke (no build: seconds).
 */
function defs(smoke: boolean, stateDir: string): Def[] {
  const node = process.execPath;
  const tsx = ['--import', `file://${TSX}`];
  const awg = smoke ? [...tsx, join(ROOT, 'test/helpers/awg-cli.ts')] : [join(ROOT, 'bin/awg.js')];
  const all: (Def & { full?: true })[] = [
    {
      key: 'idle',
      label: 'Node idle (top-loop.ts --idle: the loop disabled)',
      cmd: node,
      args: [...tsx, LOOP, '--idle'],
      ready: { stream: 'stderr', marker: 'ready' },
    },
    {
      key: 'loop',
      label: 'monitor loop (read + Monitor.update + JSON document, every 1 s)',
      cmd: node,
      args: [...tsx, LOOP],
      ready: { stream: 'stderr', marker: 'ready' },
    },
    {
      key: 'cli',
      label: `\`awg top --json --direct\` (${smoke ? 'sources' : 'dist/'})`,
      cmd: node,
      args: [...awg, 'top', '--json', '--direct', '--state-dir', stateDir],
      ready: { stream: 'stdout', marker: '{' },
    },
    {
      key: 'ss-tin',
      label: '`ss -tin` once per second (shell loop)',
      cmd: 'sh',
      args: ['-c', 'while :; do ss -tin > /dev/null; sleep 1; done'],
    },
    {
      key: 'ss-tinp',
      label: '`ss -tinp` once per second (with owner processes)',
      cmd: 'sh',
      args: ['-c', 'while :; do ss -tinp > /dev/null; sleep 1; done'],
      full: true,
    },
  ];
  return all.filter((d) => !smoke || !d.full);
}

/** The connections listed by the last whole JSON document in `out` (`awg top --json`). */
function lastDocConnections(out: string): number {
  const lines = out.split('\n').filter((l) => l.startsWith('{'));
  for (const l of lines.reverse()) {
    try {
      return (JSON.parse(l) as { connections: unknown[] }).connections.length;
    } catch {
      /* cut by the tail: the one before */
    }
  }
  return NaN;
}

interface Window {
  /** % of one core per subject key: cgroup usage, and /proc/PID/stat (tick-sampled) */
  cg: Record<string, number>;
  stat: Record<string, number>;
  /** the machine's busy CPU, % of one core (2 vCPUs: up to 200) */
  system: number;
  load1: number;
}

async function windows(
  subjects: Subject[],
  n: number,
  seconds: number,
  shouldStop?: () => boolean,
): Promise<Window[]> {
  const out: Window[] = [];
  for (let i = 0; i < n && !shouldStop?.(); i++) {
    const c0 = subjects.map((s) => groupCpuSeconds(s.group));
    const p0 = subjects.map((s) => procCpuSeconds(s.pid));
    const s0 = systemCpu();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const dt = (performance.now() - t0) / 1000;
    const s1 = systemCpu();
    const w: Window = {
      cg: {},
      stat: {},
      system: ((s1.busy - s0.busy) / dt) * 100,
      load1: loadavg()[0]!,
    };
    subjects.forEach((s, k) => {
      w.cg[s.name] = ((groupCpuSeconds(s.group) - c0[k]!) / dt) * 100;
      w.stat[s.name] = ((procCpuSeconds(s.pid) - p0[k]!) / dt) * 100;
    });
    out.push(w);
  }
  return out;
}

/** `tick <n> flows <f> ms <wall> cpu <read> <update> <json>` lines a loop child printed after `from` chars. */
function ticks(s: Subject, from: number) {
  const t = { flows: [] as number[], ms: [] as number[], cpu: [[], [], []] as number[][] };
  const re = /^tick \d+ flows (\d+) ms ([\d.]+) cpu ([\d.]+) ([\d.]+) ([\d.]+)$/gm;
  for (const m of s.stderr().slice(from).matchAll(re)) {
    t.flows.push(Number(m[1]));
    t.ms.push(Number(m[2]));
    for (let i = 0; i < 3; i++) t.cpu[i]!.push(Number(m[3 + i]));
  }
  return t;
}

function range(xs: number[]): string {
  return `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
}

export async function topBench(smoke: boolean): Promise<Sample[]> {
  if (process.getuid?.() !== 0)
    throw new Error('the Step 16 monitor benchmark needs root (network namespaces)');
  const tcpN = smoke ? 50 : 1000;
  const udpN = smoke ? 4 : 40;
  const nWin = smoke ? 1 : 7;
  const winS = smoke ? 2 : 10;
  const warmS = smoke ? 1 : 5;
  const stateDir = mkdtempSync(join(tmpdir(), 'awgt-bench-top-'));
  const list = defs(smoke, stateDir);
  if (!smoke)
    await must(process.execPath, [
      join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      'tsconfig.build.json',
    ]);
  const groups = new CpuGroups('top');
  const pair = await createPair('bench-top', 161);
  const started: Subject[] = [];
  try {
    await conntrackOn(pair.a);
    const holder = await holdConnections(pair, groups, { tcp: tcpN, udp: udpN, active: 10 });
    started.push(holder.server, holder.client);
    const subjects = list.map((d) =>
      spawnIn(d.key, pair.a, groups.group(d.key), d.cmd, d.args, {
        env: { ...process.env, NO_COLOR: '1' },
        tail: 4 << 20,
      }),
    );
    started.push(...subjects);
    for (const [i, d] of list.entries())
      if (d.ready) await waitOutput(subjects[i]!, d.ready.marker, d.ready.stream);
    await sleep(warmS * 1000);

    const out: Sample[] = [];
    const report = (phase: string, ws: Window[], from: number[], extra: string) => {
      const loads = ws.map((w) => w.load1);
      for (const [i, d] of list.entries()) {
        const runs = ws.map((w) => w.cg[d.key]!);
        const stat = median(ws.map((w) => w.stat[d.key]!));
        const t = ticks(subjects[i]!, from[i]!);
        const seen = t.flows.length
          ? `; flows per reading ${range(t.flows)}; per tick (medians): wall ${median(t.ms).toFixed(1)} ms, CPU ms read ${median(t.cpu[0]!).toFixed(1)}, update ${median(t.cpu[1]!).toFixed(1)}, JSON ${median(t.cpu[2]!).toFixed(1)}`
          : '';
        out.push({
          name: `${phase}: ${d.label}`,
          unit: '% of one core',
          runs,
          median: median(runs),
          note: `/proc/PID/stat (tick-sampled) ${stat.toFixed(2)} %${seen}; load1 ${range(loads)}${extra}`,
        });
      }
      const sys = ws.map((w) => w.system);
      out.push({
        name: `${phase}: the machine's busy CPU (/proc/stat)`,
        unit: '% of one core',
        runs: sys,
        median: median(sys),
        note: `2 vCPUs = 200 %; load1 ${range(loads)}`,
      });
    };

    const at = () => subjects.map((s) => s.stderr().length);
    let from = at();
    const idleWs = await windows(subjects, nWin, winS);
    report(`idle refresh (${tcpN} TCP + ${udpN} UDP)`, idleWs, from, '');

    const secs = warmS + nWin * winS + 4;
    const server = spawnIn('iperf3-s', pair.b, groups.group('iperf3-s'), 'iperf3', [
      '-s',
      '-1',
      '--forceflush',
      '-B',
      pair.addrB,
    ]);
    started.push(server);
    // until it listens: a fixed 500 ms was too short beside CI's host tests and soak once (the
    // client found no server and printed nothing)
    await waitOutput(server, 'Server listening');
    const client = spawnIn('iperf3-c', pair.a, groups.group('iperf3-c'), 'iperf3', [
      '-c',
      pair.addrB,
      '-P',
      String(IPERF_STREAMS),
      '-b',
      IPERF_RATE,
      '-t',
      String(secs),
      '-J',
    ]);
    started.push(client);
    await sleep(2000);
    from = at();
    const done = () => client.child.exitCode !== null;
    const loadWs = await windows(subjects, nWin, winS, done);
    await client.exited;
    let ip: IperfResult;
    try {
      ip = parseIperf(client.stdout());
    } catch (e) {
      throw new Error(
        `the load phase's iperf3 failed (exit ${client.child.exitCode}, server: ${server.output().slice(-300)}; client stderr: ${client.stderr().slice(-300)}): ${(e as Error).message}`,
      );
    }
    if (loadWs.length < nWin) throw new Error('iperf3 ended before the load windows did');
    const gbit = ip.bitsPerSecond / 1e9;
    report(
      `under load (${tcpN} TCP + ${udpN} UDP + iperf3 -P ${IPERF_STREAMS} -b ${IPERF_RATE})`,
      loadWs,
      from,
      `; iperf3 ${gbit.toFixed(2)} Gbit/s reached, its CPU ${ip.hostCpu.toFixed(0)} % (client) / ${ip.remoteCpu.toFixed(0)} % (server)`,
    );
    out.push({
      name: 'under load: iperf3 throughput reached',
      unit: 'Gbit/s',
      runs: [gbit],
      median: gbit,
      note: `${IPERF_STREAMS} streams at ${IPERF_RATE} each asked for, ${secs} s`,
    });
    for (const [i, d] of list.entries())
      if (subjects[i]!.child.exitCode !== null)
        throw new Error(`${d.key} exited during the run: ${subjects[i]!.output().slice(-2000)}`);
    // what `awg top` saw: every held connection (and iperf3's) in its last document
    const cli = subjects[list.findIndex((d) => d.key === 'cli')]!;
    const seen = lastDocConnections(cli.stdout());
    if (!(seen >= tcpN))
      throw new Error(`awg top --json listed ${seen} connections, fewer than the ${tcpN} held`);
    out.push({
      name: 'awg top --json: connections in its last document',
      unit: 'connections',
      runs: [seen],
      median: seen,
      note: `${tcpN} TCP + ${udpN} UDP held, iperf3's ${IPERF_STREAMS + 1} TCP`,
    });
    return out;
  } finally {
    for (const s of started) await stop(s, 1000);
    await destroyPair(pair);
    await groups.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
