/**
 * The flow router's destination rules on real loopback connections (the owner lookup a
 * table): the learned address book for flows without SNI/Host, a client that half-closes
 * while its first bytes are awaited, and `decide` with names given.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Rule } from '../../../src/config/schema.js';
import { FlowRouter, type Flow } from '../../../src/resources/flow/flow-router.js';
import type { Dialer } from '../../../src/proxy/types.js';
import { routeServer } from '../../helpers/route-servers.js';

const DST = { host: '198.51.100.20', port: 443 };
const rules = [
  {
    name: 'web',
    to: { domains: ['tunnelled.example'] },
    target: 'A',
    fallback: 'block',
    enabled: true,
  },
  { name: 'net', to: { cidrs: ['203.0.113.0/24'] }, target: 'A', fallback: 'block', enabled: true },
] as Rule[];

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function setup(o: { learned?: (addr: string) => readonly string[] } = {}) {
  const A = await routeServer('A');
  const direct = await routeServer('direct');
  for (const r of [A, direct])
    closers.push(() => new Promise<void>((res) => r.server.close(() => res())));
  const dialTo =
    (port: number): Dialer =>
    async () =>
      connect({ host: '127.0.0.1', port });
  const router = new FlowRouter({
    listen: { host: '127.0.0.1', port: 0 },
    rules,
    default: 'direct',
    tunnelUp: () => true,
    dialers: {
      direct: dialTo(direct.port),
      tunnel: (t) => (t === 'A' ? dialTo(A.port) : undefined),
    },
    lookup: { owner: () => ({ pid: 4242, path: '/usr/bin/app' }) },
    originalDestination: () => DST,
    peekTimeoutMs: 60_000, // never reached here: every case ends the wait by its bytes or its end
    ...(o.learned ? { learned: o.learned } : {}),
  });
  const { port } = await router.start();
  closers.push(() => router.close());
  /** connect, write `msg`, then `end` (half-close) or wait for the answer; what came back */
  const app = (msg: string, then?: 'end') =>
    new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      let got = '';
      s.on('connect', () => {
        s.write(msg);
        if (then === 'end') s.end();
      });
      s.on('data', (d) => (got += d.toString()));
      s.on('error', () => resolve('reset'));
      s.on('close', () => resolve(got || 'reset'));
      if (then === undefined) s.on('data', () => s.end());
    });
  return { router, app, A, direct };
}

describe('flow router: destination rules', () => {
  it('no name in the first bytes: the learned book names the address; without one, the default', async () => {
    const learned: string[] = [];
    const t = await setup({
      learned: (addr) => {
        learned.push(addr);
        return ['cdn.tunnelled.example'];
      },
    });
    expect(await t.app('SSH-2.0-x\r\n')).toBe('A:SSH-2.0-x\r\n');
    expect(learned).toEqual([DST.host]);
    // a name in the bytes wins over the book
    expect(await t.app('GET / HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n')).toMatch(/^direct:/);
    const bare = await setup();
    expect(await bare.app('SSH-2.0-x\r\n')).toBe('direct:SSH-2.0-x\r\n');
  });

  it('a client that half-closes while its name is awaited: decided at its end, its bytes and FIN reach the destination', async () => {
    const t = await setup();
    // a prefix of a request (more would be needed for a name), then FIN
    expect(await t.app('GET / HT', 'end')).toBe('direct:GET / HT');
    expect(await t.app('GET / HTTP/1.1\r\nHost: tunnelled.example', 'end')).toBe(
      'direct:GET / HTTP/1.1\r\nHost: tunnelled.example',
    );
    expect(await t.app('GET / HTTP/1.1\r\nHost: a.tunnelled.example\r\n', 'end')).toBe(
      'A:GET / HTTP/1.1\r\nHost: a.tunnelled.example\r\n',
    );
  });

  it('decide with names: the first rule whose destination fits; the address alone for cidrs', async () => {
    const t = await setup();
    const flow = (host: string): Flow => ({
      proto: 'tcp',
      app: { address: '127.0.0.1', port: 1 },
      dst: { host, port: 443 },
    });
    expect(t.router.decide(flow(DST.host), ['x.tunnelled.example'])).toMatchObject({
      route: 'A',
      rule: 'web',
      names: ['x.tunnelled.example'],
    });
    expect(t.router.decide(flow(DST.host))).toEqual({
      route: 'direct',
      owner: { pid: 4242, path: '/usr/bin/app' },
    });
    expect(t.router.decide(flow('203.0.113.77'))).toMatchObject({ route: 'A', rule: 'net' });
  });
});
