/**
 * The flow router's UDP relay (resources/flow/flow-udp.ts) and its darwin wiring
 * (flow-router-darwin.ts), run on Linux with real loopback UDP: the natives are fakes (udp
 * pcblist_n bytes in the kernel's layout, proc_pidpath by table, DIOCNATLOOK answering a
 * table of flows, the pinning of sockets recorded). What PF would deliver to the relay is
 * sent to it from a socket whose port stands for the flow's nat port. Also the owner lookup
 * over `net.inet.udp.pcblist_n` (platform/darwin/flow-lookup.ts).
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { Rule } from '../../../src/config/schema.js';
import {
  darwinFlowRouter,
  type DarwinFlowNatives,
} from '../../../src/resources/flow/flow-router-darwin.js';
import { UdpRelay, type UdpEndpoint } from '../../../src/resources/flow/flow-udp.js';
import type { FlowDecision } from '../../../src/resources/flow/flow-router.js';
import { PcbFlowLookup } from '../../../src/platform/darwin/flow-lookup.js';
import { cat, inpcb, rest, socket as xsocket, xinpgen } from '../../helpers/pcblist-bytes.js';

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const bound = (address = '127.0.0.1', port = 0) =>
  new Promise<Socket>((resolve, reject) => {
    const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    s.once('error', reject);
    s.bind({ address, port }, () => resolve(s));
  });

async function echo(name: string) {
  const s = await bound();
  const seen: string[] = [];
  s.on('message', (m, r) => {
    seen.push(m.toString());
    s.send(`${name}:${m.toString()}`, r.port, r.address);
  });
  closers.push(() => new Promise<void>((r) => s.close(() => r())));
  return { port: s.address().port, seen };
}

/** `msg` from a fresh socket to the relay; what comes back (undefined: nothing before `settle`) */
async function send(port: number, msg: string, settle?: () => Promise<unknown>) {
  const s = await bound();
  closers.push(() => new Promise<void>((r) => s.close(() => r())));
  const got = new Promise<string>((r) => s.once('message', (m) => r(m.toString())));
  s.send(msg, port, '127.0.0.1');
  if (settle) {
    await settle();
    return { from: s.address().port, reply: undefined as string | undefined, socket: s };
  }
  return { from: s.address().port, reply: await got, socket: s };
}

const PATHS: Record<number, string> = {
  1: '/usr/bin/curl',
  2: '/Applications/Firefox.app/Contents/MacOS/firefox',
  3: '/usr/local/bin/via-proxy',
  4: '/usr/local/bin/strict-proxy',
};

