import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import {
  darwinProbeSockets,
  linuxProbeSockets,
  probeRunner,
  type ProbeSockets,
} from '../../../src/daemon/probe-run.js';
import { AF_INET, SOCK_CLOEXEC, SOCK_STREAM, socket } from '../../../src/native/libc.js';

let server: Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
});

const signal = () => new AbortController().signal;

/** macOS's sockets over a fake utun registry and natives: what was pinned, to which utun */
function darwin(utuns: Record<string, string>) {
  const pinned: Array<[string, number]> = [];
  const sockets = darwinProbeSockets({
    utun: (link) => utuns[link],
    natives: async () => ({
      boundTcpFd: (ifname: string, family: 4 | 6) => {
        pinned.push([ifname, family]);
        // a plain socket stands in for one IP_BOUND_IF pinned (this runs on Linux)
        const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw new Error(`socket: ${-fd}`);
        return fd;
      },
    }),
  });
  return { sockets, pinned };
}

describe('health probes on macOS: held to the tunnel by its utun', () => {
  it("tcp: the socket is pinned to the link's utun (IP_BOUND_IF), not to the link's name", async () => {
    server = createServer((s) => s.destroy()).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const { sockets, pinned } = darwin({ 'awg-work': 'utun7' });
    await probeRunner(sockets)(
      { tcp: `127.0.0.1:${port}` },
      { link: 'awg-work' },
      { timeoutMs: 5000, signal: signal() },
    );
    expect(pinned).toEqual([['utun7', 4]]);
  });

  it('a link without a utun (its engine is not running) fails the probe; no socket is made', async () => {
    const { sockets, pinned } = darwin({});
    await expect(
      probeRunner(sockets)(
        { tcp: '10.9.0.1:80' },
        { link: 'awg-work' },
        { timeoutMs: 1000, signal: signal() },
      ),
    ).rejects.toThrow('awg-work has no utun (its engine is not running)');
    expect(pinned).toEqual([]);
    expect(() => sockets.ping('10.9.0.1', 'awg-work', 2)).toThrow(/has no utun/);
  });

  it("icmp: macOS's ping -b / ping6 -B on the utun, with ping's overall timeout; Linux's ping -I on the link", () => {
    const { sockets } = darwin({ 'awg-work': 'utun7' });
    expect(sockets.ping('10.9.0.1', 'awg-work', 3)).toEqual({
      file: 'ping',
      args: ['-n', '-q', '-c', '1', '-t', '3', '-b', 'utun7', '10.9.0.1'],
      noReply: 2,
    });
    expect(sockets.ping('fd00::1', 'awg-work', 3)).toEqual({
      file: 'ping6',
      args: ['-n', '-q', '-c', '1', '-B', 'utun7', 'fd00::1'],
      noReply: 2,
    });
    expect(linuxProbeSockets.ping('10.9.0.1', 'awg-work', 3)).toEqual({
      file: 'ping',
      args: ['-n', '-q', '-c', '1', '-W', '3', '-I', 'awg-work', '10.9.0.1'],
      noReply: 1,
    });
  });

  it("icmp: the platform's no-reply exit code reads as `no echo reply`; another code keeps ping's own error", async () => {
    const exits = (code: number): ProbeSockets => ({
      ...linuxProbeSockets,
      ping: () => ({ file: 'sh', args: ['-c', `exit ${code}`], noReply: 2 }),
    });
    const o = { timeoutMs: 5000, signal: signal() };
    await expect(
      probeRunner(exits(2))({ icmp: '10.9.0.1' }, { link: 'awg-work' }, o),
    ).rejects.toThrow(/^no echo reply$/);
    await expect(
      probeRunner(exits(1))({ icmp: '10.9.0.1' }, { link: 'awg-work' }, o),
    ).rejects.toThrow(/Command failed/);
  });
});
