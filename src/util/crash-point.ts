/**
 * Crash points: named instants of a converge where the crash-point harness
 * (test/netns/crash-support.ts, bench/crash-points.bench.ts) kills the process with SIGKILL,
 * to prove that every instant of a transaction can be recovered from (docs/architecture.md,
 * "Crash safety").
 *
 * Off unless the environment asks (the flags are read once, at load):
 * - `AWG_CRASH_TRACE=<file>`: every point reached is appended to the file as one line,
 *   `<label>\t<occurrence>` (the harness's list of points of a scenario);
 * - `AWG_CRASH_AT=<label>[#<occurrence>]`: at that point (its n-th time, default the first)
 *   the process sends itself SIGKILL: no handler, no `finally`, no flush runs, as in a power
 *   cut of the process alone. The label is matched exactly.
 *
 * Only the process started with them is armed (AWG_CRASH_PID, below).
 *
 * A label names the step, never a time or a pid, so a scenario run again reaches the same
 * labels in the same order: `<area>:<what>[:<id>]`, e.g. `apply:link/awg-t1:create:before`,
 * `exec:link/awg-t1:ip` (its second time: `#2`), `state:applied:renamed`. Points inside a change carry the change's id
 * (`withChange`), so the same command in two changes is two points.
 */
import { appendFileSync } from 'node:fs';

/**
 * The points are the first awg process's: it records its pid in AWG_CRASH_PID, which the
 * engines, the placer and the tools it starts inherit (another pid: not armed), and which
 * its own re-execution with other Node flags keeps (execve keeps the pid).
 */
const MINE =
  (process.env.AWG_CRASH_TRACE !== undefined || process.env.AWG_CRASH_AT !== undefined) &&
  (process.env.AWG_CRASH_PID ??= String(process.pid)) === String(process.pid);
const TRACE = MINE ? process.env.AWG_CRASH_TRACE : undefined;
const AT = MINE ? parseAt(process.env.AWG_CRASH_AT) : undefined;
/** false in production: every call below is one test of a constant */
export const CRASH_POINTS_ARMED = TRACE !== undefined || AT !== undefined;

const seen = new Map<string, number>();
let change: string | undefined;

function parseAt(v: string | undefined): { label: string; n: number } | undefined {
  if (!v) return undefined;
  const m = /^(.*)#(\d+)$/.exec(v);
  return m ? { label: m[1]!, n: Number(m[2]) } : { label: v, n: 1 };
}

/** Reach the point `label`: traced and, when it is the one asked for, the process dies here. */
export function crashPoint(label: string): void {
  if (!CRASH_POINTS_ARMED) return;
  const n = (seen.get(label) ?? 0) + 1;
  seen.set(label, n);
  if (TRACE !== undefined) {
    try {
      appendFileSync(TRACE, `${label}\t${n}\n`);
    } catch {
      /* the trace is the harness's; a run never fails for it */
    }
  }
  if (AT && AT.label === label && AT.n === n) process.kill(process.pid, 'SIGKILL');
}

/**
 * The change being applied (its id), for the mutation points reached inside it. `undefined`
 * ends it.
 */
export function withChange(id: string | undefined): void {
  if (!CRASH_POINTS_ARMED) return;
  change = id;
}

/**
 * A mutation is about to run (a command, a netlink message): `exec:<change>:<what>`, or
 * `exec:outside:<what>` between changes; its occurrence tells the k-th one apart.
 */
export function mutationPoint(what: string): void {
  if (!CRASH_POINTS_ARMED) return;
  crashPoint(`exec:${change ?? 'outside'}:${what}`);
}
