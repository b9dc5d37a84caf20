/**
 * Step 9: the exec gate. `awg placer` (the child the daemon runs, SCHED_FIFO 10) with one rule
 * `{dir: <tmpfs>/apps}`; the tmpfs is the gate's only mark, so nothing else on the machine is
 * held. Rounds: gate on / gate off (AWG_EXEC_GATE=0: the watcher alone, as in Step 5), each
 * with this process (the daemon's stand-in) idle and under the engine stand-in (ChaCha20-
 * Poly1305 over 1420-byte packets, ≈ 50 % of a core on the main thread). Per round, from one
 * bash loop in a test namespace:
 * - N execs of the matched program (a copy of bash), each sending one UDP datagram at once;
 *   our nft table counts per packet whether its socket was created in the rule cgroup
 *   (`socket cgroupv2`): packets outside it went by the wrong path;
 * - N execs of a matched copy of `true`, and N of an unmatched copy on the same (marked) file
 *   system: wall time around each exec ($EPOCHREALTIME, µs) → p50/p99; the gate's added
 *   latency is the difference to the gate-off round of the same load.
 *
 * Run: `npx tsx bench/exec-gate.bench.ts [--smoke] [--repeat=K]` (K interleaved passes) (root, nft, bash, nsenter,
 * mount, cgroup v2; `npm run build` first: the child is `node bin/awg.js placer`).
 */
import { spawnSync } from 'node:child_process';
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
import { spawnPlacerProcess, type PlacerHandle } from '../src/procs/placer-process.js';
import { nftCgroupRef, parseCgroup2Mount } from '../src/resources/cgroup/parse.js';
import { machine, median, percentile, printSamples, type Sample } from './lib.js';
import {
  counterNamespace,
  counters,
  engineLoad,
  load,
  removeBenchCgroups,
  sh,
  sleep,
  wrongPath,
} from './placement-lib.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
/** the execs are our descendants, which a placer never moves: claim a pid that does not exist */
const NOT_US = 0x3ffffff0;

