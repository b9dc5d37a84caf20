/**
 * scripts/summarize-tests.mjs: CI's closing line counts every pass scripts/test.sh ran (vitest
 * reports and checks from its checks.tsv), names what failed, skipped or did not load, and the
 * exit status agrees with it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'awgt-summary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[], ci: string | undefined) {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (ci !== undefined) env.CI = ci;
  const r = spawnSync(process.execPath, ['scripts/summarize-tests.mjs', ...args], {
    encoding: 'utf8',
    env,
  });
  return { code: r.status, out: r.stdout };
}

function summarize(report: object, ci: string | undefined) {
  const file = join(dir, 'r.json');
  writeFileSync(file, JSON.stringify(report));
  return run([file], ci);
}

/** checks.tsv as scripts/test.sh writes it, the reports it names written beside it */
function summarizeChecks(
  rows: [name: string, status: 'pass' | 'fail', report?: object | 'missing'][],
  ci: string | undefined,
) {
  const tsv = join(dir, 'checks.tsv');
  const lines = rows.map(([name, status, report], i) => {
    if (report === undefined) return `${name}\t${status}\t-\n`;
    const file = join(dir, `report-${i}.json`);
    rmSync(file, { force: true });
    if (report !== 'missing') writeFileSync(file, JSON.stringify(report));
    return `${name}\t${status}\t${file}\n`;
  });
  writeFileSync(tsv, lines.join(''));
  return run(['--checks', tsv], ci);
}

/** the closing line's counts */
function counts(out: string) {
  const m = /^tests: (\d+) passed, (\d+) failed, (\d+) skipped, (\d+) files failed to load$/m.exec(
    out,
  );
  expect(m, out).not.toBeNull();
  const [passed, failed, skipped, unloaded] = m!.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
  ];
  expect(out.trimEnd().split('\n').at(-1), 'the closing line is the last').toBe(m![0]);
  return { passed, failed, skipped, unloaded };
}

const file = (name: string, status: string, tests: [string, string][], message = '') => ({
  name: join(process.cwd(), name),
  status,
  message,
  assertionResults: tests.map(([fullName, s]) => ({ fullName, status: s })),
});

