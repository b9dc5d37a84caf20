/**
 * Step 5 placement: how fast the watcher (proc connector → cgroup.procs) places a freshly
 * exec'd process, and how many first packets leave before it does; `awg exec` for contrast.
 *
 * - latency: 1000 copies of /bin/true under a matching directory run back to back from a
 *   shell loop inside a test namespace; latency = write() returned − EXEC timestamp_ns
 *   (both CLOCK_MONOTONIC). Measured with and without the /proc/PID/cgroup check.
 * - first packets: 1000 copies of bash that send one UDP datagram at once
 *   (`echo x > /dev/udp/127.0.0.1/9999`); our own nft table counts per socket whether it was
 *   created in the rule cgroup (`socket cgroupv2`), i.e. whether that first packet would have
 *   been routed by the rule. The same through `awg exec --rule` (fewer runs: node startup).
 * Needs root, nft, bash, nsenter and cgroup v2; skipped with a note otherwise.
 */
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rule } from '../src/config/schema.js';
import { compileRules } from '../src/model/match.js';
import { ProcConnector } from '../src/procs/connector.js';
import { ProcessPlacer, type Placement } from '../src/procs/placer.js';
import { nftCgroupRef, parseCgroup2Mount } from '../src/resources/cgroup/parse.js';
import { median, percentile, type Sample } from './lib.js';
import { counterNamespace, counters, removeBenchCgroups, runAsync, sh } from './placement-lib.js';

const settle = () => new Promise((r) => setTimeout(r, 300));

function latencySample(name: string, ps: Placement[], note: string): Sample {
  const us = ps
    .filter((p) => p.execTs !== undefined)
    .map((p) => Number(p.placedTs - p.execTs!) / 1000);
  return {
    name,
    unit: 'µs',
    runs: us,
    median: us.length ? median(us) : NaN,
    p90: us.length ? percentile(us, 90) : NaN,
    note: `p99 ${us.length ? percentile(us, 99).toFixed(0) : '-'} µs, max ${us.length ? Math.max(...us).toFixed(0) : '-'} µs; ${note}`,
  };
}

