/**
 * The starvation gauge on the real kernel (src/dataplane/starved.ts, what
 * AWG_UDP_SEND_THREAD=auto weighs): this thread, pinned to one CPU beside two busy loops pinned
 * there too, each in a session (an autogroup) of its own, gets about a third of that CPU and
 * waits the rest: its schedstat run delay exceeds its CPU time and the gauge says starved.
 * With the loops gone and the CPU its own, the verdict ends after CALM_WINDOWS windows. "Its
 * own" cannot mean a quiet machine (CI runs beside other work; a loaded machine made this half
 * fail once with nothing wrong in the gauge): for the second half the thread runs in the
 * real-time class (SCHED_FIFO), so no ordinary task holds it back, whatever else runs on that
 * CPU; the kernel's real-time throttling (5 % of each second left to other tasks) keeps its run
 * delay far under CALM_RATIO. It needs no namespace (only taskset, setsid and chrt); it runs
 * with the netns tests, one file at a time. (`setsid` is not a process-group leader here, so
 * it execs the loop in place and killing the child kills the loop.)
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { requireNetnsPrereqs, run } from '../helpers/netns.js';
import { CALM_WINDOWS, StarvationGauge, WINDOW_MS } from '../../src/dataplane/starved.js';

const skip = requireNetnsPrereqs(['taskset', 'setsid', 'chrt']);

/** Spins this thread for `ms`, asking the gauge all the while; returns its last verdict. */
function spin(g: StarvationGauge, ms: number): boolean {
  const end = Date.now() + ms;
  let v = false;
  for (let now = Date.now(); now < end; now = Date.now()) v = g.check(now);
  return v;
}

describe.skipIf(skip)('the starvation gauge, real run delay', () => {
  it('starved beside two busy autogroups on its CPU; calm again alone', async () => {
    const pid = String(process.pid); // vitest's forks pool: this test runs on the process's main thread
    const before = (await run('taskset', ['-pc', pid])).stdout.split(':').pop()!.trim();
    const cpu = before.split(/[,-]/)[0]!;
    const loops = [0, 1].map(() =>
      spawn('taskset', ['-c', cpu, 'setsid', 'sh', '-c', 'while :; do :; done'], {
        stdio: 'ignore',
      }),
    );
    try {
      await run('taskset', ['-pc', cpu, pid]);
      const g = new StarvationGauge();
      g.check(Date.now()); // the baseline
      expect(spin(g, 3 * WINDOW_MS + 200)).toBe(true);
      expect(g.windows).toBeGreaterThanOrEqual(2);
      expect(g.changes).toBe(1);
      for (const l of loops) l.kill('SIGKILL');
      await Promise.all(
        loops.map(
          (l) =>
            new Promise((r) =>
              l.exitCode !== null || l.signalCode !== null ? r(null) : l.once('exit', r),
            ),
        ),
      );
      await run('chrt', ['-f', '-p', '1', pid]);
      spin(g, WINDOW_MS + 50); // the window the loops ended in
      expect(spin(g, (CALM_WINDOWS + 1) * WINDOW_MS + 200)).toBe(false);
      expect(g.changes).toBe(2);
    } finally {
      for (const l of loops) l.kill('SIGKILL');
      await run('chrt', ['-o', '-p', '0', pid]);
      await run('taskset', ['-pc', before, pid]);
    }
  }, 30_000);
});
