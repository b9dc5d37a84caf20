/**
 * A WireGuard tunnel that is not the default route, on the macOS host model: its allowed
 * prefixes become interface-scoped routes on its utun (`route -ifscope`, flag I), the macOS
 * counterpart of the tunnel's own table on Linux. Only sockets bound to that utun
 * (IP_BOUND_IF: the flow router's dials for rules that target the tunnel) see them; an
 * unbound socket keeps the system's routes. The model's lookup follows xnu's scoped lookup
 * (bsd/net/route.c rt_lookup_common). Verified on the model only (docs/platform-macos.md).
 */
import { describe, expect, it } from 'vitest';
import { parseNetstatRoutes } from '../../../src/platform/darwin/netstat.js';
import { wgKeyPair } from '../../helpers/awg.js';
import type { MacHost } from '../../helpers/macos-host/model.js';
import { pfVerdict, type Packet } from '../../helpers/macos-host/pf-eval.js';
import { macConfig, rigsCleanedAfterEach } from '../../helpers/macos-host/scenario.js';

const office = wgKeyPair();
const officePeer = wgKeyPair();
const OFFICE_ENDPOINT = '203.0.113.9';
/** `home` (macConfig: kill switch on) is the default route; `office` carries two private prefixes, for one app */
const CONFIG =
  macConfig().replace(
    'tunnels:\n',
    `tunnels:
  office:
    type: wireguard
    privateKey: "${office.privateKey}"
    addresses: [10.77.0.2/32]
    peers:
      - publicKey: "${officePeer.publicKey}"
        endpoint: ${OFFICE_ENDPOINT}:51820
        allowedIPs: [10.20.0.0/16, 172.31.0.0/16]
`,
  ) +
  'rules:\n  - name: intranet\n    match: { name: Safari }\n    target: office\n    fallback: block\n';

const utunWith = (host: MacHost, address: string) =>
  [...host.interfaces.values()].find((i) => i.inet.some((a) => a.address === address))!.name;

describe('macOS host model: a non-default WireGuard tunnel routed in its interface scope', () => {
  const rig = rigsCleanedAfterEach();

  it('apply: its prefixes scoped to its utun; a socket bound there reaches them, nothing else; an unbound one keeps the system routes; a second apply is a no-op', async () => {
    const r = rig(CONFIG);
    const { ctx } = await r.apply();
    expect(ctx.error?.message).toBeUndefined();
    expect(ctx.outcome).toBe('converged');
    const officeUtun = utunWith(r.host, '10.77.0.2');
    const homeUtun = utunWith(r.host, '10.66.0.2');
    expect(officeUtun).not.toBe(homeUtun);

    // netstat -rn as the driver reads it: flag I, on office's utun
    const rows = parseNetstatRoutes((await r.host.read('netstat', ['-rn'])).stdout).filter(
      (k) => k.netif === officeUtun,
    );
    expect(rows.map((k) => [k.dst, k.ifscope, k.flags])).toEqual([
      ['10.20.0.0/16', true, 'UScI'],
      ['172.31.0.0/16', true, 'UScI'],
    ]);
    expect(r.mutationLines()).toContain(
      `route -n add -inet -net 10.20.0.0/16 -interface ${officeUtun} -ifscope ${officeUtun}`,
    );

    // the flow router's dial for `intranet` is bound to office's utun
    expect(r.host.lookup('10.20.3.4', officeUtun)?.netif).toBe(officeUtun);
    expect(r.host.lookup('172.31.0.9', officeUtun)?.netif).toBe(officeUtun);
    // outside its prefixes a bound socket has no route: it fails, it never leaves by en0 or home
    expect(r.host.lookup('93.184.216.34', officeUtun)).toBeUndefined();
    // unbound sockets: the default tunnel's 0/1 (home), office's prefixes included
    expect(r.host.lookup('10.20.3.4')?.netif).toBe(homeUtun);
    // a socket bound to home's utun still finds home's unscoped 0/1
    expect(r.host.lookup('93.184.216.34', homeUtun)?.netif).toBe(homeUtun);
    // the kill switch lets the bound dial's packets out of office's utun, never out of en0
    const intranet: Packet = {
      dir: 'out',
      iface: officeUtun,
      family: 4,
      proto: 'tcp',
      dst: '10.20.3.4',
      dport: 443,
    };
    expect(pfVerdict(r.host, intranet)).toBe('pass');
    expect(pfVerdict(r.host, { ...intranet, iface: 'en0' })).toBe('block');
    // office's endpoint bypasses the default tunnel, like home's
    expect(r.host.lookup(OFFICE_ENDPOINT)).toMatchObject({ netif: 'en0', gateway: '192.168.1.1' });

    expect(await r.diff()).toEqual([]);
    const again = await r.apply();
    expect(again.ctx.outcome).toBe('unchanged');
    expect(again.mutations).toBe(0);
  });

  it('a scoped route deleted by hand is drift, and repaired; down restores the prior host', async () => {
    const r = rig(CONFIG);
    const prior = r.host.snapshot();
    await r.apply();
    const officeUtun = utunWith(r.host, '10.77.0.2');
    r.host.routes = r.host.routes.filter(
      (k) => !(k.netif === officeUtun && k.dst === '10.20.0.0/16'),
    );
    expect(r.host.lookup('10.20.3.4', officeUtun)).toBeUndefined(); // what every dial got before scoped routes
    const found = await r.diff();
    expect(found.map((c) => `${c.action} ${c.id} ${c.cause}`)).toEqual([
      expect.stringMatching(/^create route\/v4\/table-\d+\/10\.20\.0\.0\/16\/metric-0 drift$/),
    ]);
    expect(found[0]!.id).not.toContain('table-254/'); // office's table number, apart from main's ids
    const { ctx } = await r.apply();
    expect(ctx.outcome).toBe('converged');
    expect(r.host.lookup('10.20.3.4', officeUtun)?.netif).toBe(officeUtun);

    const d = await r.down();
    expect(d.errors).toEqual([]);
    expect(d.left).toEqual([]);
    expect(r.host.snapshot()).toEqual(prior);
  });

  it('an unscoped route of the same prefix (the LAN, another VPN) is no conflict for the scoped one, and is never touched', async () => {
    const r = rig(CONFIG);
    r.host.routes.push({
      family: 4,
      dst: '172.31.0.0/16',
      gateway: '192.168.1.1',
      flags: 'UGSc',
      netif: 'en0',
    });
    const { ctx } = await r.apply();
    expect(ctx.error?.message).toBeUndefined();
    expect(ctx.outcome).toBe('converged');
    const officeUtun = utunWith(r.host, '10.77.0.2');
    expect(r.host.lookup('172.31.0.9', officeUtun)?.netif).toBe(officeUtun);
    expect(r.host.lookup('172.31.0.9')?.netif).toBe('en0');
    await r.down();
    expect(r.host.routes.filter((k) => k.dst === '172.31.0.0/16')).toEqual([
      { family: 4, dst: '172.31.0.0/16', gateway: '192.168.1.1', flags: 'UGSc', netif: 'en0' },
    ]);
  });
});
