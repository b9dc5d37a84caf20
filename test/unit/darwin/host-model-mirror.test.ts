/**
 * Linux end-to-end scenarios that host-model.test.ts and host-model-faults.test.ts did not
 * yet mirror on the macOS host model:
 *
 * - e2e-apply "down after a sysctl that was already at the wanted value restores nothing it
 *   did not change" → a network service whose DNS already was the tunnel's;
 * - e2e-apply "foreign objects stay byte-identical" → PF enabled by someone's `pfctl -e`
 *   (a reference without a token: XNU's pf_enabled_ref_count) is still enabled after down;
 * - e2e-faults "a kill-switch-only config blocks traffic … and down reopens it";
 * - the engines' own packets stay outside the tunnels (Linux: their fwmark): a default
 *   tunnel whose endpoint is a local relay on 127.0.0.1, and a second WireGuard tunnel whose
 *   handshakes must not ride the default tunnel.
 *
 * Verified on the model only (PF verdicts from pf-eval.ts, not packets).
 */
import { describe, expect, it } from 'vitest';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfVerdict, type Packet } from '../../helpers/macos-host/pf-eval.js';
import {
  DNS_OUT,
  ENDPOINT,
  ENDPOINT_UDP,
  macConfig,
  WEB,
  rigsCleanedAfterEach,
} from '../../helpers/macos-host/scenario.js';
import { wgKeyPair } from '../../helpers/awg.js';

const LAN: Packet = { ...WEB, dst: '192.168.1.20', dport: 22 };
const LOOPBACK: Packet = {
  dir: 'out',
  iface: 'lo0',
  family: 4,
  proto: 'tcp',
  dst: '127.0.0.1',
  dport: 8080,
};

