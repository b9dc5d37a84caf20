/**
 * `npm run bench` runs every benchmark and prints medians; `--smoke` runs each once with
 * tiny counts so CI proves they still work (no numbers are judged there).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machine, printSamples, type Sample } from './lib.js';
import { planBench } from './plan.bench.js';
import { applyBench } from './apply.bench.js';
import { diffBench } from './diff.bench.js';
import { daemonLoopBench } from './daemon-loop.bench.js';
import { proxyBench } from './proxy.bench.js';
import { proxyUdpBench } from './proxy-udp.bench.js';
import { dataplaneBench } from './dataplane.bench.js';
import { daemonApiBench } from './daemon-api.bench.js';
import { placementBench } from './placement.bench.js';
import { dataplaneUdpBench } from './dataplane-udp.bench.js';
import { dataplaneAwgBench } from './dataplane-awg.bench.js';
import { placementProcessBench } from './placement-process.bench.js';
import { positionsBench } from './positions.bench.js';
import { matchBench } from './match.bench.js';
import { execGateBench } from './exec-gate.bench.js';
import { aeadBench } from './aead.bench.js';
import { handshakeBench } from './handshake.bench.js';
import { startupBench } from './startup.bench.js';
import { cryptoPoolBench } from './crypto-pool.bench.js';
import { topBench } from './top.bench.js';
import { limitBench } from './limit.bench.js';
import { sseBench } from './sse.bench.js';
import { listsBench } from './lists.bench.js';
import { listsApplyBench } from './lists-apply.bench.js';
import { listsFetchBench } from './lists-fetch.bench.js';
import { setDeltaBench } from './set-delta.bench.js';
import { nftNotifyBench } from './nft-notify.bench.js';
import { crashPointsBench } from './crash-points.bench.js';
import { soakBench } from './soak.bench.js';

// an installed layout (bundledLayout) on Node 22.1+ keeps V8's compile cache, for root in the
// machine's /var/cache/awg: benchmarks keep theirs in a directory of their own (the Debian
// package's smokes refuse to run where /var/cache/awg exists)
const cacheDir = process.env.AWG_COMPILE_CACHE_DIR
  ? undefined
  : mkdtempSync(join(tmpdir(), 'awg-bench-compile-'));
if (cacheDir) {
  process.env.AWG_COMPILE_CACHE_DIR = cacheDir;
  process.on('exit', () => rmSync(cacheDir, { recursive: true, force: true }));
}
// the owner locks of the awg processes the benchmarks start: a directory of their own, not the
// machine's /run/awg (a package's smokes refuse to run where it exists)
if (!process.env.AWG_RUN_DIR) {
  const runDir = mkdtempSync(join(tmpdir(), 'awg-bench-run-'));
  process.env.AWG_RUN_DIR = runDir;
  process.on('exit', () => rmSync(runDir, { recursive: true, force: true }));
}
const smoke = process.argv.includes('--smoke');
/** `--NAME=a,b`: a comma-separated list of suite names, or undefined */
const listArg = (name: string): Set<string> | undefined => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? undefined : new Set(a.slice(name.length + 3).split(','));
};
// `--only=a,b`: these suites only; `--skip=a,b`: suites left out. CI runs the smoke in two
// parts (scripts/test.sh): the suites that push no traffic and take no real-time priority in
// its idle CPU cgroup beside the netns tests, the rest beside the host tests; and the soak
// apart (`soak:ci`)
const only = listArg('only');
const skip = listArg('skip') ?? new Set<string>();
// `--part=NAME`: the results go to bench/out/smoke-NAME.json (two parts do not overwrite each other)
const part = process.argv.find((a) => a.startsWith('--part='))?.slice(7);
if (part !== undefined && !/^[a-z0-9-]+$/.test(part)) throw new Error(`--part=${part}: [a-z0-9-]+`);

const suites: { name: string; run: (smoke: boolean) => Promise<Sample[]> }[] = [
  { name: 'plan', run: (s) => planBench(s ? 1 : 15) },
  { name: 'apply', run: applyBench },
  { name: 'diff', run: diffBench },
  { name: 'daemon-loop', run: daemonLoopBench },
  { name: 'proxy', run: proxyBench },
  { name: 'proxy-udp', run: proxyUdpBench },
  { name: 'dataplane', run: dataplaneBench },
  { name: 'daemon-api', run: daemonApiBench },
  { name: 'placement', run: placementBench },
  { name: 'dataplane-udp', run: dataplaneUdpBench },
  { name: 'dataplane-awg', run: dataplaneAwgBench },
  { name: 'placement-process', run: (sm) => placementProcessBench(sm) },
  { name: 'positions', run: positionsBench },
  { name: 'match', run: matchBench },
  { name: 'exec-gate', run: (sm) => execGateBench(sm) },
  { name: 'aead', run: aeadBench },
  { name: 'handshake', run: handshakeBench },
  { name: 'startup', run: startupBench },
  { name: 'crypto-pool', run: cryptoPoolBench },
  { name: 'top', run: topBench },
  { name: 'limit', run: limitBench },
  { name: 'sse', run: (sm) => sseBench(sm) },
  { name: 'lists', run: listsBench },
  { name: 'lists-apply', run: listsApplyBench },
  // the smoke again on a host without a default route (the routing probe's listings run); the
  // full run takes AWG_BENCH_NO_DEFAULT_ROUTE=1 on lists-apply instead
  {
    name: 'lists-apply-no-default-route',
    run: (sm) => (sm ? listsApplyBench(true, { noDefaultRoute: true }) : Promise.resolve([])),
  },
  // Step 21: a list by URL fetched, parsed and cached (plain, gzip, 304) against curl; a list
  // edit's set changed in place against loading it again and against nft -f; the smoke fails
  // when the path changes in kind (a 304 that downloads, a set reloaded), not on timing
  { name: 'lists-fetch', run: listsFetchBench },
  { name: 'set-delta', run: setDeltaBench },
  // Step 24: a large set load with the daemon's nf_tables watch listening, leaving and staying
  { name: 'nft-notify', run: nftNotifyBench },
  { name: 'crash-points', run: crashPointsBench },
  { name: 'soak', run: soakBench },
];

for (const n of [...(only ?? []), ...skip])
  if (!suites.some((s) => s.name === n)) throw new Error(`no benchmark suite named ${n}`);
const results: Record<string, Sample[]> = {};
console.log(`machine: ${machine()}`);
for (const s of suites) {
  if ((only && !only.has(s.name)) || skip.has(s.name)) continue;
  const t0 = performance.now();
  results[s.name] = await s.run(smoke);
  printSamples(s.name, results[s.name]!);
  // each suite's wall time: CI runs the smoke beside the host tests and must stay under 45 min
  console.log(`(${s.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
mkdirSync('bench/out', { recursive: true });
writeFileSync(
  `bench/out/${smoke ? 'smoke' : 'results'}${part ? `-${part}` : ''}.json`,
  JSON.stringify({ machine: machine(), date: new Date().toISOString(), results }, null, 2),
);
