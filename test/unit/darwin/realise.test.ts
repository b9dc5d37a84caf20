import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { buildDesired } from '../../../src/model/desired.js';
import type { RouteSpec } from '../../../src/model/resources.js';
import { realiseDarwin } from '../../../src/resources/platform/darwin.js';
import { parseNetstatRoutes, primaryDefault } from '../../../src/platform/darwin/netstat.js';
import { fixture } from './fixtures.js';

function desiredFrom(example: string, resolved: Record<string, string[]>) {
  const file = fileURLToPath(new URL(`../../../examples/${example}`, import.meta.url));
  const r = loadConfigText(readFileSync(file, 'utf8'), file);
  if (!r.config) throw new Error(`example ${example} did not load`);
  return buildDesired(r.config, { facts: { cgroupNftPrefix: '', resolved } });
}

// facts as the route driver reports them from a real capture (default via 192.168.1.1 on en0)
const d0 = primaryDefault(
  parseNetstatRoutes(fixture('routes/netstat-rn-split-0-1-128-1-utun2-tun2socks.txt')),
  4,
)!;
const FACTS = {
  defaultRouteV4: { gateway: (d0.gateway as { address: string }).address, interface: d0.netif },
};

describe('realiseDarwin', () => {
  it('full tunnel: split default pairs on the link, endpoint bypass via the physical gateway, PF anchor, no Linux-only kinds', () => {
    const d = realiseDarwin(
      desiredFrom('wireguard-full-tunnel.yaml', { 'vpn.example.net': ['198.51.100.7'] }),
      FACTS,
    );
    const kinds = new Set(d.resources.map((r) => r.kind));
    expect(kinds.has('rule') || kinds.has('sysctl') || kinds.has('cgroup')).toBe(false);
    const routes = d.resources.filter((r) => r.kind === 'route').map((r) => r.spec as RouteSpec);
    expect(routes.map((r) => [r.dst, r.dev, r.via ?? null])).toEqual([
      ['0.0.0.0/1', 'awg-home', null],
      ['128.0.0.0/1', 'awg-home', null],
      ['::/1', 'awg-home', null],
      ['8000::/1', 'awg-home', null],
      ['198.51.100.7/32', 'en0', '192.168.1.1'],
    ]);
    expect(routes.every((r) => r.table === 254 && r.type === 'unicast')).toBe(true);
    const fw = d.resources.find((r) => r.kind === 'firewall')!;
    expect(fw.id).toBe('firewall/inet/awg');
    const text = (fw.spec as { ruleset: string }).ruleset;
    expect(text).toContain('pass quick on $awg_home all flags any');
    expect(text).toContain('pass out quick inet proto udp from any to 198.51.100.7 port 51820');
    expect(text.trim().split('\n').at(-1)).toBe('block drop out quick all');
    expect(d.resources.find((r) => r.kind === 'dns')!.spec).toEqual({
      scope: 'system',
      servers: ['10.66.0.1'],
      domains: ['~.'],
    });
  });

  it('without a known default gateway the bypass route is missing and says so', () => {
    const d = realiseDarwin(
      desiredFrom('wireguard-full-tunnel.yaml', { 'vpn.example.net': ['198.51.100.7'] }),
      {},
    );
    expect(d.resources.filter((r) => r.kind === 'route')).toHaveLength(4);
    expect(d.warnings.some((w) => w.includes('no IPv4 default gateway known'))).toBe(true);
  });

  it('every example converts without Linux-only kinds', () => {
    for (const ex of [
      'minimal.yaml',
      'amneziawg-split.yaml',
      'multi-tunnel-socks-killswitch.yaml',
    ]) {
      const d = realiseDarwin(desiredFrom(ex, {}), FACTS);
      expect(d.resources.filter((r) => ['rule', 'sysctl', 'cgroup'].includes(r.kind))).toEqual([]);
    }
  });
});
