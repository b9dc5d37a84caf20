/**
 * The transparent UDP proxy's flow logic on loopback: the original destination of each
 * datagram comes from an injected lookup (the kernel's conntrack is exercised in
 * test/netns/proxy-product.test.ts), the proxy is the fake SOCKS5 server of fake-socks.ts,
 * and a test clock drives revalidation, idle expiry and the retry hold-down (no timed
 * assertions).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { SocksClient } from 'socks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  UdpRedirectProxy,
  unicastDestination,
  type UdpPeer,
  type UdpRedirectProxyOptions,
} from '../../../src/proxy/udp-redirect.js';
import type { Destination } from '../../../src/proxy/types.js';
import { fakeSocks, type FakeSocks } from './fake-socks.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** a UDP socket of "an app" on loopback, collecting what it receives */
async function app(): Promise<{
  s: UdpSocket;
  port: number;
  got: string[];
  next(n: number): Promise<string>;
}> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  cleanups.push(() => void s.close());
  const got: string[] = [];
  const waiters: (() => void)[] = [];
  s.on('message', (m) => {
    got.push(m.toString());
    waiters.splice(0).forEach((w) => w());
  });
  return {
    s,
    port: s.address().port,
    got,
    async next(n) {
      while (got.length < n) await new Promise<void>((r) => waiters.push(r));
      return got[n - 1]!;
    },
  };
}

/** a port nothing listens on (TCP) */
async function deadPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  return port;
}

interface Rig {
  proxy: UdpRedirectProxy;
  port: number;
  /** app port → original destination (what conntrack would answer) */
  origins: Map<number, Destination>;
  lookups: UdpPeer[];
  clock: { now: number };
  send(a: { s: UdpSocket }, text: string | Buffer): Promise<void>;
}

async function rig(
  o: Partial<UdpRedirectProxyOptions> & Pick<UdpRedirectProxyOptions, 'fallback'>,
): Promise<Rig> {
  const origins = new Map<number, Destination>();
  const lookups: UdpPeer[] = [];
  const clock = { now: 0 };
  const proxy = new UdpRedirectProxy({
    listen: { host: '127.0.0.1', port: 0 },
    origin: (p) => {
      lookups.push(p);
      return origins.get(p.port);
    },
    now: () => clock.now,
    ...o,
  });
  proxy.on('error', () => {});
  const { port } = await proxy.start();
  cleanups.push(() => proxy.close());
  return {
    proxy,
    port,
    origins,
    lookups,
    clock,
    send: (a, text) =>
      new Promise<void>((r) => a.s.send(Buffer.from(text), port, '127.0.0.1', () => r())),
  };
}

async function socks(): Promise<FakeSocks> {
  const f = await fakeSocks();
  cleanups.push(() => f.close());
  return f;
}

/** a fake SOCKS5 server and a strict proxy in front of it */
async function viaSocks(
  o: Partial<UdpRedirectProxyOptions> = {},
): Promise<{ fake: FakeSocks; r: Rig }> {
  const fake = await socks();
  const r = await rig({ fallback: 'block', socks: { server: '127.0.0.1', port: fake.port }, ...o });
  return { fake, r };
}

/** an app whose flow goes to `dst`, after its first echo */
async function flowTo(r: Rig, dst: Destination): Promise<Awaited<ReturnType<typeof app>>> {
  const a = await app();
  r.origins.set(a.port, dst);
  await r.send(a, 'x');
  await a.next(1);
  return a;
}

/** advances the test clock by `ms`, sweeps, and says how many flows are left */
function activeAfter(r: Rig, ms: number): number {
  r.clock.now += ms;
  r.proxy.sweep();
  return r.proxy.stats().flows.active;
}

/** waits until `cond` holds (event-driven work on loopback; the test's own timeout bounds it) */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

const T1 = { host: '192.0.2.10', port: 4433 };
const T2 = { host: '198.51.100.20', port: 3478 };