export async function execGateBench(smoke: boolean, repeat = 1): Promise<Sample[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const t of ['nft', 'bash', 'nsenter', 'ip', 'mount'])
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) missing.push(t);
  const mount = parseCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
  if (!mount) missing.push('cgroup2');
  if (!existsSync(join(REPO, 'dist/cli/main.js'))) missing.push('dist (npm run build)');
  if (missing.length)
    return [
      {
        name: 'exec-gate',
        unit: 'packets',
        runs: [],
        median: NaN,
        note: `skipped: missing ${missing.join(', ')}`,
      },
    ];

  const N = smoke ? 20 : 1000;
  const root = `awgt-${randomBytes(4).toString('hex')}`;
  const ns = `awgt-gate-${randomBytes(3).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), 'awgt-gatebench-'));
  const fs = join(tmp, 'fs');
  mkdirSync(fs);
  const out: Sample[] = [];
  let handle: PlacerHandle | undefined;
  let mounted = false;
  try {
    sh('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0755', 'awgt-gatebench', fs]);
    mounted = true;
    for (const d of ['apps', 'other']) mkdirSync(join(fs, d));
    copyFileSync('/bin/bash', join(fs, 'apps/awgt-bash'));
    copyFileSync('/bin/true', join(fs, 'apps/awgt-true'));
    copyFileSync('/bin/true', join(fs, 'other/awgt-true'));
    for (const f of ['apps/awgt-bash', 'apps/awgt-true', 'other/awgt-true'])
      chmodSync(join(fs, f), 0o755);
    for (const p of [root, `${root}/a`]) mkdirSync(join(mount!.mountPoint, p));
    const ref = nftCgroupRef(mount!, `${root}/a`);
    counterNamespace(ns, ref);
    const rules = [Rule.parse({ name: 'a', match: { dir: join(fs, 'apps') }, target: 'vpn' })];
    /** one bash loop: prints one wall time (µs) per exec */
    const timed = (cmd: string) => {
      const r = spawnSync(
        'nsenter',
        [
          `--net=/var/run/netns/${ns}`,
          '--',
          'bash',
          '-c',
          `for i in $(seq ${N}); do a=$EPOCHREALTIME; ${cmd}; b=$EPOCHREALTIME; echo $(( \${b/./} - \${a/./} )); done`,
        ],
        { encoding: 'utf8', maxBuffer: 1 << 24 },
      );
      if (r.status !== 0) throw new Error(`exec loop: ${r.stderr}`);
      return r.stdout.trim().split('\n').map(Number);
    };

    const round = async (gate: boolean, busy: boolean) => {
      const label = `gate ${gate ? 'on' : 'off'}, ${busy ? 'engine load' : 'idle'}`;
      const errors: string[] = [];
      handle = spawnPlacerProcess({
        rules,
        cgroupRoot: root,
        mount: mount!,
        ownPid: NOT_US,
        priority: 10,
        env: { ...process.env, AWG_PROC_CONNECTOR_FD: '', AWG_EXEC_GATE: gate ? '1' : '0' },
        onError: (e) => errors.push(e.message),
      });
      while (handle.state !== 'ready' || handle.gate === undefined) {
        if (handle.state === 'failed') throw new Error(`placer failed: ${errors.join('; ')}`);
        await sleep(20);
      }
      if (gate && (handle.gate.state !== 'gated' || handle.gate.marks.join() !== fs))
        throw new Error(`gate not on the tmpfs only: ${JSON.stringify(handle.gate)}`);
      await handle.flush();
      const c0 = counters(ns);
      const l0 = load();
      const engine = busy ? engineLoad(1, 1) : undefined;
      let sendUs: number[], matchedUs: number[], unmatchedUs: number[];
      try {
        sendUs = timed(`${fs}/apps/awgt-bash -c 'echo x > /dev/udp/127.0.0.1/9999'`);
        matchedUs = timed(`${fs}/apps/awgt-true`);
        unmatchedUs = timed(`${fs}/other/awgt-true`);
        await sleep(300);
      } finally {
        engine?.stop();
      }
      const l1 = load();
      const st = await handle.flush();
      const gs = handle.gateStats;
      await handle.close();
      handle = undefined;
      const c1 = counters(ns);
      const { all, wrong } = wrongPath(c0, c1);
      const q = (xs: number[], p: number) => percentile(xs, p).toFixed(0);
      const ctx = `load ${l0} → ${l1}; placer: ${st.placed} placed, ${st.gated} by the gate${gs ? `, gate answered ${gs.events} events (${gs.late} late, ${gs.errors} errors)` : ''}${errors.length ? `; errors: ${errors.join('; ')}` : ''}`;
      out.push({
        name: `${label}: first packets by the wrong path`,
        unit: 'packets',
        runs: [wrong],
        median: wrong,
        note: `of ${all} sent by ${N} execs; ${ctx}`,
      });
      out.push({
        name: `${label}: matched exec`,
        unit: 'µs',
        runs: matchedUs,
        median: median(matchedUs),
        p90: percentile(matchedUs, 90),
        note: `p99 ${q(matchedUs, 99)} µs, max ${Math.max(...matchedUs)} µs (fork+exec+exit of a copy of true, from the loop)`,
      });
      out.push({
        name: `${label}: unmatched exec (marked file system)`,
        unit: 'µs',
        runs: unmatchedUs,
        median: median(unmatchedUs),
        p90: percentile(unmatchedUs, 90),
        note: `p99 ${q(unmatchedUs, 99)} µs, max ${Math.max(...unmatchedUs)} µs`,
      });
      out.push({
        name: `${label}: matched exec sending one datagram`,
        unit: 'µs',
        runs: sendUs,
        median: median(sendUs),
        p90: percentile(sendUs, 90),
        note: `p99 ${q(sendUs, 99)} µs`,
      });
    };

    for (let rep = 0; rep < repeat; rep++)
      for (const busy of [false, true]) {
        await round(false, busy);
        await round(true, busy);
      }
  } finally {
    await handle?.close();
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      /* not created */
    }
    if (mount) removeBenchCgroups(mount.mountPoint, [`${root}/a`, root]);
    if (mounted) spawnSync('umount', ['-l', fs]);
    rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const smoke = process.argv.includes('--smoke');
  const repeat = Number(process.argv.find((a) => a.startsWith('--repeat='))?.slice(9) ?? 1);
  console.log(`machine: ${machine()}`);
  const r = await execGateBench(smoke, repeat);
  printSamples('exec-gate', r);
  mkdirSync(join(REPO, 'bench/out'), { recursive: true });
  writeFileSync(
    join(REPO, `bench/out/exec-gate${smoke ? '-smoke' : ''}.json`),
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
