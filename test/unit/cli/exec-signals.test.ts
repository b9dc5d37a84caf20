/**
 * `awg exec` forwards SIGTERM, SIGHUP, SIGUSR2, SIGINT and SIGQUIT to its command. The
 * forwarding must be in place before the command is started: the command may run, and a
 * caller that waits for its first output may signal awg, before spawn() returns to
 * JavaScript. A signal with no handler installed takes its default action and ends awg, which
 * leaves the command running with nobody to pass its status on (seen in CI under load).
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runCommand } from '../../../src/cli/commands/exec.js';
import { capturingCli } from '../../helpers/macos-host/daemon.js';

const FORWARDED = ['SIGTERM', 'SIGHUP', 'SIGUSR2', 'SIGINT', 'SIGQUIT'] as const;

describe('awg exec signal forwarding', () => {
  it('is installed before the command is spawned, and removed when it has exited', async () => {
    const before = FORWARDED.map((s) => process.listenerCount(s));
    let atSpawn: number[] = [];
    const code = await runCommand(
      capturingCli().io,
      ['sh', '-c', 'exit 3'],
      {},
      {
        spawn: ((cmd: string, args: string[], opts: object) => {
          atSpawn = FORWARDED.map((s) => process.listenerCount(s));
          return spawn(cmd, args, opts);
        }) as typeof spawn,
      },
    );
    expect(code).toBe(3);
    expect(atSpawn).toEqual(before.map((n) => n + 1));
    expect(FORWARDED.map((s) => process.listenerCount(s))).toEqual(before);
  });

  it('a signal raised while the command starts reaches the command', async () => {
    const before = FORWARDED.map((s) => process.listenerCount(s));
    const out = capturingCli().io;
    // the command traps SIGUSR2 and exits 7 on it; awg is signalled as soon as the command
    // has said it is ready, from inside the same spawn call's caller (before any await)
    const code = await runCommand(
      out,
      ['sh', '-c', 'trap "exit 7" USR2; echo ready >&2; while :; do sleep 0.02; done'],
      {},
      {
        spawn: ((cmd: string, args: string[], opts: object) => {
          const c = spawn(cmd, args, { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
          c.stderr!.once('data', () => process.kill(process.pid, 'SIGUSR2'));
          return c;
        }) as typeof spawn,
      },
    );
    expect(code).toBe(7);
    expect(FORWARDED.map((s) => process.listenerCount(s))).toEqual(before);
  });

  it('a command that cannot be started leaves no handler behind', async () => {
    const before = FORWARDED.map((s) => process.listenerCount(s));
    const cli = capturingCli();
    const r = await cli.run(() => runCommand(cli.io, ['awgt-no-such-command'], {}));
    expect(r.code).toBe(127);
    expect(r.out).toMatch(/awgt-no-such-command: command not found/);
    expect(FORWARDED.map((s) => process.listenerCount(s))).toEqual(before);
  });
});
