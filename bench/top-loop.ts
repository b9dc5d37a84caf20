/**
 * The child that top.bench.ts measures: the monitor's loop alone, what `awg top --json
 * --direct` does without the CLI around it (read the kernel's counters through the Linux
 * TrafficSource, Monitor.update with every connection listed, one JSON document to stdout,
 * once per `--interval` ms); or with `--idle` the same Node process with the loop disabled (a
 * timer that does nothing: Node's own idle cost, the reference).
 *
 * Every tick it prints `tick <n> flows <f> ms <wall> cpu <read> <update> <json>` to stderr:
 * the flows read, the tick's wall time, and this process's CPU ms (all threads) for each
 * step, so the bench can say what the monitor saw and where its time goes.
 *
 * Run: `node --import tsx bench/top-loop.ts [--idle] [--interval=1000]` inside the namespace.
 */
import { linuxTrafficSource } from '../src/procs/top/linux.js';
import { Monitor } from '../src/procs/top/aggregate.js';
import { topContext } from '../src/procs/top/routing.js';
import { CGROUP_ROOT } from '../src/model/desired.js';

const idle = process.argv.includes('--idle');
const interval = Number(process.argv.find((a) => a.startsWith('--interval='))?.slice(11) ?? '1000');

if (idle) {
  setInterval(() => {}, interval);
  process.stderr.write('ready\n');
} else {
  const source = linuxTrafficSource({});
  // awg not applied: no rules or tunnels, every flow direct (as `awg top --direct` shows it then)
  const ctx = topContext(undefined, { cgroupRoot: CGROUP_ROOT, tunnelUp: () => false });
  const monitor = new Monitor();
  const ms = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) =>
    ((b.user - a.user + b.system - a.system) / 1000).toFixed(2);
  let n = 0;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const r = await source.read();
    const c1 = process.cpuUsage();
    const doc = monitor.update(r, ctx, { connections: true });
    const c2 = process.cpuUsage();
    process.stdout.write(`${JSON.stringify(doc)}\n`);
    const c3 = process.cpuUsage();
    const wall = (performance.now() - t0).toFixed(1);
    process.stderr.write(
      `tick ${++n} flows ${r.flows.length} ms ${wall} cpu ${ms(c0, c1)} ${ms(c1, c2)} ${ms(c2, c3)}\n`,
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
