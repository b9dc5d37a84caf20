/**
 * Linux end-to-end scenarios that host-model.test.ts and host-model-faults.test.ts did not
 * yet mirror on the macOS host model:
 *
 * - e2e-apply "down after a sysctl that was already at the wanted value restores nothing it
 *   did not change" → a network service whose DNS already was the tunnel's;
 * - e2e-apply "foreign objects stay byte-identical" → PF enabled by someone's `pfctl -e`
 *   (a reference without a token: XNU's pf_enabled_ref_count) is still enabled after down;
 * - e2e-faults "a kill-switch-only config blocks traffic … and down reopens it".
 *
 * Verified on the model only (PF verdicts from pf-eval.ts, not packets).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfVerdict, type Packet } from '../../helpers/macos-host/pf-eval.js';
import { DNS_OUT, ENDPOINT_UDP, macConfig, Rig, WEB } from '../../helpers/macos-host/scenario.js';

const LAN: Packet = { ...WEB, dst: '192.168.1.20', dport: 22 };
const LOOPBACK: Packet = { dir: 'out', iface: 'lo0', family: 4, proto: 'tcp', dst: '127.0.0.1', dport: 8080 };

describe('macOS host model: more of the Linux scenarios', () => {
  const rigs: Rig[] = [];
  const rig = (yaml?: string, host?: MacHost) => {
    const r = new Rig(yaml, host);
    rigs.push(r);
    return r;
  };
  afterEach(() => {
    for (const r of rigs.splice(0)) r.cleanup();
  });

  it('a service whose DNS already was the tunnel resolver keeps it through apply and down; the others are restored', async () => {
    const h = MacHost.laptop();
    h.services.find((s) => s.name === 'Thunderbolt Bridge')!.dns = ['10.66.0.1'];
    const r = rig(macConfig(), h);
    const prior = h.snapshot();
    expect((await r.apply()).ctx.outcome).toBe('converged');
    expect(h.services.filter((s) => s.enabled).map((s) => s.dns)).toEqual([['10.66.0.1'], ['10.66.0.1']]);
    const down = await r.down();
    expect(down.errors).toEqual([]);
    expect(h.snapshot()).toEqual(prior);
    expect(h.services.find((s) => s.name === 'Wi-Fi')!.dns).toEqual([]); // Empty again (DHCP)
    expect(h.services.find((s) => s.name === 'Thunderbolt Bridge')!.dns).toEqual(['10.66.0.1']);
  });

  it('PF enabled by someone\'s `pfctl -e` (no token) is still enabled after down; our -E reference alone is released', async () => {
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
    for (const p of [WEB, LAN, DNS_OUT, ENDPOINT_UDP]) expect([p.dst, pfVerdict(r.host, p)]).toEqual([p.dst, 'block']);
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
});
