/**
 * Hosts without a default route (model/unrouted.ts): the first route of unmarked local
 * packets (a TUN no engine holds, its route in the band's last table, two rules, a rule per
 * proxy tunnel), the firewall's no-route reject, and what status and plans say of the host.
 * A host with a default route plans exactly as before.
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { loadConfigText } from '../../../src/config/load.js';
import { buildDesired, DEFAULT_FACTS, type HostFacts } from '../../../src/model/desired.js';
import { ids } from '../../../src/model/identity.js';
import type { AnyResource, RuleSpec } from '../../../src/model/resources.js';
import { configConditions, hostConditions, UNROUTED_LINK } from '../../../src/model/unrouted.js';
import { linuxDesired } from '../../helpers/desired.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const wg = (allowed: string[], extra: Record<string, unknown> = {}) => ({
  type: 'wireguard',
  privateKey: KEY,
  addresses: ['10.9.0.2/32'],
  peers: [{ publicKey: KEY, endpoint: '192.168.50.1:51820', allowedIPs: allowed }],
  ...extra,
});
const config = (o: Record<string, unknown> = {}) =>
  Config.parse({
    version: 1,
    tunnels: { t1: wg(['0.0.0.0/0', '::/0']) },
    rules: [{ name: 'web', match: { name: 'curl' }, target: 't1' }],
    ...o,
  });
const LAN = '192.168.50.0/24';
const unrouted4: HostFacts = { ...DEFAULT_FACTS, unrouted: { v4: { reach: [LAN] } } };

const ours = (rs: AnyResource[]) =>
  rs.filter(
    (r) =>
      (r.kind === 'link' && r.spec.name === UNROUTED_LINK) ||
      (r.kind === 'route' && r.spec.dev === UNROUTED_LINK) ||
      (r.kind === 'rule' && r.spec.iif === 'lo'),
  );

describe('the first route of a host without a default route', () => {
  it('a host with a default route plans nothing more (and says nothing)', () => {
    const m = buildDesired(config(), { facts: DEFAULT_FACTS });
    expect(ours(m.resources)).toEqual([]);
    expect(m.policy?.unrouted).toBeUndefined();
    expect(m.warnings).toEqual([]);
  });

  it('IPv4 without one: the TUN, its default route in the last table, the rules at 5298 (main) and 5299 (ours), the reject', () => {
    const m = buildDesired(config(), { facts: unrouted4 });
    const rule = (priority: number, table: number): RuleSpec => ({
      family: 4,
      priority,
      iif: 'lo',
      fwmark: 0,
      fwmask: 0x0f000000,
      table,
      action: 'lookup',
      protocol: 167,
    });
    expect(ours(m.resources)).toEqual([
      {
        kind: 'link',
        id: ids.link(UNROUTED_LINK),
        deps: [],
        spec: { name: UNROUTED_LINK, kind: 'tun', mtu: 1420, up: true },
      },
      {
        kind: 'route',
        id: 'route/v4/table-52099/0.0.0.0/0/metric-0',
        deps: [ids.link(UNROUTED_LINK)],
        spec: {
          family: 4,
          table: 52099,
          dst: '0.0.0.0/0',
          type: 'unicast',
          dev: UNROUTED_LINK,
          metric: 0,
          protocol: 167,
        },
      },
      { kind: 'rule', id: 'rule/v4/pref-5298', deps: [], spec: rule(5298, 254) },
      { kind: 'rule', id: 'rule/v4/pref-5299', deps: [], spec: rule(5299, 52099) },
    ]);
    expect(m.policy?.unrouted).toEqual({ link: UNROUTED_LINK });
    expect(m.warnings).toEqual([
      `no IPv4 default route in the main table: rules and default with target direct reach only ${LAN}; tunnelled traffic takes its first route from ${UNROUTED_LINK}`,
    ]);
    const fw = linuxDesired(config(), { facts: unrouted4 }).resources.find(
      (r) => r.kind === 'firewall',
    );
    expect(fw?.kind === 'firewall' && fw.spec.ruleset).toContain(
      `meta mark & 0x0f000000 == 0x00000000 oifname "${UNROUTED_LINK}" counter reject with icmpx no-route comment "no-route"`,
    );
  });

  it('IPv6 gets its own only with ipv6: tunnel; its route at the metric the kernel reports', () => {
    const facts: HostFacts = {
      ...DEFAULT_FACTS,
      unrouted: { v4: { reach: [LAN] }, v6: { reach: ['fd50::/64'] } },
    };
    const v6 = (c: Config) =>
      ours(buildDesired(c, { facts }).resources).filter(
        (r) => (r.kind === 'route' || r.kind === 'rule') && r.spec.family === 6,
      );
    expect(v6(config())).toEqual([]);
    expect(v6(config({ ipv6: 'tunnel' })).map((r) => r.id)).toEqual([
      'route/v6/table-52099/::/0/metric-1024',
      'rule/v6/pref-5298',
      'rule/v6/pref-5299',
    ]);
    // IPv6 not tunnelled: its lack of a default route is the host's business, not reported
    expect(buildDesired(config(), { facts }).warnings).toHaveLength(1);
  });

  it("the TUN's MTU is the tunnels' smallest (TCP's first segments fit), never below 1280", () => {
    const two = (a: number, b: number) =>
      config({
        tunnels: { t1: wg(['0.0.0.0/0'], { mtu: a }), t2: wg(['10.1.0.0/16'], { mtu: b }) },
      });
    const mtu = (c: Config) =>
      ours(buildDesired(c, { facts: unrouted4 }).resources).find((r) => r.kind === 'link')?.spec;
    expect(mtu(two(1400, 1380))).toMatchObject({ mtu: 1380 });
    expect(mtu(two(1400, 1200))).toMatchObject({ mtu: 1280 });
  });

  it("a proxy tunnel's marked packets take the first route too, by a rule at its slot", () => {
    const c = config({
      tunnels: { p: { type: 'socks5', server: '192.168.50.9', port: 1080 } },
      rules: [{ name: 'web', match: { name: 'curl' }, target: 'p' }],
    });
    const m = buildDesired(c, { facts: unrouted4 });
    const a = m.allocation.tunnels.get('p')!;
    expect(
      ours(m.resources)
        .filter((r) => r.kind === 'rule')
        .map((r) => r.spec),
    ).toContainEqual({
      family: 4,
      priority: a.priority,
      iif: 'lo',
      fwmark: a.fwmark,
      fwmask: 0x0f000000,
      table: 52099,
      action: 'lookup',
      protocol: 167,
    });
    // the proxy's TUN-less tunnel: the first route's TUN still gets a plain MTU
    expect(ours(m.resources).find((r) => r.kind === 'link')?.spec).toMatchObject({ mtu: 1500 });
  });

  it('no tunnels: nothing, whatever the host', () => {
    const m = buildDesired(Config.parse({ version: 1, tunnels: {} }), { facts: unrouted4 });
    expect(ours(m.resources)).toEqual([]);
    expect(m.warnings).toEqual([]);
  });

  it("main's default route is an error route: no first route (lookups end at awg's first rule), the reason instead", () => {
    const facts: HostFacts = {
      ...DEFAULT_FACTS,
      unrouted: { v4: { reach: [LAN], mainDefault: 'unreachable' } },
    };
    const m = buildDesired(config(), { facts });
    expect(ours(m.resources)).toEqual([]);
    expect(m.policy?.unrouted).toBeUndefined();
    expect(m.warnings).toEqual([
      "the main table's IPv4 default route is unreachable: route lookups end there with an error before awg's tunnel rules, so traffic beyond the main table's other routes reaches no tunnel (replace it with a unicast route, or remove it)",
    ]);
  });

  it("the routing band is the config's: another tableBase and rulePriority move both", () => {
    const c = config({ routing: { tableBase: 60000, rulePriority: 7000 } });
    expect(
      ours(buildDesired(c, { facts: unrouted4 }).resources)
        .filter((r) => r.kind !== 'link')
        .map((r) => r.id),
    ).toEqual([
      'route/v4/table-60099/0.0.0.0/0/metric-0',
      'rule/v4/pref-7098',
      'rule/v4/pref-7099',
    ]);
  });

  it("a tunnel's own table may not be the band's last", () => {
    const r = loadConfigText(
      `version: 1
tunnels:
  t1:
    type: wireguard
    privateKey: "${KEY}"
    addresses: [10.9.0.2/32]
    table: 52099
    peers:
      - publicKey: "${KEY}"
        allowedIPs: [0.0.0.0/0]
`,
      'c.yaml',
    );
    expect(r.issues).toContainEqual(
      expect.objectContaining({
        path: 'tunnels.t1.table',
        severity: 'error',
        message: expect.stringContaining('awg keeps for hosts without a default route'),
      }),
    );
  });
});

describe('host conditions', () => {
  it("an endpoint without a route names its tunnel, its host and the kernel's answer", () => {
    const facts = {
      unrouted: { v4: { reach: [] } },
      unreachableEndpoints: [
        {
          tunnel: 't1',
          host: 'vpn.example',
          address: '10.0.0.9',
          reason: 'Network is unreachable',
        },
        { tunnel: 't2', host: '10.0.0.8', address: '10.0.0.8', reason: 'No route to host' },
      ],
    };
    expect(hostConditions(facts, [4], [4])).toEqual([
      {
        kind: 'no-default-route',
        family: 4,
        reach: [],
        message: `no IPv4 default route in the main table: rules and default with target direct reach no destination outside this host; tunnelled traffic takes its first route from ${UNROUTED_LINK}`,
      },
      {
        kind: 'endpoint-unreachable',
        tunnel: 't1',
        address: '10.0.0.9',
        message:
          "tunnel t1: endpoint vpn.example (10.0.0.9) unreachable: no route (Network is unreachable); its engine's packets cannot leave this host",
      },
      {
        kind: 'endpoint-unreachable',
        tunnel: 't2',
        address: '10.0.0.8',
        message:
          "tunnel t2: endpoint 10.0.0.8 unreachable: no route (No route to host); its engine's packets cannot leave this host",
      },
    ]);
  });

  it('a long list of prefixes is cut after eight', () => {
    const reach = Array.from({ length: 11 }, (_, i) => `10.${i}.0.0/16`);
    const [c] = configConditions(config(), { unrouted: { v4: { reach } } });
    expect(c?.message).toContain(`reach only ${reach.slice(0, 8).join(', ')} and 3 more;`);
    expect(c?.reach).toEqual(reach);
  });
});
