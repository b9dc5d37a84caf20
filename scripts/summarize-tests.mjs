// Print the plain closing line CI reads: "tests: N passed, N failed, N skipped, N files failed
// to load", preceded by one line per pass and the name of every failed and skipped test, every
// failed check and every test file that failed to load (a file that throws at import has no
// tests, so vitest's counts miss it). The exit status is non-zero exactly when that line reports
// a failure, a file that did not load, a skip under CI, or when it counts nothing at all.
//   node scripts/summarize-tests.mjs [--checks FILE.tsv] [REPORT.json …]
// FILE.tsv (scripts/test.sh appends a row per pass it ran): NAME<TAB>pass|fail[<TAB>REPORT|-]
// - a row without a report is one check (the soak, a smoke, the static checks): one test passed
//   or failed;
// - a row with a report is a vitest pass: its tests are counted under NAME. A report that is
//   missing (the pass ended before writing it) is a failure; so is a pass that exited non-zero
//   with no failed test in its report (vitest's JSON has no place for an unhandled error; the
//   tests of a worker that died are left "pending" in it, counted as skipped).
// A REPORT.json argument is a vitest pass named after its file, its exit status unknown.
// Under CI (CI set and not "false"/"0") a skipped test is a failure: a prerequisite that CI
// lacks must be installed by scripts/setup.sh, not silently stepped over.
import { existsSync, readFileSync } from 'node:fs';
import { basename, relative } from 'node:path';

const args = process.argv.slice(2);
const rows = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--checks') {
    const file = args[++i];
    const text = file && existsSync(file) ? readFileSync(file, 'utf8') : '';
    for (const line of text.split('\n').filter((l) => l.trim())) {
      const [name, status, report] = line.split('\t');
      rows.push({
        name,
        ok: status === 'pass',
        report: report && report !== '-' ? report : undefined,
      });
    }
  } else rows.push({ name: basename(args[i], '.json'), ok: undefined, report: args[i] });
}
const ci = !!process.env.CI && !['false', '0'].includes(process.env.CI);
const failed = [];
const skipped = [];
const unloaded = [];
const passes = [];
let passed = 0;
/** The first lines of a failed test's message: what failed, where CI's log shows only the tail. */
const why = (t) => {
  const lines = (t.failureMessages ?? [])
    .join('\n')
    .split('\n')
    .filter((l) => l.trim());
  return lines.length ? `\n      ${lines.slice(0, 4).join('\n      ')}` : '';
};
/** the tests of one vitest report, counted into the totals; its own counts */
function countReport(report) {
  const n = { passed: 0, failed: 0, skipped: 0, unloaded: 0 };
  for (const file of report.testResults ?? []) {
    const name = relative(process.cwd(), file.name);
    const tests = file.assertionResults ?? [];
    if (file.status === 'failed' && !tests.some((t) => t.status === 'failed')) {
      unloaded.push(`${name}: ${(file.message || 'failed outside any test').split('\n')[0]}`);
      n.unloaded++;
    }
    for (const t of tests) {
      const title = `${name} > ${t.fullName ?? t.title}`;
      if (t.status === 'passed') n.passed++;
      else if (t.status === 'failed') {
        failed.push(`${title}${why(t)}`);
        n.failed++;
      } else if (t.status === 'pending' || t.status === 'skipped' || t.status === 'todo') {
        skipped.push(title);
        n.skipped++;
      }
    }
  }
  passed += n.passed;
  return n;
}
for (const row of rows) {
  if (row.report === undefined) {
    if (row.ok) passed++;
    else failed.push(`${row.name} (a check: its log says why)`);
    passes.push(`${row.name}: ${row.ok ? 'passed' : 'FAILED'} (a check, one test)`);
    continue;
  }
  let report;
  try {
    report = JSON.parse(readFileSync(row.report, 'utf8'));
  } catch (e) {
    const reason = existsSync(row.report) ? `unreadable: ${e.message}` : 'missing';
    failed.push(
      `${row.name}: its report ${row.report} is ${reason} (the pass ended before writing it)`,
    );
    passes.push(`${row.name}: no report`);
    continue;
  }
  const n = countReport(report);
  if (row.ok === false && n.failed === 0 && n.unloaded === 0)
    failed.push(
      `${row.name}: vitest exited non-zero with no failed test (an unhandled error, or a worker that died: its log says)`,
    );
  passes.push(
    `${row.name}: ${n.passed} passed, ${n.failed} failed, ${n.skipped} skipped${n.unloaded ? `, ${n.unloaded} files failed to load` : ''}`,
  );
}
if (passed === 0 && failed.length === 0)
  failed.push('nothing ran: no test passed and no check was recorded');
const list = (head, items) => {
  if (items.length === 0) return;
  console.log(`${head} (${items.length}):`);
  for (const i of items) console.log(`  - ${i}`);
};
list('passes and checks', passes);
list('failed', failed);
list('files that failed to load', unloaded);
list(ci ? 'skipped (a failure under CI)' : 'skipped', skipped);
console.log(
  `tests: ${passed} passed, ${failed.length} failed, ${skipped.length} skipped, ${unloaded.length} files failed to load`,
);
const bad = failed.length > 0 || unloaded.length > 0 || (ci && skipped.length > 0);
process.exit(bad ? 1 : 0);
