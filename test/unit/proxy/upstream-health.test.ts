import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ProxyHealth,
  socks5Probe,
  type HealthChange,
  type Timers,
} from '../../../src/proxy/upstream-health.js';
import { ProxyDialError } from '../../../src/proxy/types.js';

/** manual clock: timers fire only when advanced */
function fakeTimers() {
  let now = 0;
  const q: { at: number; fn: () => void; id: number }[] = [];
  let id = 0;
  const t: Timers = {
    setTimeout: (fn, ms) => {
      q.push({ at: now + ms, fn, id: ++id });
      return id;
    },
    clearTimeout: (h) => {
      const i = q.findIndex((x) => x.id === h);
      if (i >= 0) q.splice(i, 1);
    },
  };
  return {
    t,
    pending: () => q.map((x) => x.at - now).sort((a, b) => a - b),
    async advance(ms: number) {
      now += ms;
      for (;;) {
        q.sort((a, b) => a.at - b.at);
        const next = q[0];
        if (!next || next.at > now) break;
        q.shift();
        next.fn();
        await new Promise((r) => setImmediate(r));
      }
    },
  };
}

describe('ProxyHealth', () => {
  it('transitions and backoff: down with growing delays, up resets, auth-failed is its own state', async () => {
    const results: (ProxyDialError | undefined)[] = [
      new ProxyDialError('unreachable', 'refused'),
      new ProxyDialError('unreachable', 'refused'),
      new ProxyDialError('unreachable', 'refused'),
      undefined,
      new ProxyDialError('auth', 'bad password'),
    ];
    const clock = fakeTimers();
    const h = new ProxyHealth({
      probe: async () => {
        const r = results.shift();
        if (r) throw r;
      },
      intervalMs: 10_000,
      backoff: { initialMs: 1000, maxMs: 3000, factor: 2 },
      timers: clock.t,
    });
    const changes: HealthChange[] = [];
    h.on('change', (c) => changes.push(c));
    h.start();
    await new Promise((r) => setImmediate(r));
    expect(h.state).toBe('down');
    expect(clock.pending()).toEqual([1000]);
    await clock.advance(1000);
    expect(clock.pending()).toEqual([2000]);
    await clock.advance(2000);
    expect(clock.pending()).toEqual([3000]); // capped
    await clock.advance(3000);
    expect(h.state).toBe('up');
    expect(clock.pending()).toEqual([10_000]);
    await clock.advance(10_000);
    expect(h.state).toBe('auth-failed');
    expect(h.lastError?.message).toBe('bad password');
    expect(clock.pending()).toEqual([3000]);
    h.stop();
    expect(clock.pending()).toEqual([]);
    expect(changes.map((c) => `${c.from}>${c.to}`)).toEqual([
      'unknown>down',
      'down>up',
      'up>auth-failed',
    ]);
  });
});

describe('socks5Probe against fake SOCKS servers on loopback', () => {
  const servers: { close: () => void }[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  async function fake(handler: (s: Socket, greeting: Buffer) => void): Promise<number> {
    const srv = createServer((s) => s.once('data', (d: Buffer) => handler(s, d)));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    servers.push(srv);
    return (srv.address() as AddressInfo).port;
  }
  const ac = () => new AbortController().signal;

  it('up: no-auth method chosen', async () => {
    const port = await fake((s) => s.end(Buffer.from([5, 0])));
    await expect(socks5Probe({ server: '127.0.0.1', port })(ac())).resolves.toBeUndefined();
  });
  it('auth-failed: RFC 1929 status 1', async () => {
    const port = await fake((s, g) => {
      expect([...g]).toEqual([5, 2, 0, 2]);
      s.write(Buffer.from([5, 2]));
      s.once('data', (d: Buffer) => {
        expect(d.subarray(2, 2 + d[1]!).toString()).toBe('u');
        s.end(Buffer.from([1, 1]));
      });
    });
    const e = await socks5Probe({
      server: '127.0.0.1',
      port,
      auth: { username: 'u', password: 'p' },
    })(ac()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ProxyDialError);
    expect((e as ProxyDialError).kind).toBe('auth');
    expect((e as ProxyDialError).message).toMatch(/refused the credentials of user "u"/);
  });
  it('auth-failed: server requires a method we do not offer', async () => {
    const port = await fake((s) => s.end(Buffer.from([5, 0xff])));
    const e = (await socks5Probe({ server: '127.0.0.1', port })(ac()).catch(
      (x: unknown) => x,
    )) as ProxyDialError;
    expect(e.kind).toBe('auth');
    expect(e.message).toMatch(/requires authentication/);
  });
  it('down: nothing listens', async () => {
    const port = await fake(() => {});
    servers.splice(0).forEach((s) => s.close());
    await new Promise((r) => setTimeout(r, 10));
    const e = (await socks5Probe({ server: '127.0.0.1', port })(ac()).catch(
      (x: unknown) => x,
    )) as ProxyDialError;
    expect(e.kind).toBe('unreachable');
  });
});
