/**
 * Crash-point testing, the full set (test/netns/crash-support.ts; CI runs a subset in
 * test/netns/crash-points.test.ts): every point of every scenario SIGKILLed and recovered from.
 * `npm run bench -- --only=crash-points` (root; tcpdump, nft). `AWG_CRASH_SCENARIO=<substring>`
 * runs the scenarios whose name holds it; `AWG_CRASH_POINTS=N` spreads N points per scenario
 * (the smoke: 1 point of "apply from nothing" alone); `AWG_CRASH_LIST=1` only lists the points.
 * Every point that fails is printed with what failed; the samples are the counts (points,
 * reached, holding) and the time per point.
 */
import { ensureDist } from '../test/helpers/awg.js';
import { sweepStaleNetns } from '../test/helpers/netns.js';
import {
  SCENARIOS,
  buildWorld,
  destroyWorld,
  pointId,
  runPoint,
  spread,
  tracePoints,
  type CrashWorld,
  type PointResult,
} from '../test/netns/crash-support.js';
import { median, percentile, type Sample } from './lib.js';

export async function crashPointsBench(smoke: boolean): Promise<Sample[]> {
  await ensureDist();
  await sweepStaleNetns();
  // the smoke proves the bench runs (CI's crash-points.test.ts runs three points of each scenario)
  const only = process.env.AWG_CRASH_SCENARIO ?? (smoke ? 'apply from nothing' : undefined);
  const per = Number(process.env.AWG_CRASH_POINTS ?? (smoke ? 1 : Infinity));
  const list = process.env.AWG_CRASH_LIST === '1';
  let w: CrashWorld | undefined;
  const results: PointResult[] = [];
  let traced = 0;
  try {
    w = await buildWorld('crashb');
    for (const s of SCENARIOS) {
      if (only && !s.name.includes(only)) continue;
      const points = await tracePoints(w, s);
      traced += points.length;
      console.log(`[crash] ${s.name}: ${points.length} points`);
      if (list) {
        for (const p of points) console.log(`  ${pointId(p)}`);
        continue;
      }
      for (const p of Number.isFinite(per) ? spread(points, per) : points) {
        const r = await runPoint(w, s, p);
        results.push(r);
        const verdict = !r.reached
          ? `not reached: ${(r.out ?? '').replace(/\s+/g, ' ').slice(0, 300)}`
          : r.problems.length
            ? `FAILED\n    ${r.problems.join('\n    ')}`
            : `holds${r.probed ? ', 0 leaked' : ''}`;
        console.log(
          `[crash] ${s.name} @ ${pointId(p)} (${(r.ms / 1000).toFixed(1)} s): ${verdict}`,
        );
      }
    }
  } finally {
    await destroyWorld(w);
  }
  const reached = results.filter((r) => r.reached);
  const failed = reached.filter((r) => r.problems.length);
  const distinct = new Set(reached.map((r) => `${r.point.scenario} ${pointId(r.point)}`)).size;
  const ms = results.map((r) => r.ms);
  const count = (name: string, n: number, note?: string): Sample => ({
    name,
    unit: 'points',
    runs: [n],
    median: n,
    note,
  });
  return [
    count('points traced (every scenario)', traced),
    count(
      'points run and reached (SIGKILL at the point)',
      distinct,
      `${results.length - reached.length} not reached`,
    ),
    count(
      'points that hold (converges, diff empty, down restores the snapshot, state readable, no process left, 0 leaked)',
      distinct - failed.length,
      `${reached.filter((r) => r.probed).length} with the leak probe`,
    ),
    count('points that failed', failed.length),
    ...(ms.length
      ? [
          {
            name: 'time per point (set-up, crash, recovery, down, checks)',
            unit: 'ms',
            runs: ms,
            median: median(ms),
            p90: percentile(ms, 90),
          },
        ]
      : []),
  ];
}