describe('darwin flow router: UDP', () => {
  async function setup(o: { physical?: string | undefined; rules?: Rule[]; def?: string } = {}) {
    const dst = await echo('dst');
    // the apps' sockets (pcblist_n): their port → pid; the flows PF made: nat port → app port
    const owners = new Map<number, number>();
    const flows = new Map<number, number>();
    const pinned: string[] = [];
    const natives: DarwinFlowNatives = {
      sysctl: (name) => {
        expect(name).toBe('net.inet.udp.pcblist_n');
        const recs = [...owners].flatMap(([port, pid]) => [
          inpcb(false, [0, 0, 0, 0], port, [0, 0, 0, 0], 0, BigInt(port)),
          xsocket(501, pid, 0),
          ...rest(),
        ]);
        return cat([xinpgen(owners.size), ...recs, xinpgen(owners.size)]);
      },
      pidPath: (pid) => PATHS[pid],
      originalDst: () => {
        throw new Error('no TCP here');
      },
      boundTcpFd: () => {
        throw new Error('no TCP here');
      },
      udpOrigin: (peer) => {
        const app = flows.get(peer.port);
        if (app === undefined) throw new Error('DIOCNATLOOK: ENOENT');
        return {
          app: { address: '192.168.1.175', port: app },
          dst: { address: '127.0.0.1', port: dst.port },
        };
      },
      pinUdp: (_sock, ifname, family) => void pinned.push(`${ifname}/${family}`),
    };
    const rules = o.rules ?? [
      { name: 'tools', match: { dir: '/usr/bin' }, target: 'direct' } as Rule,
      { name: 'web', match: { name: 'firefox' }, target: 'work', fallback: 'block' } as Rule,
      {
        name: 'proxied',
        match: { name: 'via-proxy' },
        target: 'socks',
        fallback: 'allow-direct',
      } as Rule,
      {
        name: 'strict',
        match: { name: 'strict-proxy' },
        target: 'socks',
        fallback: 'block',
      } as Rule,
    ];
    const { router } = darwinFlowRouter({
      listen: { host: ['127.0.0.1'], port: 0 },
      rules,
      default: o.def ?? 'work',
      tunnelUp: () => true,
      natives,
      tunnels: {
        work: { utun: () => 'utun4' },
        socks: { dialer: () => Promise.reject(new Error('no TCP here')) },
      },
      physical: () => ('physical' in o ? o.physical : 'en0'),
    });
    const a = await router.start();
    closers.push(() => router.close());
    /** an app (pid) sending from its port: PF's flow for it, then a datagram to the relay */
    const app = async (pid: number, appPort: number, msg: string, settle?: boolean) => {
      owners.set(appPort, pid);
      const s = await bound();
      closers.push(() => new Promise<void>((r) => s.close(() => r())));
      flows.set(s.address().port, appPort);
      const got = new Promise<string>((r) => s.once('message', (m) => r(m.toString())));
      const decided = () => [...router.counts.values()].reduce((x, y) => x + y, 0);
      const before = decided();
      s.send(msg, a.port, '127.0.0.1');
      if (!settle) return got;
      // no reply will come: until the relay has decided the flow
      // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
      while (decided() === before) await new Promise((r) => setTimeout(r, 5));
      return undefined;
    };
    return { router, port: a.port, pinned, dst, app, owners, flows };
  }

  it('routes each app by its rule: direct on the physical interface, a WireGuard tunnel on its utun, unmatched by the default', async () => {
    const t = await setup();
    expect(await t.app(1, 5001, 'curl')).toBe('dst:curl');
    expect(t.pinned).toEqual(['en0/4']);
    expect(await t.app(2, 5002, 'ff')).toBe('dst:ff');
    expect(t.pinned).toEqual(['en0/4', 'utun4/4']);
    t.owners.set(5003, 99); // a process no path is known for: owner unknown
    expect(
      t.router.decideDatagram(
        { address: '192.168.1.175', port: 5003 },
        {
          address: '127.0.0.1',
          port: t.dst.port,
        },
      ).route,
    ).toBe('blocked');
    expect(Object.fromEntries(t.router.counts)).toMatchObject({ direct: 1, work: 1, blocked: 1 });
  });

  it("a proxy tunnel carries no UDP: the rule's fallback decides (allow-direct → direct, block → blocked), and a proxy default blocks", async () => {
    const t = await setup();
    expect(await t.app(3, 5101, 'p')).toBe('dst:p');
    expect(t.pinned).toEqual(['en0/4']);
    await t.app(4, 5102, 's', true);
    expect(t.dst.seen).toEqual(['p']);
    expect(t.router.counts.get('blocked')).toBe(1);
    const d = await setup({ def: 'socks', rules: [] });
    expect(
      d.router.decideDatagram(
        { address: '192.168.1.175', port: 1 },
        { address: '127.0.0.1', port: 9 },
      ).route,
    ).toBe('blocked');
  });

  it('fail-closed: no PF translation, no physical interface', async () => {
    const t = await setup({ physical: undefined });
    // no flow PF made for this port: DIOCNATLOOK fails → dropped
    const s = await send(t.port, 'stray', async () => {
      // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
      while (t.router.udp!.stats().dropped === 0) await new Promise((r) => setTimeout(r, 5));
    });
    expect(s.reply).toBeUndefined();
    // dropped and not remembered: such datagrams cannot fill the flow table
    expect(t.router.udp!.stats()).toEqual({ flows: 0, dropped: 1 });
    // direct without a physical interface: never sent by the routing table
    await t.app(1, 5201, 'curl', true);
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (t.router.udp!.stats().dropped < 2) await new Promise((r) => setTimeout(r, 5));
    expect(t.pinned).toEqual([]);
    expect(t.dst.seen).toEqual([]);
  });
});

