import { describe, expect, it } from 'vitest';
import {
  expandDestination,
  parseNetstatRoutes,
  primaryDefault,
} from '../../../src/platform/darwin/netstat.js';
import {
  endpointBypassRoutes,
  parseRouteGet,
  parseRouteResult,
  routeAddArgs,
  routeDeleteArgs,
  splitDefaultRoutes,
} from '../../../src/platform/darwin/route.js';
import { fixture, sections } from './fixtures.js';

describe('parseNetstatRoutes', () => {
  it('split 0/1 + 128.0/1 via utun2 with endpoint bypass (tun2socks)', () => {
    const rs = parseNetstatRoutes(fixture('routes/netstat-rn-split-0-1-128-1-utun2-tun2socks.txt'));
    expect(rs).toHaveLength(18);
    expect(rs.every((r) => r.family === 4)).toBe(true);
    const half = rs.filter((r) => r.netif === 'utun2' && !r.host);
    expect(half.map((r) => [r.dst, r.gateway, r.flags, r.viaGateway])).toEqual([
      ['0.0.0.0/1', { kind: 'interface', name: 'utun2' }, 'UScg', false],
      ['128.0.0.0/1', { kind: 'interface', name: 'utun2' }, 'USc', false],
    ]);
    const bypass = rs.find((r) => r.dst === '192.168.1.51/32' && r.viaGateway)!;
    expect(bypass).toMatchObject({
      gateway: { kind: 'ip', address: '192.168.1.1' },
      flags: 'UGHS',
      netif: 'en0',
      static: true,
      host: true,
    });
    expect(primaryDefault(rs, 4)).toMatchObject({
      dst: '0.0.0.0/0',
      gateway: { kind: 'ip', address: '192.168.1.1' },
      netif: 'en0',
      flagNames: ['UP', 'GATEWAY', 'STATIC', 'PRCLONING', 'GLOBAL'],
    });
    expect(rs.find((r) => r.destination === '127')!.dst).toBe('127.0.0.0/8');
    expect(rs.find((r) => r.destination === '169.254')!).toMatchObject({
      dst: '169.254.0.0/16',
      gateway: { kind: 'link', index: 11 },
      expire: '!',
    });
    expect(rs.find((r) => r.destination === '192.168.1')!.dst).toBe('192.168.1.0/24');
    expect(rs.find((r) => r.destination === '224.0.0/4')!.dst).toBe('224.0.0.0/4');
    expect(
      rs.find((r) => r.destination === '192.168.1.1' && r.gateway.kind === 'mac'),
    ).toMatchObject({
      gateway: { kind: 'mac', address: '20:c0:47:f2:b5:8e' },
      expire: '1195',
      flags: 'UHLWIir',
    });
    expect(rs.find((r) => r.destination === '192.168.1.255')!.flagNames).toContain('BROADCAST');
  });

  it('wireguard-tools excerpt: 0/1 on utun0 and an ifscoped link# default', () => {
    const rs = parseNetstatRoutes(
      fixture('routes/netstat-nr-f-inet-0-1-utun0-link-gateway-wgtools.txt'),
    );
    expect(rs.map((r) => [r.dst, r.gateway, r.ifscope, r.netif])).toEqual([
      ['0.0.0.0/1', { kind: 'interface', name: 'utun0' }, false, 'utun0'],
      ['0.0.0.0/0', { kind: 'link', index: 25 }, true, 'utun0'],
    ]);
    expect(primaryDefault(rs, 4)).toBeUndefined();
  });

  it('10.15: no Refs/Use, 192.168.52/23 and /32 cloning entries', () => {
    const rs = parseNetstatRoutes(
      fixture('routes/netstat-nr-f-inet-10.15-iproute2mac-TRUNCATED.txt'),
    );
    expect(rs).toHaveLength(9);
    expect(rs[0]).toMatchObject({ dst: '0.0.0.0/0', flags: 'UGSc', netif: 'en0' });
    expect(rs[0]!.refs).toBeUndefined();
    expect(rs.find((r) => r.destination === '192.168.52/23')!.dst).toBe('192.168.52.0/23');
    expect(rs.find((r) => r.destination === '192.168.53.90/32')).toMatchObject({
      dst: '192.168.53.90/32',
      host: false,
      expire: '!',
    });
  });

  it('header variants parse to the right column sets', () => {
    const s = sections('routes/netstat-nr-f-inet-header-catalina-vs-mojave.txt');
    expect(
      parseNetstatRoutes(
        s.get('macOS Catalina (beta, 2019-06)')!.text + 'default 10.0.0.1 UGSc en0\n',
      )[0],
    ).toMatchObject({ netif: 'en0' });
    const mojave = parseNetstatRoutes(
      s.get('macOS Mojave')!.text + 'default 10.0.0.1 UGSc 34 32 en0\n',
    )[0]!;
    expect(mojave).toMatchObject({ netif: 'en0', refs: 34, use: 32 });
  });

  it('two defaults, second interface-scoped (Refs/Use columns)', () => {
    const rs = parseNetstatRoutes(fixture('routes/netstat-nr-two-defaults-scoped-2020.txt'));
    expect(rs.map((r) => [r.gateway, r.ifscope, r.refs, r.use, r.netif])).toEqual([
      [{ kind: 'ip', address: '172.20.10.1' }, false, 34, 32, 'en5'],
      [{ kind: 'ip', address: '11.136.160.254' }, true, 0, 0, 'en1'],
    ]);
    expect(primaryDefault(rs, 4)!.netif).toBe('en5');
  });

  it('tailscale comment excerpt skips the elision line', () => {
    const rs = parseNetstatRoutes(
      fixture('routes/netstat-r-n-f-inet-default-utun2-scoped-tailscale-comment.txt'),
    );
    expect(rs.map((r) => r.dst)).toEqual(['0.0.0.0/0', '0.0.0.0/0', '10.0.0.0/16', '10.0.0.1/32']);
    expect(primaryDefault(rs, 4)!.gateway).toEqual({ kind: 'ip', address: '10.0.0.1' });
  });

  it('-rnl 10.14.6: Mtu column in both families, v6 zones', () => {
    const rs = parseNetstatRoutes(fixture('routes/netstat-rnl-10.14.6-jc.txt'));
    const v4 = rs.filter((r) => r.family === 4);
    const v6 = rs.filter((r) => r.family === 6);
    expect(v4).toHaveLength(30);
    expect(v4[0]).toMatchObject({ dst: '0.0.0.0/0', refs: 83, use: 24, mtu: 1500, netif: 'en0' });
    expect(v4.find((r) => r.netif === 'vmnet8' && r.destination === '192.168.71')!.dst).toBe(
      '192.168.71.0/24',
    );
    expect(v6.filter((r) => r.isDefault && r.ifscope).map((r) => r.netif)).toEqual([
      'utun0',
      'utun1',
      'utun2',
      'utun3',
    ]);
    expect(primaryDefault(rs, 6)).toMatchObject({
      gateway: { kind: 'ip', address: 'fe80::feae:34ff:fea1:3a80', zone: 'en0' },
      mtu: 1500,
    });
    expect(v6.find((r) => r.destination === 'fe80::%utun0/64')).toMatchObject({
      dst: 'fe80::/64',
      dstZone: 'utun0',
      mtu: 2000,
    });
    expect(v6.find((r) => r.destination === '::1')).toMatchObject({
      dst: '::1/128',
      host: true,
      mtu: 16384,
    });
    expect(v6.find((r) => r.destination === '2600:1700:bab0:d40::/64')!.dst).toBe(
      '2600:1700:bab0:d40::/64',
    );
  });

  it('-rn -f inet6 wide format (teleport vnet on utun5)', () => {
    const rs = parseNetstatRoutes(
      fixture('routes/netstat-rn-f-inet6-utun-vnet-teleport-TRUNCATED.txt'),
    );
    expect(rs.every((r) => r.family === 6)).toBe(true);
    expect(rs.find((r) => r.netif === 'utun5')).toMatchObject({
      dst: 'fd6f:74a0:9a49::/64',
      gateway: { kind: 'ip', address: 'fe80::2e0:4cff:fe3c:b817', zone: 'utun5' },
      flags: 'Uc',
    });
    expect(rs.filter((r) => r.flags === 'UGcIg')).toHaveLength(4);
    expect(rs.find((r) => r.destination === 'fd6f:74a0:9a49::1')).toMatchObject({
      dst: 'fd6f:74a0:9a49::1/128',
      gateway: { kind: 'link', index: 30 },
    });
  });

  it('Sonoma-era trailing spaces; utun6 p2p host route; feth interface', () => {
    const rs = parseNetstatRoutes(fixture('routes/netstat-rn-utun6-p2p-feth-2024-netroute.txt'));
    expect(rs).toHaveLength(14);
    expect(rs.find((r) => r.netif === 'utun6')).toMatchObject({
      dst: '10.0.0.1/32',
      gateway: { kind: 'ip', address: '10.0.0.9' },
      host: true,
      viaGateway: false,
    });
    expect(rs.find((r) => r.netif === 'feth1532')).toMatchObject({
      dst: '10.147.17.0/24',
      expire: '!',
    });
    expect(rs[0]!.expire).toBeUndefined();
  });

  it('without -n: names are kept raw, dst left undefined', () => {
    const rs = parseNetstatRoutes(fixture('routes/netstat-r-names-10.14.6-jc.txt'));
    expect(rs.find((r) => r.destination === 'localhost')!.dst).toBeUndefined();
    expect(rs[0]).toMatchObject({
      dst: '0.0.0.0/0',
      gateway: { kind: 'name', name: 'dsldevice.attlocal' },
    });
    expect(rs.filter((r) => r.family === 6 && r.isDefault)).toHaveLength(5);
  });

  it('expandDestination', () => {
    expect(expandDestination('10/16', 4, false)).toEqual({ cidr: '10.0.0.0/16' });
    expect(expandDestination('10.200.200.3', 4, true)).toEqual({ cidr: '10.200.200.3/32' });
    expect(expandDestination('default', 6, false)).toEqual({ cidr: '::/0' });
    expect(expandDestination('router.lan', 4, true)).toBeUndefined();
  });
});

