/**
 * The darwin wiring of the flow router (resources/flow/flow-router-darwin.ts), run on
 * Linux with real loopback TCP: the natives are fakes (pcblist_n bytes in the kernel's
 * layout, proc_pidpath by table, DIOCNATLOOK answering a fixed destination) except the
 * pinned socket, which is a real socket(2) fd from Linux's libc standing in for one with
 * IP_BOUND_IF set. Checks which interface each route pins its socket to, and that a failed
 * DIOCNATLOOK or an unknown physical interface resets the flow.
 */
import { connect, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Rule } from '../../../src/config/schema.js';
import {
  AF_INET,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  bind,
  close,
  setsockoptInt,
  socket,
} from '../../../src/native/libc.js';
import { ExecRegistry } from '../../../src/resources/flow/exec-routes.js';
import { flowShaping } from '../../../src/resources/flow/flow-router-host.js';
import type { Config } from '../../../src/config/schema.js';
import {
  boundDialer,
  darwinFlowRouter,
  darwinFlowRouterFromConfig,
  loadDarwinFlowNatives,
  type DarwinFlowNatives,
} from '../../../src/resources/flow/flow-router-darwin.js';
import { inSubnets } from '../../../src/util/ipaddr.js';
import type { Dialer } from '../../../src/proxy/types.js';
import { exchange, freePort, routeServer as server } from '../../helpers/route-servers.js';
import { cat, inpcb, rest, socket as xsocket, xinpgen } from '../../helpers/pcblist-bytes.js';

