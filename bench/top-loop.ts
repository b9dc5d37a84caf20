/**
 * The child that top.bench.ts measures: the monitor's loop alone (read the kernel's counters,
 * aggregate, serialise one JSON document to stdout, once per `--interval` ms), or with
 * `--idle` the same Node process with the loop disabled (a timer that does nothing: Node's
 * own idle cost, the reference). Every tick it prints `tick <n> flows <f> ms <t>` to stderr
 * so the bench can check what the monitor saw and how long a read took.
 *
 * Run: `node --import tsx bench/top-loop.ts [--idle] [--interval=1000]` inside the namespace.
 */
import type { TrafficSource } from '../src/procs/top/reading.js';

const idle = process.argv.includes('--idle');
const interval = Number(process.argv.find((a) => a.startsWith('--interval='))?.slice(11) ?? '1000');

interface MonitorModule {
  linuxTrafficSource(opts?: object): TrafficSource;
}

if (idle) {
  setInterval(() => {}, interval);
  process.stderr.write('ready\n');
} else {
  // the monitor's module lands on its own branch (s16-monitor): imported by name at run time
  const spec = '../src/procs/top/linux.js';
  const mod = (await import(spec)) as MonitorModule;
  const source = mod.linuxTrafficSource({});
  let n = 0;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    const t0 = performance.now();
    const r = await source.read();
    process.stdout.write(
      `${JSON.stringify({ at: r.at, flows: r.flows, processes: [...r.processes.values()] })}\n`,
    );
    const ms = performance.now() - t0;
    process.stderr.write(`tick ${++n} flows ${r.flows.length} ms ${ms.toFixed(1)}\n`);
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
