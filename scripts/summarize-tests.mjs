// Print the plain closing line CI reads: "tests: N passed, N failed, N skipped, N files failed
// to load", preceded by the name of every failed and skipped test and every test file that
// failed to load (a file that throws at import has no tests, so vitest's counts miss it).
// Under CI (CI set and not "false"/"0") a skipped test is a failure: a prerequisite that CI
// lacks must be installed by scripts/setup.sh, not silently stepped over.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

// one or more vitest JSON reports (scripts/test.sh: the netns run's and the unit run's)
const r = {
  testResults: process.argv
    .slice(2)
    .flatMap((f) => JSON.parse(readFileSync(f, 'utf8')).testResults ?? []),
};
const ci = !!process.env.CI && !['false', '0'].includes(process.env.CI);
const failed = [];
const skipped = [];
const unloaded = [];
let passed = 0;
/** The first lines of a failed test's message: what failed, where CI's log shows only the tail. */
const why = (t) => {
  const lines = (t.failureMessages ?? [])
    .join('\n')
    .split('\n')
    .filter((l) => l.trim());
  return lines.length ? `\n      ${lines.slice(0, 4).join('\n      ')}` : '';
};
for (const file of r.testResults ?? []) {
  const name = relative(process.cwd(), file.name);
  const tests = file.assertionResults ?? [];
  if (file.status === 'failed' && !tests.some((t) => t.status === 'failed')) {
    unloaded.push(`${name}: ${(file.message || 'failed outside any test').split('\n')[0]}`);
  }
  for (const t of tests) {
    const title = `${name} > ${t.fullName ?? t.title}`;
    if (t.status === 'passed') passed++;
    else if (t.status === 'failed') failed.push(`${title}${why(t)}`);
    else if (t.status === 'pending' || t.status === 'skipped' || t.status === 'todo')
      skipped.push(title);
  }
}
const list = (head, items) => {
  if (items.length === 0) return;
  console.log(`${head} (${items.length}):`);
  for (const i of items) console.log(`  - ${i}`);
};
list('failed', failed);
list('files that failed to load', unloaded);
list(ci ? 'skipped (a failure under CI)' : 'skipped', skipped);
console.log(
  `tests: ${passed} passed, ${failed.length} failed, ${skipped.length} skipped, ${unloaded.length} files failed to load`,
);
const bad = failed.length > 0 || unloaded.length > 0 || passed === 0 || (ci && skipped.length > 0);
process.exit(bad ? 1 : 0);
