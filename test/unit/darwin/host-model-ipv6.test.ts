/**
 * `ipv6: block | tunnel | allow` without the kill switch, on the macOS host model (the Linux
 * counterpart: test/netns/leak-ipv6.test.ts, ipv6-modes.test.ts). Every IPv6 packet a
 * process could send (TCP, UDP, ICMPv6; to the internet, the LAN's global prefix, a ULA,
 * site multicast, DNS; as a user app, root, a system daemon, the kernel) is routed by the
 * model's table and put through the model's PF (pf-eval.ts pfPath; UDP with PF's states,
 * pf-udp.ts); "leaves" means it goes out of the physical interface. Neighbour discovery and
 * link-local destinations are not leaks (they cannot leave the link) and stay open, as the
 * control shows. PF verdicts of the model, never a Mac's (docs/platform-macos.md).
 */
import { describe, expect, it } from 'vitest';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfPath, type Packet } from '../../helpers/macos-host/pf-eval.js';
import { macConfig, rigsCleanedAfterEach, WEB } from '../../helpers/macos-host/scenario.js';

const rig = rigsCleanedAfterEach();

/** a laptop with IPv6 on en0: a global address, its on-link prefix, a default via the router */
function v6Laptop(): MacHost {
  const host = MacHost.laptop();
  host.withIpv6Uplink();
  return host;
}

const TARGETS: { dst: string; dport: number }[] = [
  { dst: '2001:db8:5::1', dport: 443 }, // the internet
  { dst: '2001:db8:1::20', dport: 22 }, // the LAN's global prefix
  { dst: 'fd12::1', dport: 8080 }, // a ULA
  { dst: 'ff05::c', dport: 1900 }, // site-scoped multicast (SSDP)
  { dst: '2606:4700:4700::1111', dport: 53 }, // DNS
];
const UIDS = [501, 0, 65, undefined];

/** every IPv6 probe the routing table sends out en0, and where PF sends each */
function v6Egress(host: MacHost): { probe: string; path: ReturnType<typeof pfPath> }[] {
  const out: { probe: string; path: ReturnType<typeof pfPath> }[] = [];
  for (const t of TARGETS)
    for (const proto of ['tcp', 'udp', 'icmp6'] as const)
      for (const uid of UIDS) {
        const iface = host.lookup(t.dst)?.netif;
        if (!iface) continue;
        const p: Packet = {
          dir: 'out',
          iface,
          family: 6,
          proto,
          dst: t.dst,
          ...(proto === 'icmp6' ? {} : { dport: t.dport }),
          ...(uid !== undefined && proto !== 'icmp6' ? { uid } : {}),
        };
        out.push({
          probe: `${proto} ${t.dst} uid ${uid ?? '-'} via ${iface}`,
          path: pfPath(host, p),
        });
      }
  return out;
}

const leaving = (host: MacHost) =>
  v6Egress(host)
    .filter((x) => x.path === 'out' && x.probe.endsWith('via en0'))
    .map((x) => x.probe);

/** what must stay open for the link to work: ND and link-local destinations */
function linkStaysSane(host: MacHost): void {
  const nd: Packet = {
    dir: 'out',
    iface: 'en0',
    family: 6,
    proto: 'icmp6-nd',
    dst: 'ff02::1:ff00:1',
  };
  expect(pfPath(host, nd)).toBe('out');
  expect(pfPath(host, { ...nd, dst: 'fe80::1' })).toBe('out'); // NUD to the router
  expect(pfPath(host, { ...nd, proto: 'udp', dst: 'ff02::fb', dport: 5353, uid: 65 })).toBe('out'); // mDNS
  expect(pfPath(host, { ...nd, proto: 'tcp', dst: 'fe80::10', dport: 8770, uid: 501 })).toBe('out'); // link-local peer
  expect(pfPath(host, WEB)).toBe('out'); // IPv4 is not this setting's (no kill switch)
}