describe('summarize-tests', () => {
  it('passes a clean run', () => {
    const r = summarize({ testResults: [file('a.test.ts', 'passed', [['x', 'passed']])] }, 'true');
    expect(r.code).toBe(0);
    expect(r.out).toContain('tests: 1 passed, 0 failed, 0 skipped, 0 files failed to load');
  });

  it('a skipped test fails under CI and is named; outside CI it is listed only', () => {
    const rep = {
      testResults: [
        file('a.test.ts', 'passed', [
          ['x', 'passed'],
          ['needs wg', 'pending'],
        ]),
      ],
    };
    const ci = summarize(rep, 'true');
    expect(ci.code).toBe(1);
    expect(ci.out).toContain('a.test.ts > needs wg');
    expect(summarize(rep, undefined).code).toBe(0);
    expect(summarize(rep, 'false').code).toBe(0);
  });

  it('a file that throws at load counts and fails the run', () => {
    const rep = {
      testResults: [
        file('a.test.ts', 'passed', [['x', 'passed']]),
        file('b.test.ts', 'failed', [], 'Error: netns prerequisites missing: tcpdump\n  at ...'),
      ],
    };
    const r = summarize(rep, undefined);
    expect(r.code).toBe(1);
    expect(r.out).toContain('b.test.ts: Error: netns prerequisites missing: tcpdump');
    expect(r.out).toContain('1 files failed to load');
  });

  it('names failed tests and fails when nothing passed', () => {
    const r = summarize(
      { testResults: [file('a.test.ts', 'failed', [['x', 'failed']])] },
      undefined,
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain('failed (1):\n  - a.test.ts > x');
    expect(summarize({ testResults: [] }, undefined).code).toBe(1);
  });

  it('counts every pass in checks.tsv: each vitest report under its name, each check as one test', () => {
    const unit = {
      testResults: [
        file('u.test.ts', 'passed', [
          ['a', 'passed'],
          ['b', 'passed'],
        ]),
      ],
    };
    const r = summarizeChecks(
      [
        ['static checks (typecheck, lint, format)', 'pass'],
        ['unit and fuzz (Node 20)', 'pass', unit],
        ['unit (Node 22)', 'pass', unit],
        ['unit (Node 24)', 'pass', unit],
        ['netns', 'pass', { testResults: [file('n.test.ts', 'passed', [['c', 'passed']])] }],
        ['soak', 'pass'],
        ['bench smoke', 'pass'],
        ['demo', 'pass'],
        ['pack smoke', 'pass'],
        ['deb smoke', 'pass'],
        ['deb upgrade smoke', 'pass'],
      ],
      'true',
    );
    expect(r.code).toBe(0);
    expect(counts(r.out)).toEqual({ passed: 3 * 2 + 1 + 7, failed: 0, skipped: 0, unloaded: 0 });
    expect(r.out).toContain('  - unit (Node 22): 2 passed, 0 failed, 0 skipped\n');
    expect(r.out).toContain('  - netns: 1 passed, 0 failed, 0 skipped\n');
    expect(r.out).toContain('  - deb upgrade smoke: passed (a check, one test)\n');
  });

  it('a failed check is a failed test, named', () => {
    const r = summarizeChecks(
      [
        ['netns', 'pass', { testResults: [file('n.test.ts', 'passed', [['c', 'passed']])] }],
        ['soak', 'fail'],
      ],
      'true',
    );
    expect(r.code).toBe(1);
    expect(counts(r.out)).toEqual({ passed: 1, failed: 1, skipped: 0, unloaded: 0 });
    expect(r.out).toContain('failed (1):\n  - soak (a check: its log says why)');
  });

  it('a report the pass never wrote (it crashed first) is a failure, whatever its exit status', () => {
    for (const status of ['pass', 'fail'] as const) {
      const r = summarizeChecks(
        [
          ['soak', 'pass'],
          ['unit (Node 22)', status, 'missing'],
        ],
        undefined,
      );
      expect(r.code).toBe(1);
      expect(counts(r.out)).toEqual({ passed: 1, failed: 1, skipped: 0, unloaded: 0 });
      expect(r.out).toMatch(/- unit \(Node 22\): its report .*report-1\.json is missing/);
      expect(r.out).toContain('  - unit (Node 22): no report\n');
    }
  });

  it('a vitest pass that exited non-zero with every test passed (an unhandled error) fails', () => {
    const clean = { testResults: [file('u.test.ts', 'passed', [['a', 'passed']])] };
    const r = summarizeChecks([['unit (Node 24)', 'fail', clean]], undefined);
    expect(r.code).toBe(1);
    expect(counts(r.out)).toEqual({ passed: 1, failed: 1, skipped: 0, unloaded: 0 });
    expect(r.out).toContain('unit (Node 24): vitest exited non-zero with no failed test');
    // a failed test already says why the pass exited non-zero: counted once
    const failing = { testResults: [file('u.test.ts', 'failed', [['a', 'failed']])] };
    expect(counts(summarizeChecks([['unit (Node 24)', 'fail', failing]], undefined).out)).toEqual({
      passed: 0,
      failed: 1,
      skipped: 0,
      unloaded: 0,
    });
  });

  it('the exit status is non-zero exactly when the closing line reports a failure, an unloaded file or a skip under CI', () => {
    const pass = { testResults: [file('a.test.ts', 'passed', [['x', 'passed']])] };
    const skip = { testResults: [file('a.test.ts', 'passed', [['x', 'skipped']])] };
    const fail = { testResults: [file('a.test.ts', 'failed', [['x', 'failed']])] };
    const unloaded = { testResults: [file('a.test.ts', 'failed', [], 'Error: boom')] };
    const cases: Parameters<typeof summarizeChecks>[0][] = [
      [['unit', 'pass', pass]],
      [
        ['unit', 'pass', pass],
        ['demo', 'pass'],
      ],
      [['unit', 'pass', skip]],
      [
        ['unit', 'pass', pass],
        ['demo', 'fail'],
      ],
      [['unit', 'fail', fail]],
      [['unit', 'fail', unloaded]],
      [['unit', 'pass', 'missing']],
      [['unit', 'fail', pass]],
      [],
    ];
    for (const ci of ['true', undefined])
      for (const rows of cases) {
        const r = summarizeChecks(rows, ci);
        const c = counts(r.out);
        const bad = c.failed > 0 || c.unloaded > 0 || (ci === 'true' && c.skipped > 0);
        expect(r.code, `${JSON.stringify(rows)} CI=${ci}:\n${r.out}`).toBe(bad ? 1 : 0);
      }
    // nothing recorded at all (no row, or no checks file) is a failure the line counts
    expect(counts(summarizeChecks([], undefined).out).failed).toBe(1);
    expect(counts(run(['--checks', join(dir, 'none.tsv')], undefined).out).failed).toBe(1);
  });
});
