import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { devicePin, utunPin } from '../../../src/resources/engine/link-pin.js';
import { AF_INET, SOCK_CLOEXEC, SOCK_STREAM, close, socket } from '../../../src/native/libc.js';

/** macOS's pins over a fake utun registry and natives: what was pinned, and how */
function darwin(utuns: Record<string, string>) {
  const calls: string[] = [];
  let loads = 0;
  const pinOf = utunPin({
    utun: (link) => utuns[link],
    natives: async () => {
      loads++;
      return {
        boundTcpFd: (ifname, family) => {
          calls.push(`tcp ${ifname} v${family}`);
          // a plain socket stands in for one IP_BOUND_IF pinned (this runs on Linux)
          const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          if (fd < 0) throw new Error(`socket: ${-fd}`);
          return fd;
        },
        pinUdp: (_sock, ifname, family) => void calls.push(`udp ${ifname} v${family}`),
      };
    },
  });
  return { pinOf, calls, loads: () => loads };
}

describe('link pins: a socket held to a tunnel’s link', () => {
  it('macOS: TCP and UDP sockets are pinned to the utun the link got, not to the link’s name', async () => {
    const { pinOf, calls } = darwin({ 'awg-home': 'utun4' });
    const pin = await pinOf('awg-home');
    close(pin.tcpFd(6));
    const u = createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', r));
    try {
      pin.dgram(u, 4);
    } finally {
      u.close();
    }
    expect(calls).toEqual(['tcp utun4 v6', 'udp utun4 v4']);
  });

  it('macOS: a link without a utun (its engine is not running) cannot be held to; nothing is loaded', async () => {
    const { pinOf, loads } = darwin({});
    await expect(pinOf('awg-home')).rejects.toThrow(
      'awg-home has no utun (its engine is not running)',
    );
    expect(loads()).toBe(0);
  });

  it('Linux: a link that does not exist fails the socket (never the main table)', async () => {
    const pin = await devicePin('awg-nolink0');
    expect(() => pin.tcpFd(4)).toThrow(/SO_BINDTODEVICE/);
  });
});
