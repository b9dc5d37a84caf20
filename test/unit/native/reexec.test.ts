/**
 * Re-executing with Node flags (awg up, awg daemon): the new process has the flags, keeps its
 * pid, and still writes to the stdout and the descriptors it was handed, although Node marks
 * its standard streams close-on-exec once it has used them (the regression of Step 14: every
 * event of `awg up --json` went to /dev/null).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inheritedFds, missingFlags } from '../../../src/native/reexec.js';
import { REPO_ROOT } from '../../helpers/awg.js';

const linux = process.platform === 'linux';

describe('reexec', () => {
  it('missingFlags compares flag names with execArgv and NODE_OPTIONS', () => {
    expect(
      missingFlags(
        ['--max-semi-space-size=1', '--expose-gc', '--no-maglev'],
        ['--max-semi-space-size=4'],
        '--expose-gc',
      ),
    ).toEqual(['--no-maglev']);
  });

  it('inheritedFds: stdio, the connector socket and socket-activation descriptors of this pid only', () => {
    expect(inheritedFds({})).toEqual([0, 1, 2]);
    expect(inheritedFds({ AWG_PROC_CONNECTOR_FD: '3' })).toEqual([0, 1, 2, 3]);
    expect(inheritedFds({ AWG_PROC_CONNECTOR_FD: '3; rm -rf /' })).toEqual([0, 1, 2]);
    expect(inheritedFds({ LISTEN_FDS: '2', LISTEN_PID: String(process.pid) })).toEqual([
      0, 1, 2, 3, 4,
    ]);
    expect(inheritedFds({ LISTEN_FDS: '2', LISTEN_PID: '1' })).toEqual([0, 1, 2]);
  });

  it.runIf(linux)(
    'the re-executed process has the flags, the same pid, its stdout and a handed-over descriptor',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'awg-reexec-'));
      try {
        const file = join(dir, 'fd3');
        const fd3 = openSync(file, 'w');
        const script = `
          import { reexecWithFlags } from ${JSON.stringify(join(REPO_ROOT, 'src/native/reexec.ts'))};
          import { writeSync, fstatSync } from 'node:fs';
          process.stdout.write('');
          if (!process.env.AWG_NODE_FLAGS) {
            console.log('before ' + process.pid);
            console.log('returned: ' + reexecWithFlags(['--expose-gc']));
          } else {
            console.log('after ' + process.pid + ' gc=' + typeof globalThis.gc + ' env=' + process.env.AWG_NODE_FLAGS);
            writeSync(3, 'fd3 ok ' + fstatSync(3).size);
          }`;
        const main = join(dir, 'main.ts');
        writeFileSync(main, script);
        const env: NodeJS.ProcessEnv = { ...process.env, AWG_PROC_CONNECTOR_FD: '3' };
        delete env.AWG_NODE_FLAGS;
        delete env.NODE_OPTIONS;
        const child = spawn(
          process.execPath,
          ['--import', join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs'), main],
          { env, stdio: ['ignore', 'pipe', 'pipe', fd3] },
        );
        closeSync(fd3);
        let out = '';
        let err = '';
        child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        const code = await new Promise<number | null>((r) => child.on('exit', r));
        expect(err).toBe('');
        expect(code).toBe(0);
        const before = /before (\d+)/.exec(out)?.[1];
        expect(before, out).toBeDefined();
        expect(out).toContain(`after ${before} gc=function env=--expose-gc`);
        expect(out).not.toContain('returned:');
        expect(readFileSync(file, 'utf8')).toBe('fd3 ok 0');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
