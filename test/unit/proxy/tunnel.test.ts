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
});