describe('darwin flow router wiring', () => {
  const closers: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  async function setup(o: { natlookFails?: boolean; physical?: string }) {
    const dst = await server('dst');
    const proxy = await server('proxy');
    for (const s of [dst, proxy])
      closers.push(() => new Promise<void>((r) => s.server.close(() => r())));
    const owners = new Map<number, number>(); // client port → pid
    const pinned: string[] = [];
    const natlooks: string[] = [];
    const natives: DarwinFlowNatives = {
      sysctl: (name) => {
        expect(name).toBe('net.inet.tcp.pcblist_n');
        const recs = [...owners].flatMap(([port, pid]) => [
          inpcb(false, [127, 0, 0, 1], port, [127, 0, 0, 1], dst.port, BigInt(port)),
          xsocket(501, pid, 0),
          ...rest(4),
        ]);
        return cat([xinpgen(owners.size), ...recs, xinpgen(owners.size)]);
      },
      pidPath: (pid) =>
        ({
          1: '/usr/bin/curl',
          2: '/Applications/Firefox.app/Contents/MacOS/firefox',
          3: '/opt/x/agent',
          4: '/usr/local/bin/via-proxy',
        })[pid],
      originalDst: (local, remote, family) => {
        natlooks.push(`${remote.address}:${remote.port}->${local.address}:${local.port}/${family}`);
        if (o.natlookFails) throw new Error('DIOCNATLOOK: no PF state');
        return { address: '127.0.0.1', port: dst.port };
      },
      boundTcpFd: (ifname, family) => {
        pinned.push(`${ifname}/${family}`);
        const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw new Error(`socket: ${-fd}`);
        return fd;
      },
    };
    const proxyDialer: Dialer = async () => connect({ host: '127.0.0.1', port: proxy.port });
    const rules = [
      { name: 'tools', match: { dir: '/usr/bin' }, target: 'direct' },
      { name: 'browser', match: { name: 'firefox' }, target: 'work' },
      { name: 'proxied', match: { name: 'via-proxy' }, target: 'socks' },
      { name: 'x', match: { dir: '/opt/x' }, target: 'block' },
    ] as Rule[];
    const { router } = darwinFlowRouter({
      listen: { host: '127.0.0.1', port: 0 },
      rules,
      default: 'direct',
      tunnelUp: () => true,
      natives,
      physical: () => o.physical,
      tunnels: { work: { utun: () => 'utun4' }, socks: { dialer: proxyDialer } },
    });
    const addr = await router.start();
    closers.push(() => router.close());
    const send = async (pid: number, msg: string) => {
      const port = await freePort();
      owners.set(port, pid); // in the list before the router accepts (the kernel's order)
      return exchange(addr.port, port, msg);
    };
    return { send, pinned, natlooks, dst, proxy, natives, owners };
  }

  it('direct pins to the physical interface, a WireGuard tunnel to its utun, a proxy tunnel uses its dialer, block reaches nothing', async () => {
    const t = await setup({ physical: 'en0' });
    expect(await t.send(1, 'curl')).toBe('dst:curl');
    expect(await t.send(2, 'ff')).toBe('dst:ff');
    expect(t.pinned).toEqual(['en0/4', 'utun4/4']);
    expect(await t.send(4, 'p')).toBe('proxy:p');
    expect(await t.send(3, 'secret')).toBe('reset');
    expect(t.pinned).toEqual(['en0/4', 'utun4/4']);
    expect([...t.dst.seen, ...t.proxy.seen]).toEqual(['curl', 'ff', 'p']);
    expect(t.natlooks).toHaveLength(4);
    expect(t.natlooks[0]).toMatch(/^127\.0\.0\.1:\d+->127\.0\.0\.1:\d+\/4$/);
  });

  it("limits: a limited rule's flows leave from its class's ports, a process limited at run time (and its children) from its own; unlimited flows from any port; a port in use is skipped", async () => {
    // the destination remembers where each connection came from
    const from: number[] = [];
    const dst = createServer((c) => {
      from.push(c.remotePort ?? 0);
      c.on('data', (d) => c.end(`dst:${d.toString()}`));
      c.on('error', () => {});
    });
    await new Promise<void>((r) => dst.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => dst.close(() => r())));
    const dstPort = (dst.address() as { port: number }).port;
    const owners = new Map<number, number>();
    const taken = new Set<number>();
    const natives: DarwinFlowNatives = {
      sysctl: () =>
        cat([
          xinpgen(owners.size),
          ...[...owners].flatMap(([port, pid]) => [
            inpcb(false, [127, 0, 0, 1], port, [127, 0, 0, 1], dstPort, BigInt(port)),
            xsocket(501, pid, 0),
            ...rest(4),
          ]),
          xinpgen(owners.size),
        ]),
      pidPath: (pid) =>
        ({ 1: '/usr/bin/curl', 2: '/usr/bin/rsync', 5: '/usr/local/bin/other' })[pid],
      ppid: (pid) => ({ 1: 100, 2: 7, 7: 1, 5: 100 })[pid],
      originalDst: () => ({ address: '127.0.0.1', port: dstPort }),
      boundTcpFd: (_ifname, _family, localPort) => {
        const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw new Error(`socket: ${-fd}`);
        if (localPort === undefined) return fd;
        // Linux's numbers: SOL_SOCKET 1, SO_REUSEADDR 2, SO_REUSEPORT 15
        setsockoptInt(fd, 1, 2, 1);
        setsockoptInt(fd, 1, 15, 1);
        const sin = new Uint8Array(16);
        sin[0] = 2;
        new DataView(sin.buffer).setUint16(2, localPort, false);
        if (taken.has(localPort) || bind(fd, sin) < 0) {
          close(fd);
          throw Object.assign(new Error(`port ${localPort} in use`), { code: 'EADDRINUSE' });
        }
        return fd;
      },
    };
    const rules = [{ name: 'tools', match: { dir: '/usr/bin' }, target: 'direct' }] as Rule[];
    const { router } = darwinFlowRouter({
      listen: { host: '127.0.0.1', port: 0 },
      rules,
      default: 'direct',
      tunnelUp: () => true,
      natives,
      physical: () => 'en0',
      tunnels: {},
      execs: new ExecRegistry(),
      // class 1: the rule `tools`; class 3: pid 7 (awg limit 7), whose child is pid 2
      shaping: flowShaping([
        { n: 1, name: 'rule/tools' },
        { n: 3, name: 'pid/7' },
      ])!,
    });
    const addr = await router.start();
    closers.push(() => router.close());
    const send = async (pid: number, msg: string) => {
      const port = await freePort();
      owners.set(port, pid);
      return exchange(addr.port, port, msg);
    };
    expect(await send(1, 'a')).toBe('dst:a'); // curl: the rule's class
    expect(await send(1, 'b')).toBe('dst:b');
    expect(await send(2, 'c')).toBe('dst:c'); // rsync, a child of the limited pid 7
    expect(await send(5, 'd')).toBe('dst:d'); // no rule, no limit: any port
    const [a, b, c, d] = from;
    expect(a).toBeGreaterThanOrEqual(45056);
    expect(a).toBeLessThanOrEqual(45183);
    expect(b).toBeGreaterThanOrEqual(45056);
    expect(b).toBeLessThanOrEqual(45183);
    expect(b).not.toBe(a);
    expect(c).toBeGreaterThanOrEqual(45312);
    expect(c).toBeLessThanOrEqual(45439);
    // an unlimited flow is dialled from the port the kernel picks: on the Linux test host its
    // ephemeral range (32768–60999) covers the macOS class ranges, so no range is asserted
    expect(d).toBeGreaterThan(0);
    // the class's next three ports are taken: the dial moves on to the fourth
    for (const p of [45058, 45059, 45060]) taken.add(p);
    expect(await send(1, 'e')).toBe('dst:e');
    expect(from.at(-1)).toBe(45061);
    // all of them taken: the flow is reset after LOCAL_PORT_TRIES ports, never sent from another
    for (let p = 45056; p <= 45183; p++) taken.add(p);
    expect(await send(1, 'f')).toBe('reset');
    expect(from).toHaveLength(5);
  });

  it('no PF state for the connection (DIOCNATLOOK fails): reset before any lookup or dial', async () => {
    const t = await setup({ natlookFails: true, physical: 'en0' });
    expect(await t.send(1, 'curl')).toBe('reset');
    expect(t.pinned).toEqual([]);
    expect(t.dst.seen).toEqual([]);
  });

  it('no physical interface known: a direct flow is reset, never dialled through the routing table', async () => {
    const t = await setup({});
    expect(await t.send(1, 'curl')).toBe('reset');
    expect(t.pinned).toEqual([]);
    expect(t.dst.seen).toEqual([]);
  });
  it("from a config: listens on 127.0.0.1 and ::1 at proxyPortBase; WireGuard/AmneziaWG tunnels on their link's utun, a proxy tunnel through its runtime's upstream, reset while it is not running", async () => {
    const t = await setup({ physical: 'en0' });
    const port = await freePort();
    const c = {
      tunnels: { work: { type: 'amneziawg' }, socks: { type: 'socks5' } },
      rules: [
        {
          name: 'browser',
          match: { name: 'firefox' },
          target: 'work',
          fallback: 'block',
          enabled: true,
        },
        {
          name: 'proxied',
          match: { name: 'via-proxy' },
          target: 'socks',
          fallback: 'block',
          enabled: true,
        },
        { name: 'x', match: { dir: '/opt/x' }, target: 'block', fallback: 'block', enabled: true },
      ],
      default: 'direct',
      routing: { proxyPortBase: port },
      ipv6: 'allow',
    } as unknown as Pick<Config, 'tunnels' | 'rules' | 'default' | 'routing' | 'ipv6'>;
    let proxyRunning = false;
    let lan: string[] = ['192.168.1.0/24'];
    const utuns: string[] = [];
    const { router } = darwinFlowRouterFromConfig(c, {
      natives: t.natives,
      tunnelUp: () => true,
      utun: (link) => (utuns.push(link), 'utun7'),
      proxyDialer: (name) =>
        proxyRunning && name === 'socks'
          ? async () => connect({ host: '127.0.0.1', port: t.proxy.port })
          : undefined,
      physical: () => 'en0',
      subnets: (ifn) => (ifn === 'en0' ? lan : []),
    });
    await router.start();
    closers.push(() => router.close());
    expect(
      router.proxy
        .addresses()
        .map((a) => `${a.address} ${a.port}`)
        .sort(),
    ).toEqual([`127.0.0.1 ${port}`, `::1 ${port}`]);
    const send = async (pid: number, msg: string) => {
      const local = await freePort();
      t.owners.set(local, pid);
      return exchange(port, local, msg);
    };
    expect(await send(2, 'ff')).toBe('dst:ff');
    expect(utuns).toEqual(['awg-work']);
    expect(t.pinned).toEqual(['utun7/4']);
    expect(await send(4, 'early')).toBe('reset'); // the socks runtime is not running yet
    proxyRunning = true;
    expect(await send(4, 'p')).toBe('proxy:p');
    expect(await send(1, 'curl')).toBe('dst:curl'); // unmatched: default direct, pinned to en0
    expect(t.pinned).toEqual(['utun7/4', 'en0/4']);
    expect(t.proxy.seen).toEqual(['p']);
    expect(t.dst.seen).toEqual(['ff', 'curl']);
    lan = ['127.0.0.0/8']; // the destination is now on en0's own subnet: reached directly, as Linux's main routes win
    expect(await send(2, 'ff-lan')).toBe('dst:ff-lan');
    expect(t.pinned.at(-1)).toBe('en0/4');
    expect(await send(3, 'secret')).toBe('reset'); // blocked stays blocked on the LAN
  });

  it('inSubnets: same family only, v4-mapped counts as IPv4, junk is not inside', () => {
    const nets = ['192.168.1.0/24', '2001:db8:5::/64'];
    expect(
      ['192.168.1.77', '::ffff:192.168.1.77', '2001:db8:5::9'].map((h) => inSubnets(h, nets)),
    ).toEqual([true, true, true]);
    expect(
      ['192.168.2.1', '2001:db8:6::1', 'example.com', '10.0.0.1'].map((h) => inSubnets(h, nets)),
    ).toEqual([false, false, false, false]);
    expect(inSubnets('192.168.1.1', ['not a cidr'])).toBe(false);
  });

  it('a pinned dial refuses host names and names the interface when the pinned socket cannot be made or connect', async () => {
    const fd = () => socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const refused = await freePort();
    const d = boundDialer(() => 'en0', fd);
    await expect(d({ host: 'example.com', port: 443 })).rejects.toMatchObject({
      kind: 'blocked',
      message: expect.stringMatching(/not an address/),
    });
    await expect(d({ host: '127.0.0.1', port: refused })).rejects.toMatchObject({
      kind: 'unreachable',
      message: expect.stringMatching(new RegExp(`127\\.0\\.0\\.1:${refused} on en0 failed`)),
    });
    const broken = boundDialer(
      () => 'utun9',
      () => {
        throw new Error('IP_BOUND_IF: ENXIO');
      },
    );
    await expect(broken({ host: '127.0.0.1', port: refused })).rejects.toMatchObject({
      kind: 'unreachable',
      message: 'socket pinned to utun9: IP_BOUND_IF: ENXIO',
    });
  });

  it('the real natives load lazily and refuse to run off macOS', async () => {
    const n = await loadDarwinFlowNatives();
    expect(() => n.pidPath(1)).toThrow(/macOS/);
    expect(() => n.sysctl('net.inet.tcp.pcblist_n')).toThrow(/macOS/);
    expect(() => n.boundTcpFd('en0', 4)).toThrow(/macOS/);
  });
});