describe('UdpRedirectProxy through SOCKS5 UDP ASSOCIATE', () => {
  it('one association per flow, to the flow’s original destination; replies go back to the flow’s app', async () => {
    const { fake, r } = await viaSocks();
    const a = await app();
    const b = await app();
    r.origins.set(a.port, T1);
    r.origins.set(b.port, T2);
    await r.send(a, 'a1');
    await r.send(b, 'b1');
    await r.send(a, 'a2');
    expect(await a.next(2)).toBe('echo:a2');
    expect(await b.next(1)).toBe('echo:b1');
    expect(a.got).toEqual(['echo:a1', 'echo:a2']);
    expect(fake.associations).toHaveLength(2);
    expect(fake.associations.map((x) => x.destinations[0]).sort()).toEqual([
      '192.0.2.10:4433',
      '198.51.100.20:3478',
    ]);
    // the destination was looked up once per flow (no revalidation inside 1 s)
    expect(r.lookups).toHaveLength(2);
    expect(r.lookups[0]).toMatchObject({ family: 4, addr: '127.0.0.1', localAddr: '127.0.0.1' });
    expect(r.proxy.stats()).toMatchObject({
      flows: { active: 2, total: 2, proxied: 2, direct: 0 },
      datagrams: { up: 3, down: 3, dropped: 0 },
      bytes: { up: 6, down: 21 },
    });
  });

  it('datagrams sent while the association opens are queued in order, at most maxPending', async () => {
    const fake = await socks();
    let release!: () => void;
    fake.hold = new Promise<void>((res) => (release = res));
    const r = await rig({
      fallback: 'block',
      socks: { server: '127.0.0.1', port: fake.port },
      maxPending: 3,
    });
    const a = await app();
    r.origins.set(a.port, T1);
    for (const m of ['p1', 'p2', 'p3', 'p4', 'p5']) await r.send(a, m);
    await until(() => r.proxy.stats().errors['pending-full'] === 2);
    release();
    expect(await a.next(3)).toBe('echo:p3');
    expect(a.got).toEqual(['echo:p1', 'echo:p2', 'echo:p3']);
    expect(r.proxy.stats().datagrams).toMatchObject({ up: 3, dropped: 2 });
  });

  it('a flow silent for revalidateMs reads its destination again: another destination ends the flow and starts a new one', async () => {
    const { fake, r } = await viaSocks();
    const a = await flowTo(r, T1);
    // the same destination after a silence: the flow stays
    r.clock.now += 1500;
    await r.send(a, 'y');
    await a.next(2);
    expect(fake.associations).toHaveLength(1);
    expect(r.lookups).toHaveLength(2);
    // conntrack forgot the entry and a new one reused the source for another destination
    r.clock.now += 1500;
    r.origins.set(a.port, T2);
    await r.send(a, 'z');
    expect(await a.next(3)).toBe('echo:z');
    expect(fake.associations).toHaveLength(2);
    expect(fake.associations[1]!.destinations).toEqual(['198.51.100.20:3478']);
    await until(() => fake.associations[0]!.closed);
    expect(r.proxy.stats().flows).toMatchObject({ active: 1, total: 2 });
  });

  it('idle flows end (their control connection closes); the next datagram starts a new association', async () => {
    const { fake, r } = await viaSocks({ idleMs: 60_000 });
    const a = await flowTo(r, T1);
    expect(activeAfter(r, 59_000)).toBe(1);
    expect(activeAfter(r, 1_000)).toBe(0);
    await until(() => fake.associations[0]!.closed);
    await r.send(a, 'y');
    expect(await a.next(2)).toBe('echo:y');
    expect(fake.associations).toHaveLength(2);
  });

  it('a reply after a silence passes only while conntrack still names the flow (else it would reach the app un-NATed)', async () => {
    const { fake, r } = await viaSocks();
    const a = await flowTo(r, T1);
    const reply = (text: string) =>
      fake.send(0, SocksClient.createUDPFrame({ remoteHost: T1, data: Buffer.from(text) }));
    // within 1 s of the last datagram: no lookup
    await reply('late-1');
    expect(await a.next(2)).toBe('late-1');
    expect(r.lookups).toHaveLength(1);
    // after a silence, with the entry still there
    r.clock.now += 1500;
    await reply('late-2');
    expect(await a.next(3)).toBe('late-2');
    expect(r.lookups).toHaveLength(2);
    // the entry expired
    r.clock.now += 1500;
    r.origins.delete(a.port);
    await reply('late-3');
    await until(() => r.proxy.stats().errors.expired === 1);
    expect(r.proxy.stats().flows.active).toBe(0);
    expect(a.got).toEqual(['echo:x', 'late-1', 'late-2']);
  });

  it('a DNS flow (port 53) idles out after 10 s, others after idleMs', async () => {
    const { r } = await viaSocks();
    const a = await app();
    const b = await app();
    r.origins.set(a.port, { host: '192.0.2.53', port: 53 });
    r.origins.set(b.port, T1);
    await r.send(a, 'q');
    await r.send(b, 'x');
    await a.next(1);
    await b.next(1);
    expect(activeAfter(r, 10_000)).toBe(1);
    expect(activeAfter(r, 50_000)).toBe(0);
  });

  it('the proxy closing the control connection ends the flow', async () => {
    const { fake, r } = await viaSocks();
    await flowTo(r, T1);
    fake.associations[0]!.control.destroy();
    await until(() => r.proxy.stats().flows.active === 0);
  });

  it('beyond maxFlows a new flow is dropped (`limit`) until one ends', async () => {
    const { r } = await viaSocks({ maxFlows: 1 });
    const a = await app();
    const b = await app();
    r.origins.set(a.port, T1);
    r.origins.set(b.port, T2);
    await r.send(a, 'a');
    await a.next(1);
    await r.send(b, 'b');
    await until(() => r.proxy.stats().errors.limit === 1);
    expect(b.got).toEqual([]);
    r.clock.now += 60_000;
    r.proxy.sweep();
    await r.send(b, 'b2');
    expect(await b.next(1)).toBe('echo:b2');
  });

  it('drops what has no origin, was not redirected, or goes to a multicast/broadcast address', async () => {
    const fake = await socks();
    const r = await rig({
      fallback: 'allow-direct',
      socks: { server: '127.0.0.1', port: fake.port },
    });
    const a = await app();
    await r.send(a, 'no-origin');
    await until(() => r.proxy.stats().errors['no-origin'] === 1);
    r.origins.set(a.port, { host: '127.0.0.1', port: r.port });
    await r.send(a, 'loop');
    await until(() => r.proxy.stats().errors['not-redirected'] === 1);
    r.origins.set(a.port, { host: '224.0.0.251', port: 5353 });
    await r.send(a, 'mdns');
    r.origins.set(a.port, { host: '255.255.255.255', port: 67 });
    await r.send(a, 'bcast');
    await until(() => r.proxy.stats().errors['not-unicast'] === 2);
    expect(fake.associations).toHaveLength(0);
    expect(r.proxy.stats().flows.total).toBe(0);
    expect(unicastDestination('ff02::fb')).toBe(false);
    expect(unicastDestination('::')).toBe(false);
    expect(unicastDestination('2001:db8::1')).toBe(true);
  });

  it('a datagram larger than one frame can carry is dropped (`oversize`)', async () => {
    const { r } = await viaSocks();
    const a = await flowTo(r, T1);
    // 65507 bytes fit one IPv4 datagram to us; the 10-byte header does not fit with them
    await r.send(a, Buffer.alloc(65_500));
    await until(() => r.proxy.stats().errors.oversize === 1);
    await r.send(a, 'y');
    expect(await a.next(2)).toBe('echo:y');
  });
});