describe('UdpRelay', () => {
  async function relay(o: { maxFlows?: number; decide?: (n: number) => FlowDecision } = {}) {
    const dst = await echo('dst');
    let now = 1000;
    let decisions = 0;
    const opened: string[] = [];
    const r = new UdpRelay({
      listen: { host: ['127.0.0.1'], port: 0 },
      origin: (peer) => ({
        app: { address: '10.0.0.2', port: peer.port },
        dst: { address: '127.0.0.1', port: dst.port },
      }),
      decide: () => (o.decide ?? (() => ({ route: 'direct' })))(++decisions),
      open: async (route, to: UdpEndpoint) => {
        opened.push(route);
        const s = await bound();
        await new Promise<void>((res) => s.connect(to.port, to.address, () => res()));
        return s;
      },
      now: () => now,
      idleMs: 60_000,
      blockedHoldMs: 5_000,
      ...(o.maxFlows !== undefined ? { maxFlows: o.maxFlows } : {}),
    });
    await r.start(0);
    closers.push(() => r.close());
    const port = (r as unknown as { listeners: Socket[] }).listeners[0]!.address().port;
    return {
      r,
      port,
      dst,
      opened,
      tick: (ms: number) => (now += ms),
      get decisions() {
        return decisions;
      },
    };
  }

  it('one decision per flow; datagrams that arrive while its socket opens wait and go in order', async () => {
    const t = await relay();
    const s = await bound();
    closers.push(() => new Promise<void>((r) => s.close(() => r())));
    const got: string[] = [];
    const all = new Promise<void>((res) =>
      s.on('message', (m) => {
        got.push(m.toString());
        if (got.length === 3) res();
      }),
    );
    for (const m of ['a', 'b', 'c']) s.send(m, t.port, '127.0.0.1');
    await all;
    expect(got.sort()).toEqual(['dst:a', 'dst:b', 'dst:c']);
    expect(t.dst.seen).toEqual(['a', 'b', 'c']);
    expect(t.decisions).toBe(1);
    expect(t.opened).toEqual(['direct']);
  });

  it('a blocked flow is decided again after its hold; an idle routed flow goes', async () => {
    const t = await relay({ decide: (n) => ({ route: n === 1 ? 'blocked' : 'direct' }) });
    const s = await bound();
    closers.push(() => new Promise<void>((r) => s.close(() => r())));
    const waitDropped = async (n: number) => {
      // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
      while (t.r.stats().dropped < n) await new Promise((r) => setTimeout(r, 5));
    };
    s.send('x', t.port, '127.0.0.1');
    await waitDropped(1);
    s.send('y', t.port, '127.0.0.1'); // still held
    await waitDropped(2);
    expect(t.decisions).toBe(1);
    t.tick(5_000);
    const reply = new Promise<string>((r) => s.once('message', (m) => r(m.toString())));
    s.send('z', t.port, '127.0.0.1');
    expect(await reply).toBe('dst:z');
    expect(t.decisions).toBe(2);
    expect(t.r.stats().flows).toBe(1);
    t.tick(60_000);
    t.r.expire();
    expect(t.r.stats().flows).toBe(0);
  });

  it('at most maxFlows flows: a new one beyond is dropped', async () => {
    const t = await relay({ maxFlows: 1 });
    const first = await send(t.port, 'one');
    expect(first.reply).toBe('dst:one');
    const second = await send(t.port, 'two', async () => {
      // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
      while (t.r.stats().dropped === 0) await new Promise((r) => setTimeout(r, 5));
    });
    expect(second.reply).toBeUndefined();
    expect(t.dst.seen).toEqual(['one']);
  });
});

describe('udp pcblist_n owner lookup', () => {
  const v4 = (a: string) => a.split('.').map(Number);
  function lookup(
    recs: {
      laddr: string;
      lport: number;
      faddr?: string;
      fport?: number;
      pid: number;
      gen: number;
    }[],
  ) {
    const buf = cat([
      xinpgen(recs.length),
      ...recs.flatMap((r) => [
        inpcb(false, v4(r.laddr), r.lport, v4(r.faddr ?? '0.0.0.0'), r.fport ?? 0, BigInt(r.gen)),
        xsocket(501, r.pid, 0),
        ...rest(),
      ]),
      xinpgen(recs.length),
    ]);
    return new PcbFlowLookup({
      sysctl: (n) => {
        expect(n).toBe('net.inet.udp.pcblist_n');
        return buf;
      },
      pidPath: (pid) => `/bin/p${pid}`,
    });
  }
  const flow = (port: number, dst = '93.184.216.34', dport = 443) => ({
    proto: 'udp' as const,
    app: { address: '192.168.1.175', port },
    dst: { host: dst, port: dport },
  });

  it('the socket that sent it: connected to this destination, then its own address, then the wildcard; connected elsewhere never', () => {
    const l = lookup([
      { laddr: '0.0.0.0', lport: 5000, pid: 1, gen: 1 },
      { laddr: '192.168.1.175', lport: 5000, pid: 2, gen: 2 },
      { laddr: '0.0.0.0', lport: 5000, faddr: '93.184.216.34', fport: 443, pid: 3, gen: 3 },
      { laddr: '0.0.0.0', lport: 6000, faddr: '1.1.1.1', fport: 53, pid: 4, gen: 4 },
      { laddr: '0.0.0.0', lport: 7000, pid: 5, gen: 5 },
      { laddr: '10.66.0.2', lport: 8000, pid: 6, gen: 6 },
    ]);
    expect(l.owner(flow(5000))).toEqual({ pid: 3, path: '/bin/p3' });
    expect(l.owner(flow(5000, '203.0.113.1'))).toEqual({ pid: 2, path: '/bin/p2' });
    expect(l.owner(flow(6000))).toBeUndefined(); // connected to another destination
    expect(l.owner(flow(7000))).toEqual({ pid: 5, path: '/bin/p5' });
    expect(l.owner(flow(8000))).toBeUndefined(); // bound to another address
  });

  it('equally good sockets of different processes (SO_REUSEPORT): unknown, never a guess; of one process: it', () => {
    expect(
      lookup([
        { laddr: '0.0.0.0', lport: 5353, pid: 1, gen: 1 },
        { laddr: '0.0.0.0', lport: 5353, pid: 2, gen: 2 },
      ]).owner(flow(5353)),
    ).toBeUndefined();
    expect(
      lookup([
        { laddr: '0.0.0.0', lport: 5353, pid: 1, gen: 1 },
        { laddr: '0.0.0.0', lport: 5353, pid: 1, gen: 2 },
      ]).owner(flow(5353)),
    ).toEqual({ pid: 1, path: '/bin/p1' });
  });
});
