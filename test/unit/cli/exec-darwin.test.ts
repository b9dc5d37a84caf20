/**
 * `awg exec` where the daemon routes it (Platform.perApp 'flow-router', macOS): its argument
 * checks, its refusals (no daemon, root without a sudo user), and its order with a daemon
 * (a FakeCore behind the real API server): registered before the command starts, ended when
 * it exits, the command stopped when the daemon ends the registration first.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { commandUser, execCommand } from '../../../src/cli/commands/exec.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { AwgError } from '../../../src/errors.js';
import { capturingCli } from '../../helpers/macos-host/daemon.js';
import { FakeCore } from '../daemon/server-fake-core.js';

const darwin = { platform: { perApp: 'flow-router' as const }, euid: 501, env: {} };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'awg-exec-darwin-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function serve(core = new FakeCore()) {
  const socket = join(dir(), 'awg.sock');
  const server = await startApiServer(core, { socketPath: socket });
  cleanups.push(() => server.close());
  return { core, socket };
}

describe('awg exec through the daemon (macOS)', () => {
  it('argument checks are the same as on Linux, and come before the daemon is asked', async () => {
    const cli = capturingCli();
    const nowhere = join(dir(), 'none.sock');
    expect(
      await cli.run(() => execCommand(cli.io, [], { tunnel: 'work', socket: nowhere }, darwin)),
    ).toEqual({
      code: 1,
      out: 'awg: error [invalid-config]: no command given: awg exec --tunnel NAME -- COMMAND [ARGS…]\n',
    });
    for (const o of [{}, { tunnel: 'work', direct: true }, { rule: 'a', tunnel: 'b' }])
      expect(
        await cli.run(() => execCommand(cli.io, ['true'], { ...o, socket: nowhere }, darwin)),
      ).toEqual({
        code: 1,
        out: 'awg: error [invalid-config]: give exactly one of --tunnel NAME, --direct or --rule NAME\n',
      });
  });

  it('no daemon: refused, naming why and how to start one', async () => {
    const cli = capturingCli();
    const nowhere = join(dir(), 'none.sock');
    const r = await cli.run(() =>
      execCommand(cli.io, ['true'], { direct: true, socket: nowhere }, darwin),
    );
    expect(r).toEqual({
      code: 3,
      out: `awg: error [unsupported]: awg exec on macOS needs the awg daemon: no awg daemon answers on ${nowhere} (ENOENT)\nhint: start it with \`awg service install\` (or run \`awg daemon\`), or point --socket / $AWG_SOCKET at its socket\n`,
    });
  });

  it("as root without a sudo user (or with sudo from root): refused before the daemon is asked, since PF leaves root's connections alone", async () => {
    const { core, socket } = await serve();
    const cli = capturingCli();
    for (const env of [
      {},
      { SUDO_UID: '0', SUDO_GID: '0' },
      { SUDO_UID: '501' },
      { SUDO_UID: 'x', SUDO_GID: '20' },
    ]) {
      const r = await cli.run(() =>
        execCommand(cli.io, ['true'], { tunnel: 'work', socket }, { ...darwin, euid: 0, env }),
      );
      expect(r.code).toBe(3);
      expect(r.out).toBe(
        "awg: error [unsupported]: awg exec on macOS cannot route a command that runs as root: PF leaves root's connections to the routing table (the flow router's loop guard), so the choice would not apply\n" +
          'hint: run it with sudo from your user account (the command then runs as that user, SUDO_UID and SUDO_GID), or set SUDO_UID and SUDO_GID to the user it should run as\n',
      );
    }
    expect(core.calls).toEqual([]);
    expect(commandUser(0, { SUDO_UID: '501', SUDO_GID: '20' })).toEqual({ uid: 501, gid: 20 });
    expect(commandUser(501, {})).toBeUndefined();
  });

  it("registered before the command starts (its pid: ours, from the socket), ended when the command exits; the command's exit status is passed on", async () => {
    const core = new FakeCore();
    const marker = join(dir(), 'started');
    const seen: boolean[] = [];
    const routeExec = core.routeExec.bind(core);
    // slow to answer: a command spawned before the answer would have created the marker
    core.routeExec = async (pid, choice, onEnd) => {
      await new Promise((r) => setTimeout(r, 300));
      seen.push(existsSync(marker));
      return routeExec(pid, choice, onEnd);
    };
    const { socket } = await serve(core);
    const cli = capturingCli();
    const r = await cli.run(() =>
      execCommand(
        cli.io,
        ['sh', '-c', `touch ${marker}; exit 3`],
        { rule: 'browsers', socket },
        darwin,
      ),
    );
    expect(r).toEqual({ code: 3, out: '' });
    expect(seen).toEqual([false]);
    expect(existsSync(marker)).toBe(true);
    await expect
      .poll(() => core.calls.at(-1))
      .toEqual({ method: 'exec-ended', arg: { pid: process.pid } });
    expect(core.calls).toEqual([
      { method: 'routeExec', arg: { pid: process.pid, choice: { rule: 'browsers' } } },
      { method: 'exec-ended', arg: { pid: process.pid } },
    ]);
  });

  it('the daemon refuses: its error, its exit status, and the command never runs', async () => {
    const core = new FakeCore();
    core.fail.routeExec = new AwgError(
      'invalid-config',
      'awg exec --tunnel nope: unknown tunnel "nope" (tunnels: work) in the applied configuration',
    );
    const { socket } = await serve(core);
    const marker = join(dir(), 'ran');
    const cli = capturingCli();
    const r = await cli.run(() =>
      execCommand(cli.io, ['touch', marker], { tunnel: 'nope', socket }, darwin),
    );
    expect(r).toEqual({
      code: 1,
      out: 'awg: error [invalid-config]: awg exec --tunnel nope: unknown tunnel "nope" (tunnels: work) in the applied configuration\n',
    });
    expect(existsSync(marker)).toBe(false);
  });

  it("the daemon ends the registration while the command runs: awg exec says why, stops the command (SIGTERM) and exits with the error's status", async () => {
    const { core, socket } = await serve();
    const cli = capturingCli();
    // the command notes the SIGTERM it gets (a command that ran on would time the test out);
    // the registration is ended only once its trap is set (`ready`): a SIGTERM before that
    // kills sh outright, with no note (seen on a loaded machine)
    const d = dir();
    const marker = join(d, 'stopped');
    const ready = join(d, 'ready');
    const script = `sleep 30 & trap 'kill $!; echo TERM > ${marker}; exit 143' TERM; : > ${ready}; wait`;
    const run = cli.run(() =>
      execCommand(cli.io, ['sh', '-c', script], { direct: true, socket }, darwin),
    );
    await expect.poll(() => existsSync(ready)).toBe(true); // the test's timeout bounds the wait
    expect(core.execs.size).toBe(1);
    core.execs
      .get(process.pid)!
      .end('the config changed: awg exec --tunnel work: unknown tunnel "work"');
    expect(await run).toEqual({
      code: 6,
      out: 'awg exec: the config changed: awg exec --tunnel work: unknown tunnel "work"; stopping sh: its new connections would no longer follow --direct\n',
    });
    expect(readFileSync(marker, 'utf8')).toBe('TERM\n');
  });

  it.skipIf(process.geteuid?.() !== 0)(
    'as root through sudo: the command runs as SUDO_UID and SUDO_GID',
    async () => {
      const { socket } = await serve();
      const cli = capturingCli();
      const check = ['sh', '-c', '[ "$(id -u)" = 65534 ] && [ "$(id -g)" = 65533 ]'];
      expect(
        await cli.run(() =>
          execCommand(
            cli.io,
            check,
            { direct: true, socket },
            { ...darwin, euid: 0, env: { SUDO_UID: '65534', SUDO_GID: '65533' } },
          ),
        ),
      ).toEqual({ code: 0, out: '' });
      expect(
        await cli.run(() =>
          execCommand(
            cli.io,
            check,
            { direct: true, socket },
            { ...darwin, euid: 0, env: { SUDO_UID: '65534', SUDO_GID: '65534' } },
          ),
        ),
      ).toEqual({ code: 1, out: '' });
    },
  );

  it('Linux (cgroups) never asks the daemon: the apply record decides, as before', async () => {
    const { core, socket } = await serve();
    const cli = capturingCli();
    const r = await cli.run(() =>
      execCommand(
        cli.io,
        ['true'],
        { tunnel: 'work', socket, stateDir: dir() },
        { platform: { perApp: 'cgroup' } },
      ),
    );
    expect(r).toEqual({
      code: 1,
      out: 'awg: error [invalid-config]: awg is not applied: there is no apply record (run `awg apply -f CONFIG` first, or pass the same --state-dir)\n',
    });
    expect(core.calls).toEqual([]);
  });
});
