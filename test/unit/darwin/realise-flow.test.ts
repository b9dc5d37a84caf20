/**
 * realiseDarwinFlow: the macOS realisation when the daemon hosts the flow router. Pure; the
 * rendered anchor is compared with pf-render's own output (its text is golden-tested in
 * pf-flow.test.ts). Never loaded into a real PF.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import type { Config, Rule } from '../../../src/config/schema.js';
import { buildDesired } from '../../../src/model/desired.js';
import type { RouteSpec } from '../../../src/model/resources.js';
import { realiseDarwin } from '../../../src/resources/platform/darwin.js';
import {
  DESTINATION_RULES_WARNING,
  DROPPED_PER_APP_WARNING,
  flowRouterPort,
  realiseDarwinFlow,
} from '../../../src/resources/platform/darwin-flow.js';

function load(example: string): Config {
  const file = fileURLToPath(new URL(`../../../examples/${example}`, import.meta.url));
  const r = loadConfigText(readFileSync(file, 'utf8'), file);
  if (!r.config) throw new Error(`example ${example} did not load`);
  return r.config;
}

const RESOLVED = {
  'vpn.example.net': ['198.51.100.7'],
  'gw1.corp.example': ['203.0.113.20'],
  'se.vpn.example': ['198.51.100.44'],
  'proxy.corp.example': ['192.0.2.80'],
  'ams.vpn.example': ['198.51.100.10'],
  'fra.vpn.example': ['198.51.100.11'],
};
const FACTS = { defaultRouteV4: { gateway: '192.168.1.1', interface: 'en0' } };
const model = (c: Config) =>
  buildDesired(c, { facts: { cgroupNftPrefix: '', resolved: RESOLVED } });
const ruleset = (s: ReturnType<typeof realiseDarwin>) =>
  (s.resources.find((r) => r.kind === 'firewall')!.spec as { ruleset: string }).ruleset;
const withoutFirewall = (s: ReturnType<typeof realiseDarwin>) =>
  s.resources.filter((r) => r.kind !== 'firewall');
/** the interface-scoped routes: [scope, dst], sorted */
const scoped = (s: ReturnType<typeof realiseDarwin>) =>
  s.resources
    .filter((r) => r.kind === 'route' && (r.spec as RouteSpec).ifscope)
    .map((r) => [(r.spec as RouteSpec).ifscope, (r.spec as RouteSpec).dst])
    .sort((a, b) => `${a}`.localeCompare(`${b}`));