describe('route(8)', () => {
  it('an interface-scoped route: -ifscope after the gateway, on add and delete (route.c K_IFSCOPE)', () => {
    const r = { family: 4 as const, dst: '10.20.0.0/16', interface: 'utun4', ifscope: 'utun4' };
    expect(routeAddArgs(r)).toEqual([
      '-n',
      'add',
      '-inet',
      '-net',
      '10.20.0.0/16',
      '-interface',
      'utun4',
      '-ifscope',
      'utun4',
    ]);
    expect(routeDeleteArgs(r)).toEqual([
      '-n',
      'delete',
      '-inet',
      '-net',
      '10.20.0.0/16',
      '-interface',
      'utun4',
      '-ifscope',
      'utun4',
    ]);
    expect(routeAddArgs({ family: 6, dst: '::/0', interface: 'utun4', ifscope: 'utun4' })).toEqual([
      '-n',
      'add',
      '-inet6',
      '-net',
      '::/0',
      '-interface',
      'utun4',
      '-ifscope',
      'utun4',
    ]);
  });

  it('builds add/delete lines for split, bypass, blackhole', () => {
    const [a, b] = splitDefaultRoutes('utun3');
    expect(routeAddArgs(a!)).toEqual([
      '-n',
      'add',
      '-inet',
      '-net',
      '0.0.0.0/1',
      '-interface',
      'utun3',
    ]);
    expect(routeAddArgs(b!)).toEqual([
      '-n',
      'add',
      '-inet',
      '-net',
      '128.0.0.0/1',
      '-interface',
      'utun3',
    ]);
    expect(splitDefaultRoutes('utun3', [6]).map(routeAddArgs)[1]).toEqual([
      '-n',
      'add',
      '-inet6',
      '-net',
      '8000::/1',
      '-interface',
      'utun3',
    ]);
    const [e] = endpointBypassRoutes(['198.51.100.7'], { v4: '192.168.1.1' });
    expect(routeAddArgs(e!)).toEqual([
      '-n',
      'add',
      '-inet',
      '-host',
      '198.51.100.7',
      '192.168.1.1',
    ]);
    expect(routeDeleteArgs(e!)).toEqual([
      '-n',
      'delete',
      '-inet',
      '-host',
      '198.51.100.7',
      '192.168.1.1',
    ]);
    expect(() => endpointBypassRoutes(['2001:db8::1'], { v4: '192.168.1.1' })).toThrow(
      /no IPv6 default gateway/,
    );
    expect(routeAddArgs({ family: 4, dst: '0.0.0.0/1', blackhole: true })).toEqual([
      '-n',
      'add',
      '-inet',
      '-net',
      '0.0.0.0/1',
      '127.0.0.1',
      '-blackhole',
    ]);
  });

  it('parses the captured success line and the documented failure forms', () => {
    const colima = fixture('routes/route-nv-add-net-verbose-colima.txt');
    expect(parseRouteResult(colima, '')).toEqual({
      ok: true,
      line: 'add net 172.18: gateway 192.168.64.2',
    });
    expect(
      parseRouteResult(
        'add net 0.0.0.0/1: gateway utun3: File exists\n',
        'route: writing to routing socket: File exists\n',
      ),
    ).toMatchObject({ ok: false, errno: 'EEXIST' });
    expect(parseRouteResult('delete net ::/1: gateway utun3: not in table\n', '')).toMatchObject({
      ok: false,
      errno: 'ESRCH',
      error: 'not in table',
    });
    expect(parseRouteResult('add net ::/1: gateway utun3\n', '')).toEqual({
      ok: true,
      line: 'add net ::/1: gateway utun3',
    });
    expect(parseRouteResult('', '')).toMatchObject({ ok: false });
  });

  it('route get: default vs 0/1 split on utun3', () => {
    expect(parseRouteGet(fixture('routes/route-get-0-default-en0-neofetch.txt'))).toEqual({
      routeTo: 'default',
      destination: 'default',
      mask: 'default',
      gateway: '10.62.96.1',
      interface: 'en0',
      flags: ['UP', 'GATEWAY', 'DONE', 'STATIC', 'PRCLONING', 'GLOBAL'],
      mtu: 1500,
    });
    expect(parseRouteGet(fixture('routes/route-get-1-split-0-1-utun3-neofetch.txt'))).toMatchObject(
      { routeTo: '0.0.0.1', mask: '128.0.0.0', interface: 'utun3' },
    );
    expect(parseRouteGet('route: writing to routing socket: not in table\n')).toBeUndefined();
  });
});

