/** scripts/summarize-tests.mjs: CI's closing line names what failed, skipped or did not load. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'awgt-summary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function summarize(report: object, ci: string | undefined) {
  const file = join(dir, 'r.json');
  writeFileSync(file, JSON.stringify(report));
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (ci !== undefined) env.CI = ci;
  const r = spawnSync(process.execPath, ['scripts/summarize-tests.mjs', file], {
    encoding: 'utf8',
    env,
  });
  return { code: r.status, out: r.stdout };
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
});