describe('realiseDarwinFlow', () => {
  it('realiseDarwin still drops per-app rules with the warning the router answers (its text pinned)', () => {
    const c = load('amneziawg-split.yaml');
    expect(realiseDarwin(model(c), FACTS).warnings).toContain(DROPPED_PER_APP_WARNING);
  });

  it('no enabled rule and a WireGuard default: exactly realiseDarwin (nothing is redirected)', () => {
    for (const ex of [
      'wireguard-full-tunnel.yaml',
      'amneziawg-split.yaml',
      'minimal.yaml',
      'multi-tunnel-socks-killswitch.yaml',
    ]) {
      const c = load(ex);
      const off = { ...c, rules: c.rules.map((r) => ({ ...r, enabled: false })) };
      expect(realiseDarwinFlow(model(off), FACTS, { port: 15200, rules: off.rules })).toEqual(
        realiseDarwin(model(off), FACTS),
      );
    }
  });

  it('split tunnel with rules: the same resources but the anchor, which redirects TCP and the UDP of user processes to the router', () => {
    const c = load('amneziawg-split.yaml');
    const d = model(c);
    const plain = realiseDarwin(d, FACTS);
    const got = realiseDarwinFlow(d, FACTS, { port: flowRouterPort(c.routing), rules: c.rules });
    expect(withoutFirewall(got)).toEqual(withoutFirewall(plain));
    const text = ruleset(got);
    expect(text.startsWith(ruleset(plain).split('\n')[0]!)).toBe(true);
    expect(text).toContain(
      `rdr pass on lo0 inet proto tcp from any to ! <awg_flow_skip> -> 127.0.0.1 port ${c.routing.proxyPortBase}`,
    );
    expect(text).toContain(
      'pass out quick on ! lo0 route-to lo0 inet proto tcp from any to ! <awg_flow_skip> user != 0 flags S/SA keep state',
    );
    expect(text).toContain(
      'pass out quick on ! lo0 route-to lo0 inet proto udp from any to ! <awg_flow_skip> user >= 501 no state',
    );
    expect(text).toContain(
      `nat on lo0 inet proto udp from any to ! <awg_flow_skip> -> 127.0.0.1 port 1024:65535`,
    );
    expect(text).toContain(
      `rdr pass on lo0 inet proto udp from any to ! <awg_flow_skip> -> 127.0.0.1 port ${c.routing.proxyPortBase}`,
    );
    // every line realiseDarwin had is still there, in the same order
    const lines = text.split('\n');
    let at = 0;
    for (const l of ruleset(plain).split('\n')) {
      at = lines.indexOf(l, at);
      expect(at, l).toBeGreaterThanOrEqual(0);
    }
    expect(got.warnings).not.toContain(DROPPED_PER_APP_WARNING);
    expect(
      got.warnings.some((w) =>
        w.startsWith('per-app routing on macOS: UDP is routed per app for user processes only'),
      ),
    ).toBe(true);
    // ams and fra are WireGuard tunnels but not the default (default: direct): their prefixes
    // are scoped to their utuns (realiseDarwin), where the router's bound dials find them
    expect(scoped(got)).toEqual([
      ['awg-ams', '0.0.0.0/0'],
      ['awg-fra', '0.0.0.0/0'],
    ]);
    expect(
      got.resources.filter((r) => r.kind === 'route' && !(r.spec as RouteSpec).ifscope),
    ).toEqual([]);
    expect(got.warnings.filter((w) => w.includes('scoped'))).toEqual([]);
  });

  it('rules that cannot block route user UDP through the router all the same; destination rules are warned about', () => {
    const c = load('amneziawg-split.yaml');
    const rules: Rule[] = [
      {
        name: 'tools',
        match: { path: '/usr/bin/*' },
        target: 'direct',
        fallback: 'block',
        enabled: true,
      } as Rule,
      {
        name: 'web',
        match: { name: 'firefox' },
        target: 'ams',
        fallback: 'allow-direct',
        enabled: true,
      } as Rule,
    ];
    const got = realiseDarwinFlow(model({ ...c, rules }), FACTS, { port: 15200, rules });
    expect(ruleset(got)).toContain('route-to lo0');
    expect(ruleset(got)).toContain(
      'route-to lo0 inet proto udp from any to ! <awg_flow_skip> user >= 501 no state',
    );
    expect(ruleset(got)).not.toContain('block drop out quick on ! lo0 proto udp');
    expect(got.warnings).not.toContain(DESTINATION_RULES_WARNING);
    // destination rules: warned (TCP only, domains by SNI/Host)
    const to = [{ ...rules[0]!, to: { cidrs: ['203.0.113.0/24'] } } as Rule];
    expect(
      realiseDarwinFlow(model({ ...c, rules: to }), FACTS, { port: 15200, rules: to }).warnings,
    ).toContain(DESTINATION_RULES_WARNING);
    // a rule that can block changes nothing in the anchor: the router blocks per flow
    const drop = [{ ...rules[0]!, fallback: 'drop' } as Rule];
    expect(
      ruleset(realiseDarwinFlow(model({ ...c, rules: drop }), FACTS, { port: 15200, rules: drop })),
    ).toBe(ruleset(got));
  });

  it('scoped routes for a WireGuard tunnel that is not the default; none for the default (its routes are unscoped) or a proxy (its dialer is the proxy)', () => {
    const c = load('multi-tunnel-socks-killswitch.yaml');
    const got = realiseDarwinFlow(model(c), FACTS, { port: 15200, rules: c.rules, routerUid: 0 });
    // stockholm is the default, socks/proxy are proxy tunnels: only office's prefixes (ipv6: tunnel)
    expect(scoped(got)).toEqual([
      ['awg-office', '10.100.0.0/16'],
      ['awg-office', '10.200.0.0/16'],
      ['awg-office', '172.20.0.0/16'],
      ['awg-office', 'fd20::/64'],
      ['awg-office', 'fd21::/64'],
    ]);
    for (const r of got.resources.filter(
      (x) => x.kind === 'route' && (x.spec as RouteSpec).ifscope,
    )) {
      expect(r.deps).toEqual(['link/awg-office']);
      expect(r.spec).toMatchObject({ dev: 'awg-office', type: 'unicast', metric: 0 });
      expect((r.spec as RouteSpec).table).not.toBe(254); // office's table: ids apart from main's
    }
    const text = ruleset(got);
    // kill switch: the redirect comes before the kill switch's final block, v6 too (ipv6: tunnel)
    const lines = text.trim().split('\n');
    expect(lines.at(-1)).toBe('block drop out quick all');
    expect(
      lines.indexOf(
        'pass out quick on ! lo0 route-to lo0 inet6 proto tcp from any to ! <awg_flow_skip> user != 0 flags S/SA keep state',
      ),
    ).toBeGreaterThan(0);
    expect(text).toContain(
      'rdr pass on lo0 inet6 proto tcp from any to ! <awg_flow_skip> -> ::1 port 15200',
    );
  });

  it('a proxy tunnel as the default: the router carries its TCP even without rules; the warning says its UDP is dropped', () => {
    const c = load('multi-tunnel-socks-killswitch.yaml');
    const pc = { ...c, rules: [], default: 'socks' };
    const plain = realiseDarwin(model(pc), FACTS);
    const got = realiseDarwinFlow(model(pc), FACTS, { port: 15200, rules: [] });
    expect(plain.warnings.some((w) => w.includes('need the macOS flow router'))).toBe(true);
    expect(got.warnings.some((w) => w.includes('need the macOS flow router'))).toBe(false);
    expect(got.warnings).toContain(
      'tunnel socks: as the default route it carries TCP only (through the flow router); the UDP of user processes no rule sends elsewhere is dropped',
    );
    expect(ruleset(got)).toContain('route-to lo0');
  });

  it("the host's own addresses are skipped (a connection to them crosses lo0, where rdr has no user match); loopback, link-local and zones dropped", () => {
    const c = load('amneziawg-split.yaml');
    const local = [
      '192.168.1.23',
      '127.0.0.1',
      '::1',
      'fe80::1c2b:3dff:fe4e:5f60%en0',
      '169.254.10.2',
      '2001:db8:5::23',
      '10.70.3.9',
      'utun3',
    ];
    const got = ruleset(
      realiseDarwinFlow(model(c), FACTS, { port: 15200, rules: c.rules, localAddresses: local }),
    );
    const table = got.split('\n').find((l) => l.startsWith('table <awg_flow_skip>'))!;
    for (const a of ['192.168.1.23', '2001:db8:5::23', '10.70.3.9'])
      expect(table).toContain(` ${a} `);
    for (const a of ['fe80::1c2b', '169.254.10.2', 'utun3', ' 127.0.0.1 '])
      expect(table).not.toContain(a);
    const without = ruleset(realiseDarwinFlow(model(c), FACTS, { port: 15200, rules: c.rules }));
    expect(got.split('\n').filter((l) => !l.startsWith('table '))).toEqual(
      without.split('\n').filter((l) => !l.startsWith('table ')),
    );
  });

  it('the router port is proxyPortBase, which no proxy tunnel listener uses', () => {
    const c = load('multi-tunnel-socks-killswitch.yaml');
    const d = model(c);
    const ports = d
      .policy!.tunnels.flatMap((t) => [t.redirectPort, t.redirectPortDirect])
      .filter((p) => p !== undefined);
    expect(ports.length).toBeGreaterThan(0);
    expect(ports).not.toContain(flowRouterPort(c.routing));
  });
});

describe('limits on macOS: the Linux shapers become dummynet', () => {
  it('the ifbs are dropped, no shaper names a Linux device, no skb priority in the anchor', () => {
    const c = load('limits.yaml');
    const facts = { ...FACTS, cgroupNftPrefix: '', resolved: RESOLVED };
    const m = buildDesired(c, { facts });
    expect(m.resources.some((r) => r.kind === 'shaper')).toBe(true);
    for (const s of [
      realiseDarwin(m, facts),
      realiseDarwinFlow(m, facts, { port: flowRouterPort(c.routing), rules: c.rules }),
    ]) {
      const shapers = s.resources.filter((r) => r.kind === 'shaper');
      for (const r of shapers) expect(r.id).toMatch(/^shaper\/dummynet\//);
      expect(s.resources.filter((r) => r.kind === 'link' && r.spec.kind === 'ifb')).toEqual([]);
      expect(ruleset(s)).not.toContain('priority');
    }
  });
});
