import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ProxyTunnelRuntime } from '../../../src/proxy/tunnel.js';
import type { HealthChange } from '../../../src/proxy/upstream-health.js';

describe('ProxyTunnelRuntime', () => {
  it('starts the listener, reports the upstream down, stops cleanly', async () => {
    // a port that was just free: nothing listens there
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const dead = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));

    const rt = new ProxyTunnelRuntime({
      name: 'px',
      upstream: { type: 'socks5', server: '127.0.0.1', port: dead, udp: false },
      redirectPort: 0,
      listenHost: '127.0.0.1',
      bypassMark: 0x00ff0000,
      healthIntervalMs: 60_000,
    });
    const state = new Promise<HealthChange>((r) => rt.once('state', r));
    await rt.start();
    expect(rt.proxy.address()?.port).toBeGreaterThan(0);
    const c = await state;
    expect(c).toMatchObject({ from: 'unknown', to: 'down' });
    expect(c.error?.kind).toBe('unreachable');
    expect(rt.stats()).toMatchObject({
      health: 'down',
      tcp: { connections: { active: 0, total: 0 } },
      udp: [],
    });
    await rt.stop();
    expect(rt.proxy.address()).toBeUndefined();
  });

  it('listens on 127.0.0.1 and ::1 only (the redirect targets), never on a wildcard', async () => {
    const rt = new ProxyTunnelRuntime({
      name: 'px',
      upstream: { type: 'http', server: '127.0.0.1', port: 9 },
      redirectPort: 0,
      bypassMark: 0x00ff0000,
      healthIntervalMs: 60_000,
    });
    await rt.start();
    try {
      const a = rt.proxy.addresses();
      expect(a.map((x) => x.address)).toEqual(['127.0.0.1', '::1']);
      expect(a[1]!.port).toBe(a[0]!.port);
    } finally {
      await rt.stop();
    }
    expect(rt.proxy.addresses()).toEqual([]);
  });

  it('transparent UDP where a redirected datagram’s destination can be read: SOCKS5 with udp carries it on the strict port, every tunnel has the allow-direct one', async () => {
    const origin = {
      origin: () => undefined,
      closed: 0,
      close() {
        this.closed++;
      },
    };
    const socks = new ProxyTunnelRuntime({
      name: 'su',
      upstream: { type: 'socks5', server: '127.0.0.1', port: 9, udp: true },
      redirectPort: 0,
      directPort: 0,
      dns: ['192.0.2.53'],
      dnsUdpPort: 0,
      listenHost: '127.0.0.1',
      bypassMark: 0x00ff0000,
      healthIntervalMs: 60_000,
      udpOrigin: origin,
    });
    const http = new ProxyTunnelRuntime({
      name: 'hp',
      upstream: { type: 'http', server: '127.0.0.1', port: 9 },
      redirectPort: 0,
      directPort: 0,
      dns: ['192.0.2.53'],
      dnsUdpPort: 0,
      listenHost: '127.0.0.1',
      bypassMark: 0x00ff0000,
      healthIntervalMs: 60_000,
      udpOrigin: origin,
    });
    // UDP/53 of a UDP-carrying tunnel is a flow of the strict proxy: no separate DNS socket
    expect(socks.udpStrict).toBeDefined();
    expect(socks.udpDirect).toBeDefined();
    expect(socks.dnsSockets).toEqual([]);
    // HTTP CONNECT: DNS over TCP on the strict port, UDP only on the allow-direct one
    expect(http.udpStrict).toBeUndefined();
    expect(http.udpDirect).toBeDefined();
    expect(http.dnsSockets).toHaveLength(1);
    await socks.start();
    await http.start();
    try {
      expect(socks.stats().udpFlows).toMatchObject({
        strict: { flows: { active: 0 } },
        direct: { flows: { active: 0 } },
      });
      expect(http.stats().udpFlows?.strict).toBeUndefined();
    } finally {
      await socks.stop();
      await http.stop();
    }
    expect(origin.closed).toBe(2);
    // without a way to read the destination (no conntrack): no transparent UDP
    const plain = new ProxyTunnelRuntime({
      name: 'su',
      upstream: { type: 'socks5', server: '127.0.0.1', port: 9, udp: true },
      redirectPort: 0,
      directPort: 0,
      listenHost: '127.0.0.1',
      bypassMark: 0x00ff0000,
    });
    expect(plain.udpStrict).toBeUndefined();
    expect(plain.udpDirect).toBeUndefined();
  });
});