describe('macOS host model: ipv6 without the kill switch', () => {
  it('ipv6: block, full tunnel: no IPv6 packet leaves by the physical interface; ND and link-local stay; the engine dying changes nothing', async () => {
    const r = rig(macConfig({ killSwitch: false }), v6Laptop());
    const prior = r.host.snapshot();
    // before: an open host, v6 leaves by en0
    expect(leaving(r.host).length).toBeGreaterThan(0);
    const { ctx } = await r.apply();
    expect(ctx.error?.message).toBeUndefined();
    expect(ctx.outcome).toBe('converged');
    // the utun carries no v6 route: the routing table sends v6 to en0, PF must stop it
    expect(r.host.routes.filter((x) => x.netif === 'utun0' && x.family === 6)).toEqual([]);
    expect(r.host.lookup('2001:db8:5::1')?.netif).toBe('en0');
    expect(leaving(r.host)).toEqual([]);
    linkStaysSane(r.host);
    r.engines.kill('home');
    expect(leaving(r.host)).toEqual([]);
    expect(await r.diff()).not.toEqual([]); // the dead engine is drift
    await r.apply();
    await r.down();
    expect(r.host.snapshot()).toEqual(prior);
    expect(leaving(r.host).length).toBeGreaterThan(0); // down reopens v6
  });

  it('ipv6: block with an IPv6 endpoint: the engine reaches it (the carrier, not traffic routed to the tunnel), nothing else does; also under the kill switch', async () => {
    const yaml = macConfig({ killSwitch: false, v6: true }).replace('ipv6: tunnel', 'ipv6: block');
    for (const ks of [false, true]) {
      const r = rig(ks ? yaml.replace('killSwitch: off', 'killSwitch: on') : yaml, v6Laptop());
      expect((await r.apply()).ctx.outcome).toBe('converged');
      const engine: Packet = {
        dir: 'out',
        iface: 'en0',
        family: 6,
        proto: 'udp',
        dst: '2001:db8:2::7',
        dport: 51820,
        uid: 0,
      };
      expect(pfPath(r.host, engine)).toBe('out');
      expect(leaving(r.host)).toEqual([]);
      // reaching the endpoint's next hop needs neighbour discovery, kill switch or not
      const nd: Packet = { dir: 'out', iface: 'en0', family: 6, proto: 'icmp6-nd', dst: 'fe80::1' };
      expect(pfPath(r.host, nd)).toBe('out');
      await r.down();
    }
  });

  it("ipv6: block, split tunnel (default direct): a user app is handed to the flow router (which blocks a tunnelled app's v6), the rest goes direct as on Linux", async () => {
    const yaml = `${macConfig({ killSwitch: false })
      .replace('default: home', 'default: direct')
      .replace('system: default-tunnel', 'system: keep')}rules:
  - name: mail
    match: { name: Mail }
    target: home
    fallback: allow-direct
`;
    // the anchor with the router's rules; the router itself is the daemon's
    // (host-model-udp.test.ts sends the app's datagrams through it)
    const r = rig(yaml, v6Laptop());
    expect((await r.apply()).ctx.outcome).toBe('converged');
    for (const proto of ['tcp', 'udp'] as const) {
      const app: Packet = {
        dir: 'out',
        iface: 'en0',
        family: 6,
        proto,
        dst: '2001:db8:5::1',
        dport: 443,
        uid: 501,
      };
      const path = pfPath(r.host, app);
      expect(path).toMatchObject({ redirect: '::1' });
      // root's processes are not routed per app: the default (direct), as Linux's unmatched
      expect(pfPath(r.host, { ...app, uid: 0 })).toBe('out');
    }
    await r.down();
  });

  it('ipv6: allow and tunnel (full tunnel, no kill switch): v6 is not blocked by PF; allow sends it direct, tunnel routes it into the utun', async () => {
    const allow = rig(
      macConfig({ killSwitch: false }).replace('ipv6: block', 'ipv6: allow'),
      v6Laptop(),
    );
    expect((await allow.apply()).ctx.outcome).toBe('converged');
    expect(allow.host.lookup('2001:db8:5::1')?.netif).toBe('en0');
    // all of it but DNS, which leak protection keeps to the tunnel's resolvers
    expect(leaving(allow.host)).toEqual(
      v6Egress(allow.host)
        .map((x) => x.probe)
        .filter((p) => !/^(tcp|udp) 2606:4700:4700::1111 /.test(p)),
    );
    await allow.down();
    const tunnel = rig(macConfig({ killSwitch: false, v6: true }), v6Laptop());
    expect((await tunnel.apply()).ctx.outcome).toBe('converged');
    expect(tunnel.host.lookup('2001:db8:5::1')?.netif).toBe('utun0');
    // only the LAN's own prefix: its connected route is more specific than ::/1 (as v4's LAN)
    expect(leaving(tunnel.host).length).toBeGreaterThan(0);
    expect(leaving(tunnel.host).filter((p) => !p.includes(' 2001:db8:1::20 '))).toEqual([]);
    await tunnel.down();
  });
});
