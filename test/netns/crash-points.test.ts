/**
 * Crash-point testing in CI (the fast subset): every scenario of crash-support.ts traced, and
 * AWG_CRASH_POINTS of its points spread over it, each SIGKILLed and recovered from as
 * crash-support.ts describes. By default three of an apply or down (the first, the middle and
 * the last) and the middle one of a daemon's scenario (a daemon's point costs 20–50 s: its
 * start, adoption and stop around the crash; CI's 40 minutes). The full set is
 * bench/crash-points.bench.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDist } from '../helpers/awg.js';
import { requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import {
  SCENARIOS,
  buildWorld,
  destroyWorld,
  pointId,
  runPoint,
  spread,
  tracePoints,
  type CrashWorld,
} from './crash-support.js';

const skip = requireNetnsPrereqs(['nft', 'tcpdump']);
const perScenario = (name: string): number =>
  Number(process.env.AWG_CRASH_POINTS ?? (name.startsWith('daemon') ? 1 : 3));

describe.skipIf(skip)('crash points: SIGKILL at a step of a converge, then recover', () => {
  let w: CrashWorld | undefined;
  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    w = await buildWorld('crash');
  }, 240_000);
  afterAll(async () => {
    await destroyWorld(w);
  });

  for (const s of SCENARIOS)
    it(
      s.name,
      async () => {
        const points = await tracePoints(w!, s);
        expect(points.length, `${s.name}: points traced`).toBeGreaterThan(3);
        const failed: string[] = [];
        let reached = 0;
        for (const p of spread(points, perScenario(s.name))) {
          const r = await runPoint(w!, s, p);
          if (r.reached) reached++;
          if (r.problems.length) failed.push(`${pointId(p)}:\n  ${r.problems.join('\n  ')}`);
        }
        expect(failed, failed.join('\n')).toEqual([]);
        // a point the run no longer reaches is a trace that moved under the harness, not a pass
        expect(reached).toBe(Math.min(perScenario(s.name), points.length));
      },
      600_000,
    );
});
