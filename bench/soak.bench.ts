/**
 * The daemon soak (test/netns/soak-support.ts): `awg daemon` under churn for a set time, then
 * its figures and verdict (test/netns/soak-verdict.ts). Root; nft and tcpdump.
 * - `npm run bench -- --only=soak`: 60 minutes (`AWG_SOAK_MINUTES=N` overrides); the bench
 *   smoke (`--smoke`) runs 15 seconds and leaves growth unjudged (no warm-up that short).
 *   The daemon's output (its log) is kept in bench/out/soak-daemon.log.
 * - `npm run -s soak:ci` (`tsx bench/soak.bench.ts --ci`): 5 minutes (AWG_SOAK_MINUTES too);
 *   prints the figures and exits 1 when the soak fails, 1 as well when a prerequisite is
 *   missing (CI never skips it).
 * A failed soak throws after printing its figures, so the bench run fails too.
 */
import { mkdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ensureDist } from '../test/helpers/awg.js';
import { requireNetnsPrereqs, sweepStaleNetns } from '../test/helpers/netns.js';
import { runSoak, soakOptions, type SoakOptions } from '../test/netns/soak-support.js';
import { failures, figures, report } from '../test/netns/soak-verdict.js';
import { machine, type Sample } from './lib.js';

type Mode = 'bench' | 'smoke' | 'ci';

function optionsFor(mode: Mode): SoakOptions {
  const log = (l: string) => console.log(`[soak] ${l}`);
  mkdirSync('bench/out', { recursive: true });
  const daemonLog = 'bench/out/soak-daemon.log';
  const env = process.env.AWG_SOAK_MINUTES;
  if (mode === 'smoke') return soakOptions(15_000, { sampleEveryMs: 2_000, log, daemonLog });
  const minutes = env ? Number(env) : mode === 'ci' ? 5 : 60;
  if (!(minutes > 0)) throw new Error(`AWG_SOAK_MINUTES=${env}: not a number of minutes`);
  return soakOptions(minutes * 60_000, { log, daemonLog });
}

/** the soak in `mode`: its figures printed; the failures (empty: it passed) */
export async function soak(
  mode: Mode,
  signal?: AbortSignal,
): Promise<{ lines: string[]; failed: string[]; samples: Sample[] }> {
  await ensureDist();
  await sweepStaleNetns();
  const o = optionsFor(mode);
  console.log(`[soak] machine: ${machine()}`);
  const r = await runSoak(o, signal);
  const f = figures(r);
  const lines = report(r, f);
  // the smoke is too short for a warm-up: growth is reported, not judged
  const failed = failures(r, f, { growth: mode !== 'smoke' });
  for (const l of lines) console.log(`[soak] ${l}`);
  const count = (name: string, unit: string, v: number, note?: string): Sample => ({
    name,
    unit,
    runs: [v],
    median: v,
    note,
  });
  const samples = [
    count(
      'daemon RSS at the end (after warm-up: start → end)',
      'MB',
      f.daemon.rssMb.end,
      `${f.daemon.rssMb.start.toFixed(1)} → ${f.daemon.rssMb.end.toFixed(1)}, max ${f.daemon.rssMb.max.toFixed(1)}`,
    ),
    count(
      'daemon open fds at the end',
      'fds',
      f.daemon.fds.end,
      `floor ${f.daemon.fds.floorFirst} → ${f.daemon.fds.floorLast}, max ${f.daemon.fds.max}`,
    ),
    count(
      'converge latency p50 per config edit',
      'ms',
      f.converge.p50,
      `p99 ${f.converge.p99}, ${f.converge.n} edits`,
    ),
    count('leaked packets', 'packets', r.leak.leaks),
    count('failed RPCs', 'calls', r.api.failures, `of ${r.api.calls}`),
    count('matched execs', 'execs', r.execs.started),
  ];
  return { lines, failed, samples };
}

export async function soakBench(smoke: boolean): Promise<Sample[]> {
  if (requireNetnsPrereqs(['nft', 'tcpdump'])) {
    console.log(`[soak] skipped: ${requireNetnsPrereqs(['nft', 'tcpdump'])}`);
    return [];
  }
  const { failed, samples } = await soak(smoke ? 'smoke' : 'bench');
  if (failed.length) throw new Error(`the soak FAILED:\n- ${failed.join('\n- ')}`);
  return samples;
}

// `tsx bench/soak.bench.ts --ci`: the 5-minute soak CI runs (scripts/test.sh)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const mode: Mode = process.argv.includes('--smoke')
    ? 'smoke'
    : process.argv.includes('--ci')
      ? 'ci'
      : 'bench';
  const stop = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      console.log(`[soak] ${sig}: stopping and cleaning up`);
      stop.abort();
    });
  let code = 1;
  try {
    // CI never skips the soak: a missing prerequisite is a failure
    const missing = requireNetnsPrereqs(['nft', 'tcpdump']);
    if (missing) throw new Error(missing);
    const { failed } = await soak(mode, stop.signal);
    if (stop.signal.aborted) failed.push('interrupted');
    if (failed.length) console.log(`[soak] FAILED:\n- ${failed.join('\n- ')}`);
    else console.log('[soak] passed');
    code = failed.length ? 1 : 0;
  } catch (e) {
    console.log(`[soak] FAILED: ${(e as Error).stack ?? String(e)}`);
  }
  process.exit(code);
}
