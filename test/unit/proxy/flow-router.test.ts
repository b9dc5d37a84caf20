/**
 * The flow router (macOS per-app routing) on Linux, with real TCP connections on loopback:
 * apps connect to the router as PF's `rdr` would send them; their owners are found through
 * pcblist_n buffers laid out like the kernel's (test/helpers/pcblist-bytes.ts, decoded by the
 * real walker in platform/darwin/flow-lookup.ts); the routes are local servers that say
 * which route they are. Only the platform parts are fakes: the PF redirect, DIOCNATLOOK,
 * sysctl and proc_pidpath.
 */
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Rule } from '../../../src/config/schema.js';
import { compileRules, defaultRoute, effectiveRoute } from '../../../src/model/match.js';
import {
  FlowRouter,
  rulesCanBlock,
  type FlowRouterOptions,
} from '../../../src/resources/flow/flow-router.js';
import { PcbFlowLookup } from '../../../src/platform/darwin/flow-lookup.js';
import { ProxyDialError, type DialErrorKind, type Dialer } from '../../../src/proxy/types.js';
import { freePort, routeServer } from '../../helpers/route-servers.js';
import { cat, inpcb, rest, socket, xinpgen } from '../../helpers/pcblist-bytes.js';
import { eventually } from '../../helpers/eventually.js';

const DST = { host: '93.184.216.34', port: 443 };
const DST6 = { host: '2606:2800:220:1:248:1893:25c8:1946', port: 443 };

interface App {
  port: number;
  pid: number;
  gen: bigint;
}

const dialTo =
  (port: number): Dialer =>
  async () =>
    connect({ host: '127.0.0.1', port });
const failing =
  (kind: DialErrorKind): Dialer =>
  () =>
    Promise.reject(new ProxyDialError(kind, `upstream ${kind}`));