describe('macOS host model: more of the Linux scenarios', () => {
  const rig = rigsCleanedAfterEach();

  it('a service whose DNS already was the tunnel resolver keeps it through apply and down; the others are restored', async () => {
    const h = MacHost.laptop();
    h.services.find((s) => s.name === 'Thunderbolt Bridge')!.dns = ['10.66.0.1'];
    const r = rig(macConfig(), h);
    const prior = h.snapshot();
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(h.services.filter((s) => s.enabled).map((s) => s.dns)).toEqual([
      ['10.66.0.1'],
      ['10.66.0.1'],
    ]);
    const down = await r.down();
    expect(down.errors).toEqual([]);
    expect(h.snapshot()).toEqual(prior);
    expect(h.services.find((s) => s.name === 'Wi-Fi')!.dns).toEqual([]); // Empty again (DHCP)
    expect(h.services.find((s) => s.name === 'Thunderbolt Bridge')!.dns).toEqual(['10.66.0.1']);
  });

  it("PF enabled by someone's `pfctl -e` (no token) is still enabled after down; our -E reference alone is released", async () => {
    const h = MacHost.laptop();
    h.pfctlEnable();
    const r = rig(macConfig(), h);
    const prior = h.snapshot();
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(h.pf.refs.size).toBe(1);
    expect(pfVerdict(h, WEB)).toBe('block');
    expect((await r.down()).errors).toEqual([]);
    expect(h.snapshot()).toEqual(prior);
    expect(h.pf.enabled).toBe(true);
    expect(r.mutationLines().filter((l) => /^pfctl -(e|d)\b/.test(l))).toEqual([]);
  });

  it('a kill-switch-only config blocks the internet, the LAN and DNS but not loopback while applied; down reopens the host exactly', async () => {
    const r = rig('version: 1\nkillSwitch: { enabled: true, allowLan: false }\n');
    const prior = r.host.snapshot();
    for (const p of [WEB, LAN, DNS_OUT, LOOPBACK]) expect(pfVerdict(r.host, p)).toBe('pass');
    const { ctx } = await r.apply();
    expect(ctx.error?.message).toBeUndefined();
    expect(ctx.outcome).toBe('converged');
    expect([...r.host.interfaces.keys()].filter((n) => n.startsWith('utun'))).toEqual([]);
    for (const p of [WEB, LAN, DNS_OUT, ENDPOINT_UDP])
      expect([p.dst, pfVerdict(r.host, p)]).toEqual([p.dst, 'block']);
    expect(pfVerdict(r.host, LOOPBACK)).toBe('pass');
    // nothing but PF changed: no routes, no DNS
    const now = r.host.snapshot() as { routes: unknown; services: unknown };
    const before = prior as { routes: unknown; services: unknown };
    expect(now.routes).toEqual(before.routes);
    expect(now.services).toEqual(before.services);
    expect(await r.diff()).toEqual([]);
    expect((await r.apply()).mutations).toBe(0);
    expect((await r.down()).errors).toEqual([]);
    expect(r.host.snapshot()).toEqual(prior);
    for (const p of [WEB, LAN, DNS_OUT]) expect(pfVerdict(r.host, p)).toBe('pass');
  });

  // Before: realiseDarwin planned a bypass host route 127.0.0.1/32 via the Wi-Fi gateway, which
  // collided with lo0's own 127.0.0.1 route: apply refused to adopt it and rolled back.
  it('a default tunnel whose endpoint is a local relay (127.0.0.1) applies without a bypass route; loopback is untouched', async () => {
    const r = rig(macConfig().replace(`${ENDPOINT}:51820`, '127.0.0.1:51820'));
    const prior = r.host.snapshot();
    const lo = r.host.routes.filter((x) => x.netif === 'lo0');
    const { ctx } = await r.apply();
    expect(ctx.error?.message).toBeUndefined();
    expect(ctx.outcome).toBe('converged');
    expect(
      r.mutationLines().filter((l) => l.startsWith('route ') && l.includes('127.0.0.1')),
    ).toEqual([]);
    expect(r.host.routes.filter((x) => x.netif === 'lo0')).toEqual(lo);
    expect(pfVerdict(r.host, { ...LOOPBACK, proto: 'udp', dport: 51820 })).toBe('pass');
    expect(await r.diff()).toEqual([]);
    expect((await r.down()).errors).toEqual([]);
    expect(r.host.snapshot()).toEqual(prior);
  });

  // Before: only the default tunnel's endpoints were bypassed, so a second WireGuard tunnel's
  // encrypted packets followed 0/1 into the default tunnel (the utun engine does not pin its
  // socket to en0): that tunnel depended on the other one being up.
  it("a second WireGuard tunnel's endpoint is bypassed too: its handshakes leave by en0, not inside the default tunnel", async () => {
    const k = wgKeyPair();
    const p = wgKeyPair();
    const office = `  office:
    type: wireguard
    privateKey: "${k.privateKey}"
    addresses: [172.20.0.14/32]
    dns: [172.20.0.53]
    peers:
      - publicKey: "${p.publicKey}"
        endpoint: 203.0.113.9:51820
        allowedIPs: [172.20.0.0/16]
default: home`;
    const r = rig(macConfig().replace('default: home', office));
    const prior = r.host.snapshot();
    const { ctx } = await r.apply();
    expect(ctx.error?.message).toBeUndefined();
    expect(ctx.outcome).toBe('converged');
    expect(r.host.routes.find((x) => x.dst === '203.0.113.9/32')).toMatchObject({
      gateway: '192.168.1.1',
      netif: 'en0',
    });
    expect(r.host.routes.find((x) => x.dst === `${ENDPOINT}/32`)).toMatchObject({
      gateway: '192.168.1.1',
      netif: 'en0',
    });
    expect(pfVerdict(r.host, { ...ENDPOINT_UDP, dst: '203.0.113.9' })).toBe('pass');
    expect(await r.diff()).toEqual([]);
    expect((await r.apply()).mutations).toBe(0);
    expect((await r.down()).errors).toEqual([]);
    expect(r.host.snapshot()).toEqual(prior);
  });

  // Before: a WireGuard server on the router itself (endpoint = the default gateway) got a
  // bypass host route 192.168.1.1 via 192.168.1.1, colliding with the router's host route
  // macOS keeps on en0 (`192.168.1.1/32 link#11 UCS`): apply refused to adopt it and rolled back.
  it('a default tunnel whose endpoint is the router (the default gateway) applies without a bypass route', async () => {
    const r = rig(macConfig().replace(`${ENDPOINT}:51820`, '192.168.1.1:51820'));
    const prior = r.host.snapshot();
    const { ctx } = await r.apply();
    expect(ctx.error?.message).toBeUndefined();
    expect(ctx.outcome).toBe('converged');
    expect(
      r.mutationLines().filter((l) => l.startsWith('route ') && l.includes('192.168.1.1')),
    ).toEqual([]);
    // the router stays reachable on en0 by its own host route, more specific than 0/1
    const out = (await r.host.read('route', ['-n', 'get', '192.168.1.1'])).stdout;
    expect(out).toMatch(/interface: en0/);
    expect(pfVerdict(r.host, { ...ENDPOINT_UDP, dst: '192.168.1.1' })).toBe('pass');
    expect(pfVerdict(r.host, WEB)).toBe('block');
    expect(await r.diff()).toEqual([]);
    expect((await r.down()).errors).toEqual([]);
    expect(r.host.snapshot()).toEqual(prior);
  });

  // Before: every macOS apply warned that per-app rules are not applied, rules or not — the
  // policy always holds awg exec's `_exec-*` groups.
  it('the per-app warning (what the flow router does not do) names only configs that have rules', async () => {
    const warns = async (yaml: string) =>
      (await rig(yaml).prep()).desired.warnings.filter((w) => /per-app/.test(w));
    expect(await warns(macConfig())).toEqual([]);
    const withRule = macConfig().replace(
      'default: home',
      'rules:\n  - match: { name: firefox }\n    target: home\ndefault: home',
    );
    expect(await warns(withRule)).toEqual([
      expect.stringMatching(
        /^per-app routing on macOS: UDP is routed per app for user processes only \(uid >= 501\); system daemons' UDP \(DNS through mDNSResponder, NTP\) follows the routing table, and processes running as uid 0 are not routed per app$/,
      ),
    ]);
  });
});
