/**
 * What an engine's threads did during one iperf3 transfer of bench/dataplane.bench.ts: CPU run
 * and runnable-wait time (/proc/PID/task/TID/schedstat) of the process's main thread (our
 * engine's, or `awg up`'s, which runs its engines in process) and of all its threads, in cores
 * over the transfer; and, with `AWG_BENCH_PERF=DIR`, a system-wide `perf record -g` of the last
 * round's transfers (both CPUs: the engines, their peers, iperf3 and the kernel's work for
 * them), written as DIR/<target>-<direction>.data for `perf report -i`. `machineIdle`: how
 * much of the machine's CPUs stayed idle (is the transfer bound by the machine's CPU?).
 * Run the engine with `AWG_BENCH_NODE_OPTIONS=--perf-basic-prof` to name its JS frames.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface ThreadTimes {
  /** ns run / waited runnable by the main thread (tid = pid) */
  mainRun: number;
  mainWait: number;
  /** ns run / waited by all threads together */
  run: number;
  wait: number;
}

export function threadTimes(pid: number): ThreadTimes {
  const t: ThreadTimes = { mainRun: 0, mainWait: 0, run: 0, wait: 0 };
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return t;
  }
  for (const tid of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')
        .trim()
        .split(' ')
        .map(Number);
      t.run += run!;
      t.wait += wait!;
      if (Number(tid) === pid) {
        t.mainRun = run!;
        t.mainWait = wait!;
      }
    } catch {
      /* thread gone */
    }
  }
  return t;
}

/** the machine's idle time so far (idle + iowait of /proc/stat's cpu line), in seconds */
export function machineIdle(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  return (Number(f[4]) + Number(f[5])) / 100;
}

/** b − a over `wall` seconds, in cores (threads that exited in between are not counted) */
export function threadCores(a: ThreadTimes, b: ThreadTimes, wall: number): ThreadTimes {
  const c = (k: keyof ThreadTimes) => Math.max(0, b[k] - a[k]) / 1e9 / wall;
  return { mainRun: c('mainRun'), mainWait: c('mainWait'), run: c('run'), wait: c('wait') };
}

/**
 * `perf record -a -g` for `seconds` into DIR/name.data (AWG_BENCH_PERF=DIR), or null when the
 * variable is unset. The caller awaits `done` after the transfer.
 */
export function perfRecord(
  name: string,
  seconds: number,
): { proc: ChildProcess; done: Promise<void> } | null {
  const dir = process.env.AWG_BENCH_PERF;
  if (!dir) return null;
  mkdirSync(dir, { recursive: true });
  const proc = spawn(
    'perf',
    [
      'record',
      '-a',
      '-g',
      '-F',
      '499',
      '-o',
      join(dir, `${name}.data`),
      '--',
      'sleep',
      String(seconds),
    ],
    { stdio: 'ignore' },
  );
  const done = new Promise<void>((r) => {
    proc.on('exit', () => r());
    proc.on('error', () => r());
  });
  return { proc, done };
}