describe('UdpRedirectProxy fallback', () => {
  /** a UDP echo "destination" on loopback, reporting the source it sees */
  async function echo(): Promise<{ port: number; seen: string[] }> {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    cleanups.push(() => void s.close());
    const seen: string[] = [];
    s.on('message', (m, r) => {
      seen.push(`${r.address}:${r.port}`);
      s.send(Buffer.concat([Buffer.from('direct:'), m]), r.port, r.address);
    });
    return { port: s.address().port, seen };
  }

  it('block: an unreachable proxy drops the flow’s datagrams for retryMs, then the next datagram tries again', async () => {
    const dead = await deadPort();
    const r = await rig({
      fallback: 'block',
      socks: { server: '127.0.0.1', port: dead, timeoutMs: 2000 },
      retryMs: 5000,
    });
    const a = await app();
    r.origins.set(a.port, T1);
    await r.send(a, 'x');
    await until(() => r.proxy.flowStates().failed === 1);
    await r.send(a, 'y');
    await until(() => r.proxy.stats().errors.blocked === 2);
    expect(r.proxy.stats().errors.associate).toBe(1);
    expect(activeAfter(r, 5000)).toBe(0);
    await r.send(a, 'z');
    await until(() => r.proxy.stats().errors.associate === 2);
    expect(a.got).toEqual([]);
  });

  it('allow-direct: an unreachable proxy sends the flow directly; healthUp() ends direct flows so the next datagram tries the proxy', async () => {
    const dead = await deadPort();
    const dst = await echo();
    let down = false;
    const r = await rig({
      fallback: 'allow-direct',
      socks: { server: '127.0.0.1', port: dead, timeoutMs: 2000 },
      isDown: () => down,
    });
    const a = await app();
    r.origins.set(a.port, { host: '127.0.0.1', port: dst.port });
    await r.send(a, 'x');
    expect(await a.next(1)).toBe('direct:x');
    await r.send(a, 'y');
    expect(await a.next(2)).toBe('direct:y');
    expect(r.proxy.stats()).toMatchObject({
      flows: { direct: 1, proxied: 0 },
      errors: { associate: 1 },
    });
    // one socket of ours per flow: both datagrams from the same source
    expect(new Set(dst.seen).size).toBe(1);
    r.proxy.healthUp();
    expect(r.proxy.stats().flows.active).toBe(0);
    // known down: not asked at all
    down = true;
    await r.send(a, 'z');
    expect(await a.next(3)).toBe('direct:z');
    expect(r.proxy.stats().errors.associate).toBe(1);
  });

  it('allow-direct without a proxy that carries UDP: every flow goes directly', async () => {
    const dst = await echo();
    const r = await rig({ fallback: 'allow-direct' });
    const a = await app();
    r.origins.set(a.port, { host: '127.0.0.1', port: dst.port });
    await r.send(a, 'x');
    expect(await a.next(1)).toBe('direct:x');
    expect(r.proxy.stats().errors.associate).toBeUndefined();
  });

  it('a proxy that refuses UDP ASSOCIATE (REP 7) is up: allow-direct does not go around it', async () => {
    const fake = await socks();
    fake.rep = 7;
    const dst = await echo();
    const r = await rig({
      fallback: 'allow-direct',
      socks: { server: '127.0.0.1', port: fake.port },
    });
    const a = await app();
    r.origins.set(a.port, { host: '127.0.0.1', port: dst.port });
    await r.send(a, 'x');
    await until(() => r.proxy.flowStates().failed === 1);
    expect(dst.seen).toEqual([]);
    expect(r.proxy.stats().errors).toMatchObject({ associate: 1, blocked: 1 });
  });
});
