/**
 * The measuring primitives of bench/dataplane.bench.ts: VmRSS and the engine's pid, iperf3
 * transfers with the A-side process's CPU and threads, ping RTT and the first ping after a peer
 * reset, the CPU-profile preload, and an engine started from another build's tree.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { nsExec, netnsPath } from '../test/helpers/netns.js';
import { cpuSeconds } from '../test/netns/interop-wg.js';
import { median, type Sample } from './lib.js';
import {
  machineIdle,
  perfRecord,
  threadCores,
  threadTimes,
  type ThreadTimes,
} from './dataplane-threads.js';

export const read = (p: string) => readFileSync(p, 'utf8');

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(read(`/proc/${pid}/status`));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function enginePid(link: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = read(`/proc/${d}/cmdline`).split('\0');
      if (argv.includes('engine') && argv.includes(link)) return Number(d);
    } catch {
      /* gone */
    }
  }
  throw new Error(`no engine process for ${link}`);
}

export interface Target {
  name: 'awg' | 'anchor' | 'wireguard-go';
  /** tunnel address of the B side */
  peer: string;
  /** A-side engine pid */
  pidA: () => number;
  pidB: number;
  iperfPort: number;
  /** remove + re-add the A-side peer (drops the session) */
  resetPeer: () => Promise<void>;
}

export interface Iperf {
  gbps: number;
  cpuA: number;
  cpuB: number;
  /** the A-side process's threads over the transfer, in cores (dataplane-threads.ts) */
  threads: ThreadTimes;
  /** the machine's idle CPU over the transfer, in cores */
  idle: number;
}

/** one iperf3 client run from `nsA` to `peer:port`, its JSON report on stdout */
export function runIperf(
  nsA: string,
  peer: string,
  port: number,
  seconds: number,
  reverse: boolean,
) {
  return nsExec(
    nsA,
    'iperf3',
    ['-c', peer, '-p', String(port), '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])],
    { timeoutMs: (seconds + 30) * 1000, allowFail: true },
  );
}

export async function iperf(
  nsA: string,
  t: Target,
  seconds: number,
  reverse: boolean,
  perfName?: string,
): Promise<Iperf> {
  const pa = t.pidA();
  const a0 = cpuSeconds(pa, read);
  const b0 = cpuSeconds(t.pidB, read);
  const th0 = threadTimes(pa);
  const idle0 = machineIdle();
  const perf = perfName ? perfRecord(perfName, seconds) : null;
  let r = await runIperf(nsA, t.peer, t.iperfPort, seconds, reverse);
  await perf?.done;
  // the server may still be closing the previous test
  for (let i = 0; i < 10 && r.stdout.includes('server is busy'); i++) {
    await new Promise((res) => setTimeout(res, 500));
    r = await runIperf(nsA, t.peer, t.iperfPort, seconds, reverse);
  }
  const a1 = cpuSeconds(pa, read);
  const b1 = cpuSeconds(t.pidB, read);
  const th1 = threadTimes(pa);
  const idle1 = machineIdle();
  const j = JSON.parse(r.stdout || '{}') as {
    end?: { sum_received?: { bits_per_second: number; seconds: number } };
    error?: string;
  };
  const bps = j.end?.sum_received?.bits_per_second;
  if (!bps) throw new Error(`iperf3 through ${t.name} failed: ${j.error ?? r.stderr}`);
  const gbps = bps / 1e9;
  // CPU over the transfer time (the engines are idle around it)
  const wall = j.end!.sum_received!.seconds;
  return {
    gbps,
    cpuA: (a1 - a0) / wall / gbps,
    cpuB: (b1 - b0) / wall / gbps,
    threads: threadCores(th0, th1, wall),
    idle: (idle1 - idle0) / wall,
  };
}

export async function pingAvg(ns: string, addr: string, count: number): Promise<number> {
  const r = await nsExec(ns, 'ping', [
    '-n',
    '-q',
    '-c',
    String(count),
    '-i',
    '0.02',
    '-W',
    '1',
    addr,
  ]);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  if (!m) throw new Error(`ping ${addr}: ${r.stdout}`);
  return Number(m[1]);
}

/** the pause before each peer reset of the first-ping samples */
export const RESET_GAP_MS = 100;

export async function firstPing(ns: string, addr: string): Promise<number> {
  const r = await nsExec(ns, 'ping', ['-n', '-c', '1', '-W', '10', addr], { allowFail: true });
  const m = /time=([\d.]+) ms/.exec(r.stdout);
  if (!m) throw new Error(`first ping ${addr} unanswered: ${r.stdout}`);
  return Number(m[1]);
}

/**
 * A preload that profiles an `awg engine` process with the inspector (NODE_OPTIONS refuses
 * --cpu-prof) and writes DIR/engine-PID.cpuprofile at exit; other processes are untouched.
 */
export function profilePreload(work: string, dir: string): string {
  const p = join(work, 'profile-preload.mjs');
  writeFileSync(
    p,
    `import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
if (process.argv.includes('engine')) {
  process.on('exit', () => writeFileSync(${JSON.stringify(dir)} + '/engine-' + process.pid + '.memory.json',
    JSON.stringify({ usage: process.memoryUsage(), spaces: getHeapSpaceStatistics() }, null, 1)));
  const s = new Session();
  s.connect();
  s.post('Profiler.enable');
  s.post('Profiler.setSamplingInterval', { interval: 200 });
  s.post('Profiler.start');
  process.on('exit', () => s.post('Profiler.stop', (e, r) => {
    if (!e) writeFileSync(${JSON.stringify(dir)} + '/engine-' + process.pid + '.cpuprofile', JSON.stringify(r.profile));
  }));
}
`,
  );
  return p;
}

/**
 * `AWG_BENCH_ENGINE_ROOT=DIR` (a copy of bin/ + dist/ + node_modules): start that build's
 * engine directly on a persistent TUN instead of through `awg apply`, so two builds can be
 * compared while other runs rebuild the checkout's dist/.
 */
export async function startEngineDirect(
  ns: string,
  root: string,
  link: string,
  uapi: string,
  nodeOptions: string | undefined,
  uapiSet: string[],
): Promise<{ kill(): Promise<void> }> {
  await nsExec(ns, 'ip', ['tuntap', 'add', 'dev', link, 'mode', 'tun']);
  mkdirSync(dirname(uapi), { recursive: true });
  const child = spawn(
    'nsenter',
    [
      `--net=${netnsPath(ns)}`,
      '--',
      process.execPath,
      join(root, 'bin/awg.js'),
      'engine',
      '--link',
      link,
      '--uapi',
      uapi,
    ],
    {
      env: { ...process.env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  child.stdin.end(uapiSet.join('\n') + '\n\n');
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
  };
  for (let i = 0; i < 400 && !out.includes('ready'); i++)
    await new Promise((r) => setTimeout(r, 25));
  if (!out.includes('ready')) {
    await kill();
    throw new Error(`engine from ${root} not ready: ${out}`);
  }
  return { kill };
}

export const sample = (name: string, unit: string, runs: number[], note?: string): Sample => ({
  name,
  unit,
  runs,
  median: median(runs),
  note,
});
