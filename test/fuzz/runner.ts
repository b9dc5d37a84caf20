/**
 * Shared runner of the property-based fuzz targets (test/fuzz/*.fuzz.ts, fast-check).
 *
 * Environment:
 *   AWG_FUZZ_RUNS     cases per unit of weight (default 200: the short CI run). Each target
 *                     runs round(AWG_FUZZ_RUNS × weight) cases; `npm run fuzz` sets it so the
 *                     targets add up to more than 1,000,000 cases.
 *   AWG_FUZZ_SEED     replay: the seed fast-check printed with a counterexample (and
 *   AWG_FUZZ_PATH     its path) to re-run exactly that case.
 *   AWG_FUZZ_CASE_MS  hang budget of one case (default 2000 ms): a case that takes longer
 *                     fails as a hang. Synchronous cases cannot be interrupted, so their time
 *                     is measured, as CPU time of this process: a hang (a loop, a regex
 *                     that backtracks) spends it, a busy machine does not (CI runs the fuzz
 *                     targets in an idle CPU cgroup, where wall time stretches without bound:
 *                     a 20 ms case took 2.2–6.3 s of it once). Async cases wait on I/O,
 *                     which spends no CPU: fast-check cuts them off after
 *                     ASYNC_WALL_FACTOR × the budget of wall time.
 *   AWG_FUZZ_REPORT   a file to which each target appends one JSON line
 *                     `{target, runs, ms, seed}` (npm run fuzz collects them).
 *
 * A failure prints fast-check's report: the seed, the path and the shrunk counterexample.
 * Every failure found is kept as an explicit regression test in test/unit/fuzz-regressions/.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';

const int = (name: string, dflt: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`${name} must be a non-negative number, got ${v}`);
  return n;
};

export const BASE_RUNS = int('AWG_FUZZ_RUNS', 200);
export const CASE_MS = int('AWG_FUZZ_CASE_MS', 2000);
/** an async case's wall-time cut-off, in hang budgets (see AWG_FUZZ_CASE_MS) */
const ASYNC_WALL_FACTOR = 15;
const SEED = process.env.AWG_FUZZ_SEED;
const PATH = process.env.AWG_FUZZ_PATH;

/** The number of cases a target of this weight runs. */
export function runsFor(weight: number): number {
  return Math.max(1, Math.round(BASE_RUNS * weight));
}

/**
 * vitest's timeout for a target: a bound on a hang, scaled by its number of cases. Wall time,
 * which stretches without bound in CI's idle CPU cgroup (a target of 68 s's bound took 85 s
 * there with both cores busy, local CI run 12); a case that hangs is caught by its CPU-time
 * budget (AWG_FUZZ_CASE_MS) long before this.
 */
export function testTimeout(weight: number, perCaseMs = 5): number {
  return 600_000 + runsFor(weight) * perCaseMs * 4;
}

function params<T>(weight: number): fc.Parameters<T> {
  const p: fc.Parameters<T> = { numRuns: runsFor(weight), endOnFailure: false };
  if (SEED !== undefined && SEED !== '') p.seed = Number(SEED);
  if (PATH !== undefined && PATH !== '') p.path = PATH;
  return p;
}

function report(target: string, details: fc.RunDetails<unknown>, ms: number): void {
  const file = process.env.AWG_FUZZ_REPORT;
  if (!file) return;
  appendFileSync(
    file,
    JSON.stringify({
      target,
      runs: details.numRuns,
      ms: Math.round(ms),
      seed: details.seed,
      failed: details.failed,
    }) + '\n',
  );
}

/**
 * The shrunk counterexample, as JSON (Uint8Array as {bytes: hex}), in
 * .test-results/fuzz-failures/<target>.json: the input to copy into a regression test.
 */
function dumpCounterexample(target: string, details: fc.RunDetails<unknown>): void {
  try {
    const dir = join(process.cwd(), '.test-results', 'fuzz-failures');
    mkdirSync(dir, { recursive: true });
    const replacer = (_k: string, v: unknown) =>
      v instanceof Uint8Array ? { bytes: Buffer.from(v).toString('hex') } : v;
    const body = {
      target,
      seed: details.seed,
      path: details.counterexamplePath,
      counterexample: details.counterexample,
    };
    writeFileSync(
      join(dir, `${target.replace(/[^a-z0-9-]+/gi, '_')}.json`),
      JSON.stringify(body, replacer, 2) + '\n',
    );
  } catch {
    /* the report below still carries the counterexample */
  }
}

function finish(target: string, details: fc.RunDetails<unknown>, t0: number): void {
  report(target, details, performance.now() - t0);
  if (!details.failed) return;
  dumpCounterexample(target, details);
  const cause = details.errorInstance;
  const why = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  throw new Error(`fuzz target ${target}:\n${fc.defaultReportMessage(details)}\nFailure: ${why}`, {
    cause,
  });
}

/** CPU time (user + system) of this process so far, ms */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** A synchronous check that is not allowed to spend more CPU time than the hang budget. */
export function timed<A extends unknown[]>(
  check: (...a: A) => void,
  budgetMs = CASE_MS,
): (...a: A) => void {
  return (...a: A) => {
    const c0 = cpuMs();
    const t0 = performance.now();
    check(...a);
    const cpu = cpuMs() - c0;
    if (cpu > budgetMs)
      throw new Error(
        `case spent ${cpu.toFixed(0)} ms of CPU (${(performance.now() - t0).toFixed(0)} ms wall; hang budget AWG_FUZZ_CASE_MS=${budgetMs})`,
      );
  };
}

/** Runs a synchronous property `runsFor(weight)` times (each case time-boxed). */
export function fuzzSync<Ts extends [unknown, ...unknown[]]>(
  target: string,
  weight: number,
  arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  check: (...a: Ts) => void,
): void {
  const t0 = performance.now();
  const prop = fc.property(...arbs, timed(check) as (...a: Ts) => void);
  finish(target, fc.check(prop, params<Ts>(weight)) as fc.RunDetails<unknown>, t0);
}

/** Runs an asynchronous property; a case that has not settled within ASYNC_WALL_FACTOR budgets fails. */
export async function fuzzAsync<Ts extends [unknown, ...unknown[]]>(
  target: string,
  weight: number,
  arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  check: (...a: Ts) => Promise<void>,
): Promise<void> {
  const t0 = performance.now();
  const prop = fc.asyncProperty(...arbs, check);
  const p = params<Ts>(weight);
  p.plugins = [fc.timeout(CASE_MS * ASYNC_WALL_FACTOR) as fc.Plugin<Ts>];
  finish(target, (await fc.check(prop, p)) as fc.RunDetails<unknown>, t0);
}

/** Whether `e` is one of the error classes a parser documents; otherwise rethrow it. */
export function expectTyped(
  e: unknown,
  ...classes: (abstract new (...a: never[]) => unknown)[]
): void {
  if (classes.some((c) => e instanceof c)) return;
  throw new Error(
    `threw an untyped error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
    { cause: e },
  );
}

export { fc };
