/**
 * Limits realised for macOS (resources/platform/darwin-shaping.ts through realiseDarwin and
 * realiseDarwinFlow): the model's Linux shapers and ifb links become two dummynet shaper
 * resources and the anchor's dummynet rules. Pure.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { buildDesired, type RuntimeLimit } from '../../../src/model/desired.js';
import type { FirewallSpec, ShaperSpec } from '../../../src/model/resources.js';
import {
  NO_ROUTER_LIMITS_WARNING,
  flowRouterPort,
  realiseDarwinFlow,
} from '../../../src/resources/platform/darwin-flow.js';
import { DARWIN_LIMITS_WARNING } from '../../../src/resources/platform/darwin-shaping.js';
import { realiseDarwin } from '../../../src/resources/platform/darwin.js';
import { wgKeyPair } from '../../helpers/awg.js';

const me = wgKeyPair();
const peer = wgKeyPair();

function config(extra: { tunnelLimit?: string; rules?: string } = {}): Config {
  const text = `version: 1
tunnels:
  home:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.66.0.2/32]
${extra.tunnelLimit ? `    limit: ${extra.tunnelLimit}\n` : ''}    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 198.51.100.7:51820
        allowedIPs: [0.0.0.0/0]
  work:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.77.0.2/32]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 198.51.100.8:51820
        allowedIPs: [10.77.0.0/16]
default: home
${extra.rules ?? ''}`;
  const r = loadConfigText(text, 'awg.yaml');
  if (!r.config) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

const FACTS = {
  cgroupNftPrefix: '',
  defaultRouteV4: { gateway: '192.168.1.1', interface: 'en0' },
};
const RULES = `rules:
  - name: backup
    match: { name: restic }
    target: direct
    limit: { upload: 20Mbit, download: 100Mbit }
  - name: huge
    match: { name: rsync }
    target: work
    limit: { upload: 5Gbit }
`;

const realise = (c: Config, runtimeLimits?: RuntimeLimit[]) =>
  realiseDarwinFlow(
    buildDesired(c, { facts: FACTS, ...(runtimeLimits ? { runtimeLimits } : {}) }),
    FACTS,
    { port: flowRouterPort(c.routing), rules: c.rules },
  );

describe('limits realised for macOS', () => {
  it('two dummynet shapers (classes by their macOS ports, the tunnel’s own limit in slot 33+); no ifb, no per-device shaper; the anchor depends on them', () => {
    const c = config({ tunnelLimit: '{ upload: 50Mbit, download: 80Mbit }', rules: RULES });
    const model = buildDesired(c, { facts: FACTS });
    // what Linux gets: shapers per device and direction, ifbs
    expect(model.resources.filter((r) => r.kind === 'shaper').length).toBeGreaterThan(2);
    expect(model.resources.some((r) => r.kind === 'link' && r.spec.kind === 'ifb')).toBe(true);
    const s = realise(c);
    expect(s.resources.some((r) => r.kind === 'link' && r.spec.kind === 'ifb')).toBe(false);
    const shapers = s.resources.filter((r) => r.kind === 'shaper');
    expect(shapers.map((r) => [r.id, (r.spec as ShaperSpec).classes])).toEqual([
      [
        'shaper/dummynet/egress',
        [
          { n: 1, name: 'rule/backup', rate: 20_000_000, ports: [45056, 45183] },
          { n: 2, name: 'rule/huge', rate: 2_147_483_647, ports: [45184, 45311] },
          { n: 33, name: 'tunnel/home', rate: 50_000_000, ports: [0, 0] },
        ],
      ],
      [
        'shaper/dummynet/ingress',
        [
          { n: 1, name: 'rule/backup', rate: 100_000_000, ports: [45056, 45183] },
          { n: 33, name: 'tunnel/home', rate: 80_000_000, ports: [0, 0] },
        ],
      ],
    ]);
    const fw = s.resources.find((r) => r.kind === 'firewall')!;
    expect(fw.deps).toEqual(
      expect.arrayContaining(['shaper/dummynet/egress', 'shaper/dummynet/ingress']),
    );
    const rules = (fw.spec as FirewallSpec).ruleset.split('\n').filter((l) => /dummynet/.test(l));
    expect(rules).toEqual([
      'no dummynet quick on lo0 all',
      'dummynet out quick proto tcp from any port 45056:45183 to any pipe 45056',
      'dummynet in quick proto tcp from any to any port 45056:45183 pipe 45057',
      'dummynet out quick proto tcp from any port 45184:45311 to any pipe 45058',
      'dummynet out quick on $awg_home all pipe 45120',
      'dummynet in quick on $awg_home all pipe 45121',
    ]);
    // the router's rules are there too, and the boot copy has none of the dummynet rules
    expect((fw.spec as FirewallSpec).ruleset).toMatch(/^rdr pass on lo0/m);
    expect(s.warnings).toContain(DARWIN_LIMITS_WARNING);
    expect(
      s.warnings.some((w) => /rule\/huge upload: 5000000000 bit\/s is more than dummynet/.test(w)),
    ).toBe(true);
  });

  it('without a flow router (no rule), realiseDarwin alone: the tunnel’s limit still applies on its utun', () => {
    const c = config({ tunnelLimit: '{ upload: 50Mbit }' });
    const s = realiseDarwin(buildDesired(c, { facts: FACTS }), FACTS);
    expect(s.resources.filter((r) => r.kind === 'shaper').map((r) => r.id)).toEqual([
      'shaper/dummynet/egress',
    ]);
    expect(
      (s.resources.find((r) => r.kind === 'firewall')!.spec as FirewallSpec).ruleset,
    ).toContain('dummynet out quick on $awg_home all pipe 45120');
    expect(s.warnings).not.toContain(DARWIN_LIMITS_WARNING);
  });

  it('a process limited at run time under a config without rules: its pipe is made, and the plan says nothing routes its flows into it', () => {
    const c = config();
    const s = realise(c, [{ pid: 4242, group: 'awg/_limit-4242', download: 1_000_000 }]);
    expect(
      (s.resources.find((r) => r.id === 'shaper/dummynet/ingress')!.spec as ShaperSpec).classes,
    ).toEqual([{ n: 1, name: 'pid/4242', rate: 1_000_000, ports: [45056, 45183] }]);
    expect(s.warnings).toContain(NO_ROUTER_LIMITS_WARNING);
  });

  it('no limit: no shaper, no dummynet rule', () => {
    const s = realise(config());
    expect(s.resources.some((r) => r.kind === 'shaper')).toBe(false);
    expect(
      (s.resources.find((r) => r.kind === 'firewall')!.spec as FirewallSpec).ruleset,
    ).not.toMatch(/dummynet/);
  });
});
