#!/usr/bin/env node
// `npm run fuzz`: the long run of the property-based fuzz targets (test/fuzz/*.fuzz.ts).
// AWG_FUZZ_RUNS (default 22000) cases per unit of target weight: the weights add up to
// 51.75, so the default runs 1,138,500 cases. Prints each target's cases and time and the
// total, from the JSON lines the runner appends to .test-results/fuzz-report.jsonl.
// Extra arguments go to vitest (e.g. a file or `-t uapi`).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';

const report = '.test-results/fuzz-report.jsonl';
mkdirSync('.test-results', { recursive: true });
rmSync(report, { force: true });
const env = {
  ...process.env,
  AWG_FUZZ_RUNS: process.env.AWG_FUZZ_RUNS ?? '22000',
  AWG_FUZZ_REPORT: report,
};
const t0 = Date.now();
const r = spawnSync('npx', ['vitest', 'run', '--project', 'fuzz', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env,
});
const wall = (Date.now() - t0) / 1000;
let rows = [];
try {
  rows = readFileSync(report, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
} catch {
  /* no target ran */
}
const total = rows.reduce((n, x) => n + x.runs, 0);
for (const x of rows)
  console.log(
    `${x.failed ? 'FAIL' : 'ok  '} ${x.target.padEnd(32)} ${String(x.runs).padStart(9)} cases ${(x.ms / 1000).toFixed(1).padStart(8)} s  seed ${x.seed}`,
  );
console.log(
  `fuzz: ${total.toLocaleString('en-US')} cases in ${rows.length} targets, ${wall.toFixed(0)} s wall (AWG_FUZZ_RUNS=${env.AWG_FUZZ_RUNS})`,
);
process.exit(r.status ?? 1);