describe('flow router', () => {
  const closers: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  async function setup(o: {
    rules: Rule[];
    default: string;
    down?: string[];
    unknownOwner?: 'block' | 'default';
    paths: Record<number, string>;
    maxEntries?: number;
    /** the direct dial comes back into the router, as PF's lo0 `rdr` does for the host's own addresses */
    loopDirect?: boolean;
    /** tunnel A's dial fails with this kind; `proxyA`: A is a proxy tunnel (a failed dial means down) */
    failA?: DialErrorKind;
    proxyA?: boolean;
  }) {
    const routes = {
      A: await routeServer('A'),
      B: await routeServer('B'),
      direct: await routeServer('direct'),
    };
    for (const r of Object.values(routes))
      closers.push(() => new Promise<void>((res) => r.server.close(() => res())));
    const apps: App[] = [];
    /** sockets listed besides the apps' live ones (TIME_WAIT leftovers), before or after them */
    const lingering: { before: App[]; after: App[] } = { before: [], after: [] };
    let generation = 1000n;
    const io = {
      sysctl: (name: string) => {
        expect(name).toBe('net.inet.tcp.pcblist_n');
        const listed = [...lingering.before, ...apps, ...lingering.after];
        const state = (a: App) => (apps.includes(a) ? 4 : 10); // ESTABLISHED, TIME_WAIT
        return cat([
          xinpgen(listed.length),
          ...listed.flatMap((a) => [
            inpcb(false, [127, 0, 0, 1], a.port, [93, 184, 216, 34], 443, a.gen),
            socket(501, a.pid, 0),
            ...rest(state(a)),
          ]),
          xinpgen(listed.length),
        ]);
      },
      pidPath: (pid: number) => o.paths[pid],
    };
    const lookup = new PcbFlowLookup(
      io,
      o.maxEntries === undefined ? {} : { maxEntries: o.maxEntries },
    );
    const down = new Set(o.down ?? []);
    let routerPort = 0;
    /** the router's redial, owned by this process (pid process.pid), listed before it connects */
    const loopDialer: Dialer = async () => {
      const port = await freePort();
      apps.push({ port, pid: process.pid, gen: generation++ });
      return connect({
        host: '127.0.0.1',
        port: routerPort,
        localAddress: '127.0.0.1',
        localPort: port,
      });
    };
    const opts: FlowRouterOptions = {
      listen: { host: '127.0.0.1', port: 0 },
      rules: o.rules,
      default: o.default,
      tunnelUp: (t) => !down.has(t),
      dialers: {
        direct: o.loopDirect ? loopDialer : dialTo(routes.direct.port),
        tunnel: (t) =>
          t === 'A'
            ? o.failA
              ? failing(o.failA)
              : dialTo(routes.A.port)
            : t === 'B'
              ? dialTo(routes.B.port)
              : undefined,
        dialFailureIsDown: (t) => t === 'A' && o.proxyA === true,
      },
      lookup,
      originalDestination: () => DST,
      ...(o.unknownOwner ? { unknownOwner: o.unknownOwner } : {}),
    };
    const router = new FlowRouter(opts);
    const addr = await router.start();
    routerPort = addr.port;
    closers.push(() => router.close());
    /** an app (pid) opens a connection through the router and sends `msg`; resolves with the answer, or `reset` */
    const send = async (
      pid: number,
      msg: string,
      at?: { port?: number; gen?: bigint; unlisted?: boolean },
    ): Promise<string> => {
      const port = at?.port ?? (await freePort());
      const app = { port, pid, gen: at?.gen ?? generation++ };
      if (!at?.unlisted) apps.push(app); // unlisted: the socket is not in pcblist_n (yet / any more)
      const s: Socket = connect({
        host: '127.0.0.1',
        port: addr.port,
        localAddress: '127.0.0.1',
        localPort: port,
      });
      return new Promise((resolve) => {
        let got = '';
        s.on('connect', () => s.write(msg));
        s.on('data', (d) => (got += d.toString()));
        s.on('error', () => resolve('reset'));
        s.on('close', () => {
          if (apps.includes(app)) apps.splice(apps.indexOf(app), 1);
          resolve(got || 'reset');
        });
      });
    };
    return { routes, send, router, lookup, down, lingering };
  }

  const FIREFOX = '/Applications/Firefox.app/Contents/MacOS/firefox';
  const CURL = '/usr/bin/curl';
  const BLOCKED = '/opt/untrusted/bin/agent';
  const OTHER = '/usr/local/bin/other';
  const rules: Rule[] = [
    { name: 'browser', match: { name: 'firefox' }, target: 'A', fallback: 'failover' },
    {
      name: 'browser-backup',
      match: { dir: '/Applications/Firefox.app' },
      target: 'B',
      fallback: 'block',
    },
    { name: 'tools', match: { path: '/usr/bin/*' }, target: 'direct' },
    { name: 'untrusted', match: { dir: '/opt/untrusted' }, target: 'block' },
    { name: 'other', match: { regex: 'other$' }, target: 'A', fallback: 'allow-direct' },
  ] as Rule[];
  const paths = { 10: FIREFOX, 11: CURL, 12: BLOCKED, 13: OTHER, 14: '/usr/local/bin/unmatched' };

  it('each app goes where its first matching rule says; unmatched apps take the default; blocked flows reach nothing', async () => {
    const { routes, send, router } = await setup({ rules, default: 'B', paths });
    expect(await send(10, 'ff')).toBe('A:ff');
    expect(await send(11, 'curl')).toBe('direct:curl');
    expect(await send(12, 'secret')).toBe('reset');
    expect(await send(14, 'x')).toBe('B:x');
    expect([...routes.A.seen, ...routes.B.seen, ...routes.direct.seen]).not.toContain('secret');
    expect(Object.fromEntries(router.counts)).toEqual({ A: 1, direct: 1, blocked: 1, B: 1 });
    // per rule: connections and payload both ways (the answer is `<route>:` + the message); an
    // app no rule matched counts for none; a blocked one counts, with nothing received
    const traffic = Object.fromEntries(router.ruleTraffic());
    expect(traffic).toEqual({
      browser: { connections: 1, txBytes: 2, rxBytes: 4 },
      tools: { connections: 1, txBytes: 4, rxBytes: 11 },
      untrusted: { connections: 1, txBytes: expect.any(Number), rxBytes: 0 },
    });
  });

  it("per connection, the monitor's counts: owner, rule, route, the router's upstream socket and the payload copied each way, final once closed", async () => {
    const { send, router } = await setup({ rules, default: 'B', paths });
    expect(await send(11, 'curl')).toBe('direct:curl');
    expect(await send(12, 'secret')).toBe('reset');
    // the router's side closes just after the app saw the end
    await eventually(() => expect(router.flows().every((f) => f.closed)).toBe(true));
    const flows = router.flows();
    expect(flows).toHaveLength(2);
    const curl = flows.find((f) => f.pid === 11);
    const blocked = flows.find((f) => f.pid === 12);
    expect(curl).toEqual({
      key: expect.stringMatching(/^\d+\.1$/),
      app: { address: '127.0.0.1', port: expect.any(Number) },
      dst: DST,
      pid: 11,
      rule: 'tools',
      route: 'direct',
      upstream: { address: '127.0.0.1', port: expect.any(Number) },
      sent: 4,
      received: 11,
      closed: true,
    });
    expect(blocked).toMatchObject({ pid: 12, rule: 'untrusted', route: 'blocked', received: 0 });
    expect(blocked!.upstream).toBeUndefined();
    // keys are unique across routers (the monitor keeps a flow's key for its life)
    const other = await setup({ rules, default: 'B', paths });
    expect(await other.send(11, 'x')).toBe('direct:x');
    expect(other.router.flows()[0]!.key).not.toBe(curl!.key);
  });

  it('fallbacks while tunnel A is down: failover to the next matching rule, allow-direct, and block when B is down too', async () => {
    const a = await setup({ rules, default: 'direct', down: ['A'], paths });
    expect(await a.send(10, 'ff')).toBe('B:ff'); // failover → browser-backup → B
    // counted for the rule that matched first (browser), wherever its failover sent the flow
    expect(a.router.ruleTraffic().get('browser')).toEqual({
      connections: 1,
      txBytes: 2,
      rxBytes: 4,
    });
    expect(await a.send(13, 'o')).toBe('direct:o'); // allow-direct
    const b = await setup({ rules, default: 'direct', down: ['A', 'B'], paths });
    expect(await b.send(10, 'ff')).toBe('reset'); // failover → B down, fallback block
    expect(b.routes.B.seen).toEqual([]);
  });

  it('an owner that cannot be found is blocked; it takes the default only when configured so and no rule can block', async () => {
    const a = await setup({ rules, default: 'direct', paths });
    expect(await a.send(99, 'ghost')).toBe('reset'); // pid 99: proc_pidpath finds nothing (exited)
    expect(a.routes.direct.seen).toEqual([]);
    const b = await setup({ rules, default: 'direct', unknownOwner: 'default', paths });
    expect(await b.send(99, 'ghost')).toBe('reset'); // the ghost may be the blocked agent: never leak it
    expect(b.routes.direct.seen).toEqual([]);
    const open = [
      { name: 'tools', match: { path: '/usr/bin/*' }, target: 'direct' },
      { name: 'other', match: { regex: 'other$' }, target: 'A', fallback: 'allow-direct' },
    ] as Rule[];
    const c = await setup({ rules: open, default: 'B', unknownOwner: 'default', paths });
    expect(await c.send(99, 'ghost')).toBe('B:ghost');
  });

  it('a port reused by another process is judged by its new owner (socket generation), a known socket from the cache', async () => {
    const { send, lookup } = await setup({ rules, default: 'direct', paths });
    const port = await freePort();
    expect(await send(10, 'one', { port, gen: 77n })).toBe('A:one');
    expect(lookup.pathCalls).toBe(1);
    expect(await send(10, 'two', { port, gen: 77n })).toBe('A:two'); // same socket generation: cached
    expect(lookup.pathCalls).toBe(1);
    expect(await send(12, 'three', { port, gen: 78n })).toBe('reset'); // same port, new socket of the blocked app
    expect(lookup.pathCalls).toBe(2);
  });
  it('the same 4-tuple listed twice (a TIME_WAIT leftover of another app): the newest socket generation is the owner, wherever it is listed', async () => {
    const { send, lingering, routes } = await setup({ rules, default: 'direct', paths });
    const p1 = await freePort();
    lingering.before.push({ port: p1, pid: 12, gen: 5n }); // the blocked agent's old connection on the tuple
    expect(await send(10, 'new', { port: p1, gen: 900n })).toBe('A:new');
    const p2 = await freePort();
    lingering.after.push({ port: p2, pid: 10, gen: 6n }); // firefox's old connection; the agent reused the tuple
    expect(await send(12, 'secret', { port: p2, gen: 901n })).toBe('reset');
    expect([...routes.A.seen, ...routes.B.seen, ...routes.direct.seen]).not.toContain('secret');
  });

  it("a redial that comes back into the router (a connection to the host's own address over lo0) is blocked at its second hop, not looped", async () => {
    const { send, router, routes } = await setup({
      rules,
      default: 'direct',
      paths: { ...paths, [process.pid]: '/usr/local/bin/node' },
      loopDirect: true,
    });
    expect(await send(14, 'x')).toBe('reset');
    expect(Object.fromEntries(router.counts)).toEqual({ direct: 1, blocked: 1 });
    expect([...routes.A.seen, ...routes.B.seen, ...routes.direct.seen]).toEqual([]);
  });

  it('a proxy tunnel whose dial fails while its health says up: allow-direct redials direct (proxy/fallback.ts), other fallbacks and a refusal reset; a WireGuard tunnel never redials', async () => {
    const a = await setup({ rules, default: 'direct', paths, failA: 'unreachable', proxyA: true });
    expect(await a.send(13, 'o')).toBe('direct:o'); // rule other: A, allow-direct
    expect(await a.send(10, 'ff')).toBe('reset'); // rule browser: A, failover (health decides, B is not tried)
    expect(a.routes.B.seen).toEqual([]);
    const b = await setup({ rules, default: 'direct', paths, failA: 'rejected', proxyA: true });
    expect(await b.send(13, 'o')).toBe('reset'); // the proxy refused the destination: never direct
    const c = await setup({ rules, default: 'direct', paths, failA: 'timeout' });
    expect(await c.send(13, 'o')).toBe('reset'); // WireGuard: a failed connect is not a tunnel down
    expect([...a.routes.direct.seen, ...b.routes.direct.seen, ...c.routes.direct.seen]).toEqual([
      'o',
    ]);
  });

  it('a config edit (update) judges the next connection by the new rules, default and ipv6', async () => {
    const { send, router, routes } = await setup({ rules, default: 'B', paths });
    expect(await send(10, 'ff')).toBe('A:ff');
    expect(await send(14, 'x')).toBe('B:x');
    router.update({
      rules: [{ name: 'browser', match: { name: 'firefox' }, target: 'block' }] as Rule[],
      default: 'direct',
    });
    expect(await send(10, 'ff2')).toBe('reset');
    expect(await send(14, 'x2')).toBe('direct:x2');
    expect(routes.A.seen).toEqual(['ff']);
    expect(() =>
      router.update({
        rules: [{ name: 'bad', match: { regex: '(' }, target: 'A' }] as Rule[],
        default: 'A',
      }),
    ).toThrow();
    expect(await send(14, 'x3')).toBe('direct:x3'); // a rejected edit changed nothing
  });

  it('fallback drop blocks even while the tunnel is up; a tunnel default that is down blocks unmatched apps', async () => {
    const dropRules = [
      { name: 'd', match: { name: 'firefox' }, target: 'A', fallback: 'drop' },
    ] as Rule[];
    const a = await setup({ rules: dropRules, default: 'A', paths });
    expect(await a.send(10, 'ff')).toBe('reset');
    expect(await a.send(14, 'x')).toBe('A:x'); // unmatched → default A (up)
    a.down.add('A');
    expect(await a.send(14, 'y')).toBe('reset'); // default A down → blocked (never direct)
    expect(a.routes.A.seen).toEqual(['x']);
    expect(a.routes.direct.seen).toEqual([]);
    expect(Object.fromEntries(a.router.counts)).toEqual({ blocked: 2, A: 1 });
  });

  it('a tunnel that goes down is noticed by the next connection (no decision is kept per app)', async () => {
    const t = await setup({ rules, default: 'direct', paths });
    expect(await t.send(13, 'o1')).toBe('A:o1');
    t.down.add('A');
    expect(await t.send(13, 'o2')).toBe('direct:o2'); // allow-direct
    t.down.delete('A');
    expect(await t.send(13, 'o3')).toBe('A:o3');
  });

  it('an app socket not (yet, or no longer) in pcblist_n is an unknown owner: blocked, reaching no route', async () => {
    const t = await setup({ rules, default: 'direct', paths });
    expect(await t.send(11, 'early', { unlisted: true })).toBe('reset');
    expect([...t.routes.A.seen, ...t.routes.B.seen, ...t.routes.direct.seen]).toEqual([]);
    expect(t.lookup.pathCalls).toBe(0);
  });

  it('a lookup that throws (sysctl failed) blocks the flow instead of passing it', async () => {
    const routes = await routeServer('direct');
    closers.push(() => new Promise<void>((res) => routes.server.close(() => res())));
    const router = new FlowRouter({
      listen: { host: '127.0.0.1', port: 0 },
      rules,
      default: 'direct',
      tunnelUp: () => true,
      dialers: { direct: dialTo(routes.port), tunnel: () => dialTo(routes.port) },
      lookup: {
        owner: () => {
          throw new Error('sysctl: ENOMEM');
        },
      },
      originalDestination: () => DST,
      unknownOwner: 'default',
    });
    const addr = await router.start();
    closers.push(() => router.close());
    const got = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: addr.port });
      let g = '';
      s.on('connect', () => s.write('z'));
      s.on('data', (d) => (g += d.toString()));
      s.on('error', () => resolve('reset'));
      s.on('close', () => resolve(g || 'reset'));
    });
    expect(got).toBe('reset');
    expect(routes.seen).toEqual([]);
  });

  it('the owner cache is bounded: the oldest entry is evicted and its next flow asks proc_pidpath again', async () => {
    const t = await setup({ rules, default: 'direct', paths, maxEntries: 2 });
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    expect(await t.send(11, 'a', { port: p1, gen: 1n })).toBe('direct:a');
    expect(await t.send(11, 'b', { port: p2, gen: 2n })).toBe('direct:b');
    expect(await t.send(11, 'c', { port: p3, gen: 3n })).toBe('direct:c');
    expect(t.lookup.cached).toBe(2);
    expect(t.lookup.pathCalls).toBe(3);
    expect(await t.send(11, 'c2', { port: p3, gen: 3n })).toBe('direct:c2'); // still cached
    expect(t.lookup.pathCalls).toBe(3);
    expect(await t.send(11, 'a2', { port: p1, gen: 1n })).toBe('direct:a2'); // evicted: asked again
    expect(t.lookup.pathCalls).toBe(4);
    expect(t.lookup.cached).toBe(2);
  });

  /** the route a router over `rules` (default B, every tunnel up) decides for `pid`'s TCP flow to `dst` */
  const routeOf = (
    pid: number,
    dst: typeof DST,
    appAddress: string,
    extra: Partial<ConstructorParameters<typeof FlowRouter>[0]>,
  ) =>
    new FlowRouter({
      listen: { host: '127.0.0.1', port: 0 },
      rules,
      default: 'B',
      tunnelUp: () => true,
      dialers: { direct: dialTo(1), tunnel: () => dialTo(1) },
      lookup: { owner: () => ({ pid, path: (paths as Record<number, string>)[pid]! }) },
      originalDestination: () => dst,
      ...extra,
    }).decide({ proto: 'tcp', app: { address: appAddress, port: 40000 }, dst }).route;

  it('IPv6 flows of a tunnel route follow config.ipv6 as on Linux: tunnel, block, or allow (direct); direct and blocked routes unchanged', () => {
    const decide = (ipv6: 'tunnel' | 'block' | 'allow' | undefined, pid: number, dst = DST6) =>
      routeOf(pid, dst, '::1', ipv6 ? { ipv6 } : {});
    expect([undefined, 'tunnel', 'block', 'allow'].map((m) => decide(m as never, 10))).toEqual([
      'A',
      'A',
      'blocked',
      'direct',
    ]);
    expect(['tunnel', 'block', 'allow'].map((m) => decide(m as never, 14))).toEqual([
      'B',
      'blocked',
      'direct',
    ]); // the default route too
    expect(['tunnel', 'block', 'allow'].map((m) => decide(m as never, 11))).toEqual([
      'direct',
      'direct',
      'direct',
    ]);
    expect(['tunnel', 'block', 'allow'].map((m) => decide(m as never, 12))).toEqual([
      'blocked',
      'blocked',
      'blocked',
    ]);
    expect(decide('block', 10, DST)).toBe('A');
    expect(decide('block', 10, { host: '::ffff:93.184.216.34', port: 443 })).toBe('A'); // v4-mapped is IPv4
  });

  it("a destination on the physical side's own subnet (onLink): a tunnel route goes direct, as main's specific routes win on Linux; blocked and direct unchanged", () => {
    const decide = (pid: number, onLink: boolean) =>
      routeOf(pid, DST, '127.0.0.1', { onLink: () => onLink });
    expect([10, 14, 11, 12].map((pid) => decide(pid, false))).toEqual([
      'A',
      'B',
      'direct',
      'blocked',
    ]);
    expect([10, 14, 11, 12].map((pid) => decide(pid, true))).toEqual([
      'direct',
      'direct',
      'direct',
      'blocked',
    ]);
  });

  it('property: for any rules, default and tunnel states, the router routes a flow as match.ts says', () => {
    const targets = ['A', 'B', 'direct', 'block'] as const;
    const matches = [
      { name: 'firefox' },
      { dir: '/Applications/Firefox.app' },
      { path: '/usr/bin/*' },
      { dir: '/opt/untrusted' },
      { regex: 'other$' },
      { dir: '/' },
    ];
    const rule = fc.record({
      match: fc.constantFrom(...matches),
      target: fc.constantFrom(...targets),
      fallback: fc.constantFrom('allow-direct', 'block', 'failover', 'drop'),
      enabled: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(rule, { maxLength: 6 }),
        fc.constantFrom('direct', 'A', 'B'),
        fc.subarray(['A', 'B']),
        fc.constantFrom(...Object.keys(paths).map(Number), 99),
        fc.constantFrom('block' as const, 'default' as const),
        fc.constantFrom('tunnel' as const, 'block' as const, 'allow' as const),
        fc.constantFrom(DST, DST6, { host: '::ffff:93.184.216.34', port: 443 }),
        (rs, def, down, pid, unknown, ipv6, dst) => {
          const rules = rs.map((r, i) => ({ name: `r${i}`, ...r })) as Rule[];
          const tunnelUp = (t: string) => !down.includes(t);
          const path = (paths as Record<number, string>)[pid];
          const router = new FlowRouter({
            listen: { host: '127.0.0.1', port: 0 },
            rules,
            default: def,
            tunnelUp,
            dialers: { direct: dialTo(1), tunnel: () => dialTo(1) },
            lookup: { owner: () => (path ? { pid, path } : undefined) },
            originalDestination: () => dst,
            unknownOwner: unknown,
            ipv6,
          });
          const got = router.decide({
            proto: 'tcp',
            app: { address: '127.0.0.1', port: 40000 },
            dst,
          }).route;
          // IPv6 of a tunnel route as Linux marks it (ruleAction → markRules): tunnel, dropped, or direct
          const family = (r: string) =>
            dst !== DST6 || r === 'direct' || r === 'blocked' || ipv6 === 'tunnel'
              ? r
              : ipv6 === 'block'
                ? 'blocked'
                : 'direct';
          if (!path) {
            // unknown owner: never a route a matching rule could not have given; blocked unless no rule blocks
            if (got === 'blocked') return true;
            return (
              unknown === 'default' &&
              !rulesCanBlock(rules) &&
              got === family(defaultRoute(def, tunnelUp))
            );
          }
          const chain = compileRules(rules).failoverChain(path);
          return (
            got ===
            family(chain.length ? effectiveRoute(chain, tunnelUp) : defaultRoute(def, tunnelUp))
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
