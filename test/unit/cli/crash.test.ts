/**
 * Every awg process installs last-resort handlers (bin/awg.js → cli/crash.ts): an uncaught
 * exception or an unhandled rejection is logged and ends the process with 70, also when the
 * event loop would otherwise keep it alive (a daemon with open servers and timers).
 * Each case runs in a child Node process (the handlers are process-wide).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../helpers/awg.js';

const dir = mkdtempSync(join(tmpdir(), 'awg-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(name: string, body: string): { code: number | null; err: string } {
  const file = join(dir, `${name}.ts`);
  writeFileSync(
    file,
    `import { installCrashHandlers, setCrashLog } from ${JSON.stringify(join(REPO_ROOT, 'src/cli/crash.ts'))};\ninstallCrashHandlers();\nvoid setCrashLog;\n// keep the loop alive, as a daemon does\nsetInterval(() => {}, 1000);\n${body}\n`,
  );
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    killSignal: 'SIGKILL',
  });
  return { code: r.status, err: r.stderr };
}

describe('crash handlers', () => {
  it(
    'an uncaught exception is reported and exits 70 despite a live event loop',
    { timeout: 90_000 },
    () => {
      const r = run('throw', `setTimeout(() => { throw new Error('boom'); }, 10);`);
      expect(r.code).toBe(70);
      expect(r.err).toMatch(/^awg: fatal: uncaught exception: Error: boom\n {4}at /);
    },
  );

  it('an unhandled rejection is reported and exits 70', { timeout: 90_000 }, () => {
    const r = run('reject', `void Promise.reject(new Error('nope'));`);
    expect(r.code).toBe(70);
    expect(r.err).toMatch(/^awg: fatal: unhandled promise rejection: Error: nope\n/);
  });

  it('a process with a log (daemon, engine) reports through it', { timeout: 90_000 }, () => {
    const r = run(
      'logged',
      `setCrashLog((what, err) => process.stderr.write(JSON.stringify({ level: 60, msg: what + ': ' + (err as Error).message }) + '\\n'));\nsetTimeout(() => { throw new TypeError('bad'); }, 10);`,
    );
    expect(r.code).toBe(70);
    expect(r.err).toBe('{"level":60,"msg":"uncaught exception: bad"}\n');
  });
});
