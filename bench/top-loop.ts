/**
 * The child that top.bench.ts measures: the monitor's loop alone (read the kernel's counters,
 * aggregate, serialise one JSON document to stdout, once per `--interval` ms), or with
 * `--idle` the same Node process with the loop disabled (a timer that does nothing: Node's
 * own idle cost, the reference). Every tick it prints `tick <n> flows <f> ms <t> cpu <r> <o>` to stderr
 * so the bench can check what the monitor saw and how long a read took.
 * `cpu <read> <read+output>`: this process's CPU ms (all threads) for the read, and with the output.
 *
 * Run: `node --import tsx bench/top-loop.ts [--idle] [--interval=1000]` inside the namespace.
 */
import { linuxTrafficSource } from '../src/procs/top/linux.js';

const idle = process.argv.includes('--idle');
const interval = Number(process.argv.find((a) => a.startsWith('--interval='))?.slice(11) ?? '1000');

if (idle) {
  setInterval(() => {}, interval);
  process.stderr.write('ready\n');
} else {
  const source = linuxTrafficSource({});
  let n = 0;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const r = await source.read();
    const c1 = process.cpuUsage(c0);
    process.stdout.write(
      `${JSON.stringify({ at: r.at, flows: r.flows, processes: [...r.processes.values()] })}\n`,
    );
    const c2 = process.cpuUsage(c0);
    const ms = performance.now() - t0;
    const cpu = (c: NodeJS.CpuUsage) => ((c.user + c.system) / 1000).toFixed(2);
    process.stderr.write(
      `tick ${++n} flows ${r.flows.length} ms ${ms.toFixed(1)} cpu ${cpu(c1)} ${cpu(c2)}\n`,
    );
    busy = false;
  };
  await tick();
  process.stderr.write('ready\n');
  setInterval(() => void tick(), interval);
  process.on('SIGTERM', () => {
    source.close();
    process.exit(0);
  });
}
