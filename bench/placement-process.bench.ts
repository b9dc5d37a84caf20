/**
 * Step 5 placement, in-process watcher vs `awg placer` (the watcher in a SCHED_FIFO child).
 *
 * Each round: 1,000 copies of bash under a matching directory, run back to back from a shell
 * loop inside a test namespace, each sending one UDP datagram at once
 * (`echo x > /dev/udp/127.0.0.1/9999`). Measured per round:
 * - exec → placed: write(cgroup.procs) returned − EXEC timestamp_ns (CLOCK_MONOTONIC in both
 *   processes; the child reports it with AWG_PLACER_TRACE=1), over the placed processes;
 * - first packets by the wrong path: our nft table counts per packet whether its socket was
 *   created in the rule cgroup (`socket cgroupv2`).
 * Rounds: the watcher on this (daemon-like) main thread, idle or under an engine stand-in
 * (ChaCha20-Poly1305 over 1420-byte packets in 1 ms slices every ~2 ms, ≈ 50 % of a core, the
 * way a busy engine holds the main thread), at normal priority and SCHED_FIFO 10; then the
 * child process (SCHED_FIFO 10, or normal priority) with the same load on this thread.
 *
 * Run: `npx tsx bench/placement-process.bench.ts [--smoke] [--only=<round substring>] [--repeat=K]`
 * (K interleaved passes over the rounds, since other load on the machine drifts)
 * (root, nft, bash, nsenter, cgroup v2; `npm run build` first: the child is `node bin/awg.js placer`).
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rule } from '../src/config/schema.js';
import { compileRules } from '../src/model/match.js';
import { ProcConnector } from '../src/procs/connector.js';
import { ProcessPlacer } from '../src/procs/placer.js';
import { spawnPlacerProcess, type PlacerHandle } from '../src/procs/placer-process.js';
import { nftCgroupRef, parseCgroup2Mount } from '../src/resources/cgroup/parse.js';
import { machine, median, percentile, printSamples, type Sample } from './lib.js';
import {
  counterNamespace,
  counters,
  engineLoad,
  load,
  removeBenchCgroups,
  runAsync,
  sh,
  sleep,
  wrongPath,
} from './placement-lib.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const NOT_US = 0x3ffffff0;

export async function placementProcessBench(
  smoke: boolean,
  only?: string,
  repeat = 1,
): Promise<Sample[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const t of ['nft', 'bash', 'nsenter', 'ip', 'chrt']) {
    try {
      sh('sh', ['-c', `command -v ${t}`]);
    } catch {
      missing.push(t);
    }
  }
  const mount = parseCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
  if (!mount) missing.push('cgroup2');
  if (!existsSync(join(REPO, 'dist/cli/main.js'))) missing.push('dist (npm run build)');
  if (missing.length)
    return [
      {
        name: 'placement-process',
        unit: 'µs',
        runs: [],
        median: NaN,
        note: `skipped: missing ${missing.join(', ')}`,
      },
    ];

  const N = smoke ? 20 : 1000;
  const root = `awgt-${randomBytes(4).toString('hex')}`;
  const ns = `awgt-bench-${randomBytes(3).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), 'awgt-bench-'));
  const apps = join(tmp, 'apps');
  mkdirSync(apps);
  copyFileSync('/bin/bash', join(apps, 'awgt-bash'));
  chmodSync(join(apps, 'awgt-bash'), 0o755);
  for (const p of [root, `${root}/a`]) mkdirSync(join(mount!.mountPoint, p));
  const ref = nftCgroupRef(mount!, `${root}/a`);
  const ruleList = [Rule.parse({ name: 'a', match: { dir: apps }, target: 'vpn' })];
  const out: Sample[] = [];
  let conn: ProcConnector | undefined;
  let placer: ProcessPlacer | undefined;
  let handle: PlacerHandle | undefined;
  try {
    counterNamespace(ns, ref);
    const senders = () =>
      runAsync('nsenter', [
        `--net=/var/run/netns/${ns}`,
        '--',
        'bash',
        '-c',
        `for i in $(seq ${N}); do ${apps}/awgt-bash -c 'echo x > /dev/udp/127.0.0.1/9999'; done`,
      ]);

    type Where =
      | { kind: 'in-process'; fifo: boolean }
      | { kind: 'child'; priority: number; nodeFlags?: string[] };
    const round = async (label: string, where: Where, busy: boolean) => {
      if (only && !label.includes(only)) return;
      const lat: number[] = [];
      const wake: number[] = [];
      let recvAt = 0n;
      let stat = '';
      if (where.kind === 'in-process') {
        conn = ProcConnector.open();
        placer = new ProcessPlacer({
          matcher: compileRules(ruleList),
          cgroupRoot: root,
          mount: mount!,
          selfPid: NOT_US,
          onPlaced: (p) => {
            if (p.execTs === undefined) return;
            lat.push(Number(p.placedTs - p.execTs) / 1000);
            wake.push(Number(recvAt - p.execTs) / 1000);
          },
        });
        const pl = placer;
        conn.listen(
          (evs) => {
            recvAt = process.hrtime.bigint();
            pl.handleEvents(evs);
          },
          { onOverrun: () => pl.rescan() },
        );
        placer.rescan();
        if (where.fifo) sh('chrt', ['-f', '-p', '10', String(process.pid)]);
      } else {
        handle = spawnPlacerProcess({
          rules: ruleList,
          cgroupRoot: root,
          mount: mount!,
          ownPid: NOT_US,
          priority: where.priority,
          ...(where.nodeFlags
            ? {
                command: [process.execPath, ...where.nodeFlags, join(REPO, 'bin/awg.js'), 'placer'],
              }
            : {}),
          // the watcher alone (Step 5); the exec gate has its own bench (exec-gate.bench.ts)
          env: {
            ...process.env,
            AWG_PLACER_TRACE: '1',
            AWG_PROC_CONNECTOR_FD: '',
            AWG_EXEC_GATE: '0',
          },
          onPlaced: (p) => {
            lat.push(Number(p.placedNs - p.execNs) / 1000);
            if (p.recvNs) wake.push(Number(p.recvNs - p.execNs) / 1000);
          },
          onError: (e) => process.stderr.write(`placer: ${e.message}\n`),
        });
        while (handle.state !== 'ready') {
          if (handle.state === 'failed') throw new Error('placer process failed');
          await sleep(20);
        }
        await handle.flush();
      }
      const c0 = counters(ns);
      const l0 = load();
      const engine = busy ? engineLoad(1, 1) : undefined;
      let packets = 0;
      try {
        await senders();
        await sleep(300);
      } finally {
        packets = engine?.stop() ?? 0;
        if (where.kind === 'in-process' && where.fifo)
          sh('chrt', ['-o', '-p', '0', String(process.pid)]);
      }
      const l1 = load();
      const st = where.kind === 'in-process' ? placer!.stats : await handle!.flush();
      stat = `${st.placed}/${N} placed, ${st.esrch} exited before the write; load ${l0} → ${l1}${busy ? `; engine stand-in ${packets} packets` : ''}`;
      if (where.kind === 'child')
        stat += `; child ${handle!.info?.fifo ? `SCHED_FIFO ${handle!.info.priority}` : `normal priority (${handle!.info?.reason})`}`;
      placer?.close();
      conn?.close();
      placer = conn = undefined;
      await handle?.close();
      handle = undefined;
      const c1 = counters(ns);
      const { all, wrong } = wrongPath(c0, c1);
      const q = (xs: number[], p: number) => (xs.length ? percentile(xs, p).toFixed(0) : '-');
      out.push({
        name: `${label}: exec → placed`,
        unit: 'µs',
        runs: lat,
        median: lat.length ? median(lat) : NaN,
        p90: lat.length ? percentile(lat, 90) : NaN,
        note: `p99 ${q(lat, 99)} µs, max ${lat.length ? Math.max(...lat).toFixed(0) : '-'} µs; exec → event received p50/p90/p99 ${q(wake, 50)}/${q(wake, 90)}/${q(wake, 99)} µs; ${stat}`,
      });
      out.push({
        name: `${label}: first packets by the wrong path`,
        unit: 'packets',
        runs: [wrong],
        median: wrong,
        note: `of ${all} sent`,
      });
    };

    for (let rep = 0; rep < repeat; rep++) {
      await round('in-process, normal priority, idle', { kind: 'in-process', fifo: false }, false);
      await round(
        'in-process, normal priority, engine load',
        { kind: 'in-process', fifo: false },
        true,
      );
      await round('in-process, SCHED_FIFO 10, idle', { kind: 'in-process', fifo: true }, false);
      await round(
        'in-process, SCHED_FIFO 10, engine load',
        { kind: 'in-process', fifo: true },
        true,
      );
      await round('child SCHED_FIFO 10, parent idle', { kind: 'child', priority: 10 }, false);
      await round(
        'child SCHED_FIFO 10, engine load in parent',
        { kind: 'child', priority: 10 },
        true,
      );
      await round(
        'child normal priority, engine load in parent',
        { kind: 'child', priority: 0 },
        true,
      );
    }
    const flags = process.env.BENCH_PLACER_NODE_FLAGS?.split(' ').filter(Boolean);
    if (flags?.length)
      await round(
        `child SCHED_FIFO 10 with node ${flags.join(' ')}, engine load in parent`,
        { kind: 'child', priority: 10, nodeFlags: flags },
        true,
      );
  } finally {
    placer?.close();
    conn?.close();
    await handle?.close();
    try {
      sh('chrt', ['-o', '-p', '0', String(process.pid)]);
    } catch {
      /* not changed */
    }
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

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const smoke = process.argv.includes('--smoke');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
  console.log(`machine: ${machine()}`);
  const repeat = Number(process.argv.find((a) => a.startsWith('--repeat='))?.slice(9) ?? 1);
  const r = await placementProcessBench(smoke, only, repeat);
  printSamples('placement-process', r);
  mkdirSync(join(REPO, 'bench/out'), { recursive: true });
  writeFileSync(
    join(REPO, `bench/out/placement-process${smoke ? '-smoke' : ''}.json`),
    JSON.stringify(
      {
        machine: machine(),
        date: new Date().toISOString(),
        results: r.map((s) => ({ ...s, runs: s.runs.length > 1 ? [] : s.runs })),
      },
      null,
      2,
    ),
  );
}