describe('route -v monitor', () => {
  it('parses the captured default-route reorder sequence', async () => {
    const { parseRouteMonitor } = await import('../../../src/platform/darwin/route.js');
    const ms = parseRouteMonitor(fixture('routes/route-v-monitor-default-reorder-2020.txt'));
    expect(ms.map((m) => [m.type, m.seq, m.ifscope])).toEqual([
      ['RTM_DELETE', 262, undefined],
      ['RTM_DELETE', 263, 6],
      ['RTM_ADD', 270, undefined],
      ['RTM_ADD', 271, 5],
    ]);
    expect(ms[0]).toEqual({
      size: 164,
      time: 'Tue May 19 12:20:05 2020',
      type: 'RTM_DELETE',
      pid: 62,
      seq: 262,
      errno: 0,
      flags: ['GATEWAY', 'DONE', 'STATIC', 'PRCLONING', 'CONDEMNED'],
      addrs: {
        dst: 'default',
        gateway: '172.20.10.1',
        netmask: 'default',
        ifp: 'en5:40.a5.ef.41.9f.fb',
        ifa: '172.20.10.3',
      },
    });
    expect(ms[2]!.addrs).toEqual({
      dst: 'default',
      gateway: '11.136.160.254',
      netmask: 'default',
      ifp: '',
      ifa: '11.136.160.44',
    });
  });
});
