/**
 * What a limit costs the machine (Step 16): the CPU of the whole machine (/proc/stat: user,
 * system, softirq) while iperf3 moves a fixed rate through a limited rule, against the same
 * rate through an unlimited rule beside it, per Gbit/s moved. The limited rule's limit lies
 * above the rate, so every packet takes the shaping path (priority, NAT into the class's ports,
 * clsact redirect, ifb, HTB, bfifo) without being held back. Direct rules on a veth between
 * two namespaces (the topology of test/netns/limit-topology.ts); by hand (root, iperf3):
 *
 *   npm run build && npx tsx bench/limits-cpu.ts [--rate=1000] [--runs=5] [--seconds=4]
 *
 * Runs alternate limited / unlimited, upload then download; medians. The machine-wide count
 * includes whatever else runs: read it beside the load average it prints.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createLimitTopology, L, type LimitTopology } from '../test/netns/limit-topology.js';
import { showRun } from '../test/netns/perapp-topology.js';
import { machine, median } from './lib.js';

const arg = (name: string, dflt: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
const RATE = arg('rate', 1000) * 1e6;
const RUNS = arg('runs', 5);
const SECONDS = arg('seconds', 4);

/** busy and total jiffies of all CPUs */
function cpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f.map(Number);
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait! };
}

/** cores busy on average during one iperf3 run, and the rate it moved (bit/s) */
async function sample(
  t: LimitTopology,
  rule: string,
  reverse: boolean,
): Promise<{ cores: number; rate: number }> {
  const cores = cpu();
  const t0 = process.hrtime.bigint();
  const r = await t.awg([
    'exec',
    '--rule',
    rule,
    '--',
    'iperf3',
    '-c',
    L.server4,
    '-p',
    String(t.ports[0]),
    '-t',
    String(SECONDS),
    '-b',
    String(RATE),
    '-J',
    ...(reverse ? ['-R'] : []),
  ]);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = cpu();
  if (r.code !== 0) throw new Error(`iperf3 failed: ${showRun(r)}`);
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  // jiffies are 1/100 s (USER_HZ) per CPU
  return {
    cores: (after.busy - cores.busy) / 100 / secs,
    rate: j.end.sum_received.bits_per_second,
  };
}

const t = await createLimitTopology();
try {
  const limit = `${Math.round((RATE * 1.5) / 1e6)}Mbit`;
  const r = await t.apply(`version: 1
rules:
  - name: lim
    match: { name: awgt-no-such-exe-lim }
    target: direct
    limit: { upload: ${limit}, download: ${limit} }
  - name: free
    match: { name: awgt-no-such-exe-free }
    target: direct
`);
  if (r.code !== 0) throw new Error(`apply failed: ${showRun(r)}`);
  console.log(
    `${machine()}; load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `iperf3 TCP at ${RATE / 1e6} Mbit/s, ${SECONDS} s per run, ${RUNS} runs each, limit ${limit}`,
  );
  for (const reverse of [false, true]) {
    const lim: { cores: number; rate: number }[] = [];
    const free: { cores: number; rate: number }[] = [];
    for (let i = 0; i < RUNS; i++) {
      lim.push(await sample(t, 'lim', reverse));
      free.push(await sample(t, 'free', reverse));
    }
    const per = (xs: { cores: number; rate: number }[]) =>
      median(xs.map((x) => x.cores / (x.rate / 1e9)));
    const pl = per(lim);
    const pf = per(free);
    console.log(
      `${reverse ? 'download' : 'upload  '}: limited ${pl.toFixed(3)} cores per Gbit/s (${(median(lim.map((x) => x.rate)) / 1e6).toFixed(0)} Mbit/s), unlimited ${pf.toFixed(3)} (${(median(free.map((x) => x.rate)) / 1e6).toFixed(0)} Mbit/s): the limit costs ${(pl - pf).toFixed(3)} cores per Gbit/s (${(((pl - pf) / pf) * 100).toFixed(0)} %)`,
    );
  }
  console.log(
    `load after: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
} finally {
  await t.destroy();
}