export async function placementBench(smoke: boolean): Promise<Sample[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const t of ['nft', 'bash', 'nsenter', 'ip']) {
    try {
      sh('sh', ['-c', `command -v ${t}`]);
    } catch {
      missing.push(t);
    }
  }
  const mount = parseCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
  if (!mount) missing.push('cgroup2');
  if (missing.length)
    return [
      {
        name: 'placement',
        unit: 'µs',
        runs: [],
        median: NaN,
        note: `skipped: missing ${missing.join(', ')}`,
      },
    ];

  const N = smoke ? 20 : 1000;
  const NEXEC = smoke ? 3 : 100;
  const root = `awgt-${randomBytes(4).toString('hex')}`;
  const ns = `awgt-bench-${randomBytes(3).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), 'awgt-bench-'));
  const apps = join(tmp, 'apps');
  mkdirSync(apps);
  for (const [src, dst] of [
    ['/bin/true', 'awgt-true'],
    ['/bin/bash', 'awgt-bash'],
  ] as const) {
    copyFileSync(src, join(apps, dst));
    chmodSync(join(apps, dst), 0o755);
  }
  for (const p of [root, `${root}/a`]) mkdirSync(join(mount!.mountPoint, p));
  const ref = nftCgroupRef(mount!, `${root}/a`);
  const out: Sample[] = [];
  let conn: ProcConnector | undefined;
  let placer: ProcessPlacer | undefined;
  try {
    counterNamespace(ns, ref);
    const placements: Placement[] = [];
    conn = ProcConnector.open();
    const matcher = compileRules([Rule.parse({ name: 'a', match: { dir: apps }, target: 'vpn' })]);
    const inNs = (script: string) =>
      runAsync('nsenter', [`--net=/var/run/netns/${ns}`, '--', 'bash', '-c', script]);
    const round = async (label: string, checkCurrent: boolean, what: 'true' | 'bash') => {
      placer?.close();
      conn!.stop();
      placer = new ProcessPlacer({
        matcher,
        cgroupRoot: root,
        mount: mount!,
        // the shells are our descendants, which a placer never moves
        selfPid: 0x3ffffff0,
        checkCurrent,
        onPlaced: (p) => placements.push(p),
      });
      placer.attach(conn!);
      const c0 = counters(ns);
      await inNs(
        what === 'true'
          ? `for i in $(seq ${N}); do ${apps}/awgt-true; done`
          : `for i in $(seq ${N}); do ${apps}/awgt-bash -c 'echo x > /dev/udp/127.0.0.1/9999'; done`,
      );
      await settle();
      const st = placer.stats;
      const stat = `${st.placed}/${N} placed, ${st.esrch} matched but exited before the write, ${st.vanished} exec events (system-wide) gone before readlink`;
      if (what === 'true') {
        out.push(
          latencySample(
            `${label}: exec → placed, /bin/true copies${checkCurrent ? '' : ' (checkCurrent: false)'}`,
            placements.splice(0),
            stat,
          ),
        );
        return;
      }
      const c1 = counters(ns);
      const all = (c1.all ?? 0) - (c0.all ?? 0);
      const good = (c1.placed ?? 0) - (c0.placed ?? 0);
      out.push(
        latencySample(
          `${label}: exec → placed, bash copies sending one UDP datagram`,
          placements.splice(0),
          stat,
        ),
      );
      out.push({
        name: `${label}: watcher, first packets by the wrong path`,
        unit: 'packets',
        runs: [all - good],
        median: all - good,
        note: `of ${all} sent (one per process)`,
      });
    };
    await round('normal priority', true, 'true');
    await round('normal priority', false, 'true');
    await round('normal priority', true, 'bash');
    // SCHED_FIFO for the main thread (the poll callback runs there): docs/platform-linux.md#proc-connector
    const fifo = (() => {
      try {
        sh('chrt', ['-f', '-p', '10', String(process.pid)]);
        return true;
      } catch {
        return false;
      }
    })();
    if (fifo) {
      try {
        await round('SCHED_FIFO 10', true, 'true');
        await round('SCHED_FIFO 10', true, 'bash');
      } finally {
        sh('chrt', ['-o', '-p', '0', String(process.pid)]);
      }
    }

    // awg exec: the same sender, placed before it starts
    const state = join(tmp, 'state');
    mkdirSync(state);
    writeFileSync(
      join(state, 'applied.json'),
      JSON.stringify({
        configFile: '',
        appliedAt: '',
        claims: { cgroupRoot: root },
        resources: [root, `${root}/a`].map((p) => ({
          kind: 'cgroup',
          id: `cgroup/${p}`,
          deps: [],
          spec: { path: p },
        })),
        outcome: 'applied',
      }),
    );
    (placer as ProcessPlacer | undefined)?.close();
    placer = undefined;
    conn.close();
    conn = undefined;
    const bin = join(process.cwd(), 'bin/awg.js');
    if (!existsSync(join(process.cwd(), 'dist/cli/main.js'))) {
      out.push({
        name: 'awg exec: first packets by the wrong path',
        unit: 'packets',
        runs: [],
        median: NaN,
        note: 'skipped: run npm run build first',
      });
    } else {
      const e0 = counters(ns);
      await inNs(
        `for i in $(seq ${NEXEC}); do ${process.execPath} ${bin} exec --rule a --state-dir ${state} -- ${apps}/awgt-bash -c 'echo x > /dev/udp/127.0.0.1/9999'; done`,
      );
      const e1 = counters(ns);
      const eall = (e1.all ?? 0) - (e0.all ?? 0);
      const egood = (e1.placed ?? 0) - (e0.placed ?? 0);
      out.push({
        name: 'awg exec: first packets by the wrong path',
        unit: 'packets',
        runs: [eall - egood],
        median: eall - egood,
        note: `of ${eall} (one per awg exec)`,
      });
    }
  } finally {
    placer?.close();
    conn?.close();
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      /* not created */
    }
    if (mount) removeBenchCgroups(mount.mountPoint, [`${root}/a`, root]);
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}
