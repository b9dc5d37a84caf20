/**
 * How a CLI command chooses the daemon (daemon/client.ts daemonFor): --socket, $AWG_SOCKET or
 * the default path; direct mode when nothing answers, or when the daemon that answers runs in
 * another network namespace; an error when a listener does not answer.
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { daemonFor } from '../../../src/daemon/client.js';
import { otherNetns, socketAnswers } from '../../../src/daemon/socket.js';
import { AwgError } from '../../../src/errors.js';
import { afterThisTest } from '../../helpers/cleanup.js';
import { daemon, tmp } from './client-rig.js';

describe('daemon selection', () => {
  it('--socket, then $AWG_SOCKET, then /run/awg/awg.sock; --direct never connects', async () => {
    const { socket } = await daemon();
    const viaEnv = await daemonFor({}, { AWG_SOCKET: socket });
    expect(viaEnv.client).toBeDefined();
    viaEnv.client!.close();
    const viaFlag = await daemonFor({ socket }, { AWG_SOCKET: '/nonexistent/awg.sock' });
    expect(viaFlag.client).toBeDefined();
    viaFlag.client!.close();
    const none = await daemonFor({}, { AWG_SOCKET: join(tmp(), 'absent.sock') });
    expect(none.client).toBeUndefined();
    expect(none.reason).toMatch(/ENOENT/);
    const forced = await daemonFor({ socket, direct: true });
    expect(forced.client).toBeUndefined();
    expect((await daemonFor({}, {})).socket).toBe('/run/awg/awg.sock');
  });

  it('a daemon that answers from another network namespace is not used: direct mode, and why', async () => {
    const { socket } = await daemon();
    const seen: number[] = [];
    const elsewhere = await daemonFor(
      { socket },
      {},
      {
        listener: () => 4242,
        other: (pid) => (seen.push(pid), true),
      },
    );
    expect(elsewhere.client).toBeUndefined();
    expect(elsewhere.elsewhere).toBe(true);
    expect(elsewhere.reason).toBe(
      `the awg daemon on ${socket} (pid 4242) runs in another network namespace`,
    );
    expect(seen).toEqual([4242]);
    // cannot tell (another pid namespace, another user's process): the daemon is used
    for (const check of [
      { listener: () => 4242, other: () => undefined },
      { listener: () => undefined, other: () => true },
    ]) {
      const d = await daemonFor({ socket }, {}, check);
      expect(d.client).toBeDefined();
      d.client!.close();
    }
    // a command without a direct mode (events, confirm, limit) uses the daemon wherever it runs
    const anywhere = await daemonFor(
      { socket, anyNetns: true },
      {},
      {
        listener: () => 4242,
        other: () => true,
      },
    );
    expect(anywhere.client).toBeDefined();
    anywhere.client!.close();
    // this platform's own check: our listener is this process, in this namespace
    const real = await daemonFor({ socket }, {});
    expect(real.client, real.reason).toBeDefined();
    real.client!.close();
  });

  it.runIf(process.platform === 'linux')(
    'the listener of a connected socket is read from the kernel, and its namespace from /proc',
    async () => {
      const { socket } = await daemon();
      const { netSocketFd, peerCredentials } = await import('../../../src/native/peercred.js');
      const r = await socketAnswers(socket, 2000, (s) => peerCredentials(netSocketFd(s)).pid);
      expect(r).toEqual({ ok: true, pid: process.pid });
      expect(otherNetns(process.pid)).toBe(false);
      expect(otherNetns(2 ** 22 + 1)).toBeUndefined(); // above pid_max: no such process
    },
  );

  it('a loop stalled past the probe timeout still finds the daemon that accepted meanwhile', async () => {
    const { socket } = await daemon();
    for (const timeoutMs of [20, 50]) {
      const p = socketAnswers(socket, timeoutMs);
      const until = Date.now() + timeoutMs * 3; // the connect completes, the timer expires, both unseen
      while (Date.now() < until);
      expect(await p).toEqual({ ok: true });
    }
  });

  it('a listener too busy to accept is a daemon that does not answer, not none: an error, never direct mode', async () => {
    // a process that listens and then never runs its loop: the kernel queues backlog + 1 connects, then says EAGAIN
    const socket = join(tmp(), 'busy.sock');
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('node:net').createServer().listen({ path: process.argv[1], backlog: 1 }, () => {
           process.stdout.write('ready\\n'); const end = Date.now() + 60000; while (Date.now() < end);
         })`,
        socket,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    afterThisTest(() => void child.kill('SIGKILL'));
    await new Promise<void>((res) => child.stdout!.once('data', () => res()));
    const held: Socket[] = [];
    afterThisTest(() => held.forEach((c) => c.destroy()));
    let busy = '';
    for (let i = 0; i < 8 && !busy; i++) {
      const r = await socketAnswers(socket, 2000);
      if (!r.ok) busy = r.code ?? '';
      else held.push(connect(socket)); // keep the queue full
    }
    expect(busy).toBe('EAGAIN');
    const e = await daemonFor({ socket }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(AwgError);
    expect((e as AwgError).kind).toBe('driver');
    expect((e as AwgError).message).toContain(`the awg daemon socket ${socket} does not answer`);
  });
});
