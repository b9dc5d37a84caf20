/**
 * The routing probe read in-process over rtnetlink (resources/route/probe-netlink.ts) against
 * the `ip` processes it replaces (resources/facts.ts `ipRouting`, `ipDefaultRoutes`), on the
 * real kernel: in a namespace per topology, both paths give the same RoutingFacts and default
 * routes, and each listing the probe reads (`route show table all exact 0/0`, `route show
 * table main`, `… main default`, `rule show`, per family) holds the same rows as `ip -j -N`
 * prints them, and the route driver's observation of awg's band (route/linux.ts) parses the
 * same routes. Fixed topologies (no default route, an IPv4 or IPv6 one only, policy rules
 * and tables, awg's band, error routes, multipath, metrics, links of awg's prefix), then
 * random ones (fast-check): routes of every type in several tables and rules of every kind,
 * both families.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ipDefaultRoutes,
  ipRouting,
  netlinkDefaultRoutes,
  netlinkRouting,
  type RoutingProbe,
} from '../../src/resources/facts.js';
import { RoutingReader } from '../../src/resources/route/probe-netlink.js';
import { numberOrName, parseRouteJson, parseRouteRows } from '../../src/resources/route/parse.js';
import { parseRuleJson, parseRuleRows } from '../../src/resources/rule/parse.js';
import { NsExec } from '../helpers/exec.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['sysctl']);

const band = { tableBase: 52000, rulePriority: 5200, bandSize: 100 };
const MARK = 0x0f000000;
const probe: RoutingProbe = {
  band,
  families: [4, 6],
  bypassMark: MARK,
  endpoints: [
    { tunnel: 'lan', host: '10.200.50.1', address: '10.200.50.1' },
    { tunnel: 'far', host: 'vpn.example', address: '10.200.72.9' },
    { tunnel: 'lan6', host: 'fd00:200::1', address: 'fd00:200::1' },
    { tunnel: 'far6', host: '2001:db8:9::9', address: '2001:db8:9::9' },
  ],
};

/**
 * a link `d0` (the LAN: 10.200.50.2/24, fd00:200::2/120) and `awg-t0` (awg's prefix), each a
 * veth whose peer is in the same namespace (carrier up; not every kernel has `dummy`)
 */
const BASE4 = [
  'link add d0 type veth peer name d0p',
  'link set d0p up',
  'link set d0 up',
  'addr add 10.200.50.2/24 dev d0',
  'link add awg-t0 type veth peer name awg-t0p',
  'link set awg-t0p up',
  'link set awg-t0 up',
  'addr add 10.200.51.2/24 dev awg-t0',
];
const BASE6 = [
  'addr add fd00:200::2/120 dev d0 nodad',
  'addr add fd00:200::102/120 dev awg-t0 nodad',
];

async function batch(ns: string, family: 4 | 6, lines: readonly string[], force = false) {
  if (!lines.length) return;
  await nsExec(ns, 'ip', [`-${family}`, ...(force ? ['-force'] : []), '-batch', '-'], {
    input: `${lines.join('\n')}\n`,
    allowFail: force,
  });
}

async function topology(v4: readonly string[], v6: readonly string[], force = false) {
  const ns = await createNetns('rprobe');
  try {
    // no link-local addresses: their routes would come a moment after the links (linkwatch)
    // and could land between the two paths' reads
    await nsExec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.default.addr_gen_mode=1']);
    await batch(ns, 4, BASE4);
    await batch(ns, 6, BASE6);
    await batch(ns, 4, v4, force);
    await batch(ns, 6, v6, force);
    return ns;
  } catch (e) {
    await destroyNetns(ns);
    throw e;
  }
}

const TABLES = { main: 254, local: 255, default: 253, unspec: 0 };
interface Row {
  type?: string;
  dst?: string;
  dev?: string;
  table?: string;
  gateway?: string;
  via?: { host?: string };
  metric?: number;
  protocol?: string;
  priority?: number;
  action?: string;
}
/** what awg reads of a row; a missing table is main (`ip` leaves it out of one table's listing) */
const routeView = (r: Row) => ({
  type: r.type,
  dst: r.dst,
  dev: r.dev,
  table: numberOrName(r.table, TABLES, 254),
  gateway: r.gateway,
  via: r.via?.host,
  metric: r.metric,
  protocol: r.protocol,
});
const ruleView = (r: Row) => ({ priority: r.priority, table: r.table, action: r.action });
const inBand = (t: number) => t >= band.tableBase && t < band.tableBase + band.bandSize;
const routeBand = { protocol: 167, ...band };

async function ipJson(exec: NsExec, args: string[]): Promise<Row[]> {
  const t = (await exec.read('ip', args)).stdout.trim();
  return t ? (JSON.parse(t) as Row[]) : [];
}

/** both paths in `ns`: the same facts, default routes and listings */
async function sameAnswers(ns: string, o: RoutingProbe = probe) {
  const exec = new NsExec(ns);
  const reader = RoutingReader.open(ns);
  try {
    const [viaIp, defaultsViaIp] = await Promise.all([ipRouting(exec, o), ipDefaultRoutes(exec)]);
    const viaNetlink = netlinkRouting(reader, o);
    expect(viaNetlink).toEqual(viaIp);
    expect(netlinkDefaultRoutes(reader)).toEqual(defaultsViaIp);
    for (const f of [4, 6] as const) {
      const exact = f === 4 ? '0/0' : '::/0';
      const show = ['-j', '-N', `-${f}`];
      expect(reader.defaultsJson(f).map(routeView)).toEqual(
        (await ipJson(exec, [...show, 'route', 'show', 'table', 'all', 'exact', exact])).map(
          routeView,
        ),
      );
      expect(reader.mainJson(f).map(routeView)).toEqual(
        (await ipJson(exec, [...show, 'route', 'show', 'table', 'main'])).map(routeView),
      );
      expect(reader.mainDefaultsJson(f).map(routeView)).toEqual(
        (await ipJson(exec, [...show, 'route', 'show', 'table', 'main', 'default'])).map(routeView),
      );
      expect(reader.rulesJson(f).map(ruleView)).toEqual(
        (await ipJson(exec, [...show, 'rule', 'show'])).map(ruleView),
      );
      // the rule driver's observation (rule/linux.ts): every key of every rule, in order
      const ipRules = await ipJson(exec, [...show, 'rule', 'show']);
      expect(JSON.stringify(reader.ruleRowsJson(f))).toBe(JSON.stringify(ipRules));
      expect(parseRuleRows(reader.ruleRowsJson(f), f, routeBand)).toEqual(
        parseRuleJson(JSON.stringify(ipRules), f, routeBand),
      );
      // the route driver's observation (route/linux.ts): the band's routes, owned and not
      const all = await ipJson(exec, [...show, 'route', 'show', 'table', 'all']);
      const banded = reader.tableRoutesJson(f, inBand);
      expect(banded.map(routeView)).toEqual(
        all.filter((r) => inBand(numberOrName(r.table, TABLES, 254))).map(routeView),
      );
      expect(parseRouteRows(banded, f, routeBand)).toEqual(
        parseRouteJson(JSON.stringify(all), f, routeBand),
      );
    }
    return { facts: viaNetlink, defaults: netlinkDefaultRoutes(reader) };
  } finally {
    reader.close();
  }
}

describe.skipIf(skip)('the routing probe over netlink = the `ip` processes', () => {
  beforeAll(async () => {
    await sweepStaleNetns();
  });
  const made: string[] = [];
  afterAll(async () => {
    for (const ns of made) await destroyNetns(ns);
  });
  const check = async (v4: string[], v6: string[], force = false) => {
    const ns = await topology(v4, v6, force);
    made.push(ns);
    try {
      return await sameAnswers(ns);
    } finally {
      made.splice(made.indexOf(ns), 1);
      await destroyNetns(ns);
    }
  };

  it('no default route in either family: both unrouted, the far endpoints unreachable', async () => {
    const { facts, defaults } = await check([], []);
    expect(facts.unrouted?.v4).toEqual({ reach: ['10.200.50.0/24'] });
    expect(facts.unrouted?.v6).toEqual({ reach: ['fd00:200::/120'] });
    expect(facts.unreachableEndpoints?.map((e) => [e.tunnel, e.reason])).toEqual([
      ['far', 'Network is unreachable'],
      ['far6', 'Network is unreachable'],
    ]);
    expect(defaults).toEqual({});
  });

  it('an IPv4 default route only; then an IPv6 one only (with two metrics)', async () => {
    const a = await check(['route add default via 10.200.50.1'], []);
    expect(a.facts.unrouted?.v4).toBeUndefined();
    expect(a.facts.unrouted?.v6).toBeDefined();
    expect(a.defaults).toEqual({ defaultRouteV4: { gateway: '10.200.50.1', interface: 'd0' } });
    const b = await check(
      [],
      [
        'route add default via fd00:200::1 metric 1024',
        'route add default via fd00:200::3 metric 100',
      ],
    );
    expect(b.facts.unrouted?.v6).toBeUndefined();
    expect(b.defaults).toEqual({ defaultRouteV6: { gateway: 'fd00:200::3', interface: 'd0' } });
  });

  it("policy rules: a default in a table a rule looks up routes; awg's band and a table no rule looks up do not; the bypass mark reaches awg's table", async () => {
    const { facts } = await check(
      [
        'route add default via 10.200.50.1 table 200',
        'rule add pref 1000 from 10.200.50.0/24 lookup 200',
        'route add default dev awg-t0 table 52099 proto 167',
        'rule add pref 5298 fwmark 0xf000000/0xf000000 lookup 52099',
        'route add throw 10.0.0.0/8 table 52001 proto 167',
        'route add 10.9.0.0/16 via 10.200.50.1 table 52001 proto static',
        'rule add pref 5250 lookup 52001',
      ],
      [
        'route add default via fd00:200::1 table 201',
        'route add default dev awg-t0 table 52099 proto 167 metric 10',
        'route add unreachable 2001:db8:7::/48 table 52001 proto 167',
        'rule add pref 5298 fwmark 0xf000000/0xf000000 lookup 52099',
      ],
    );
    expect(facts.unrouted?.v4).toBeUndefined();
    expect(facts.unrouted?.v6).toEqual({ reach: ['fd00:200::/120'] });
    // the mark's rule leads the far IPv6 endpoint to awg's table: the kernel has a route
    expect(facts.unreachableEndpoints).toBeUndefined();
  });

  it("error defaults: main's unreachable and prohibit are named; rules of other actions, a blackhole elsewhere", async () => {
    const { facts } = await check(
      [
        'route add unreachable default',
        'route add blackhole default table 100',
        'rule add pref 2000 unreachable',
        'rule add pref 2100 fwmark 0x1 lookup 300',
        'route add blackhole default table 300',
        'rule add pref 2200 goto 30000',
        'rule add pref 30000 lookup 400',
      ],
      ['route add prohibit default', 'rule add pref 2000 prohibit'],
    );
    expect(facts.unrouted?.v4).toEqual({ reach: ['10.200.50.0/24'], mainDefault: 'unreachable' });
    expect(facts.unrouted?.v6).toEqual({ reach: ['fd00:200::/120'], mainDefault: 'prohibit' });
    expect(facts.unreachableEndpoints?.length).toBe(4);
  });

  it("multipath, metrics, other types and awg's links in main", async () => {
    const { facts, defaults } = await check(
      [
        'route add 10.8.0.0/16 nexthop via 10.200.50.1 nexthop via 10.200.50.3',
        'route add 10.9.0.0/16 via 10.200.50.1 metric 50',
        'route add 10.77.0.0/16 dev awg-t0',
        'route add throw 10.50.0.0/16',
        'route add local 10.200.60.0/24 dev d0 table main',
        'route add 0.0.0.0/1 via 10.200.50.1',
        'route add default dev awg-t0 metric 5',
      ],
      [
        'route add 2001:db8:1::/48 via fd00:200::1',
        'route add 2001:db8:2::/48 nexthop via fd00:200::1 nexthop via fd00:200::3',
        'route add unreachable 2001:db8:3::/48',
      ],
    );
    // a default route on awg's own link routes (reach.ts), but is no uplink (parse.ts)
    expect(facts.unrouted?.v4).toBeUndefined();
    expect(defaults.defaultRouteV4).toBeUndefined();
    expect(facts.unrouted?.v6).toEqual({
      reach: ['2001:db8:1::/48', '2001:db8:2::/48', 'fd00:200::/120'],
    });
  });

  it('random topologies: routes of every type in several tables, rules of every kind', async () => {
    const v4dst = ['default', '10.8.0.0/16', '10.200.72.0/24', '0.0.0.0/1', '10.200.72.9'];
    const v6dst = ['default', '2001:db8:8::/48', '2001:db8:9::/64', '::/1', '2001:db8:9::9'];
    const route = fc.record({
      type: fc.constantFrom('', 'unreachable ', 'blackhole ', 'prohibit ', 'throw '),
      dst: fc.nat(v4dst.length - 1),
      table: fc.constantFrom(254, 200, 300, 52001, 52099),
      via: fc.constantFrom('gw', 'gw2', 'awg'),
      metric: fc.constantFrom(0, 10, 500),
      proto: fc.constantFrom('', ' proto 167', ' proto static'),
    });
    const rule = fc.record({
      pref: fc.constantFrom(1000, 2000, 5250, 5299, 30000),
      sel: fc.constantFrom(
        '',
        'fwmark 0xf000000/0xf000000 ',
        'fwmark 0x1 ',
        'iif lo ',
        'oif d0 ',
        'not from SRC ',
        'to DST ',
        'tos 0x10 ',
        'uidrange 100-200 ',
        'ipproto tcp dport 53 ',
        'ipproto udp sport 1000-2000 ',
        'iif lo fwmark 0/0xf000000 ',
      ),
      proto: fc.constantFrom('', 'protocol 167 ', 'protocol static '),
      action: fc.constantFrom(
        'lookup 200',
        'lookup 300',
        'lookup 52099',
        'lookup main',
        'unreachable',
        'blackhole',
        'goto 30000',
        'nop',
        'lookup main suppress_prefixlength 0',
      ),
    });
    const family = fc.record({
      routes: fc.array(route, { maxLength: 6 }),
      rules: fc.array(rule, { maxLength: 4 }),
    });
    type Family = typeof family extends fc.Arbitrary<infer T> ? T : never;
    const render = (f: 4 | 6, t: Family): string[] => [
      ...t.routes.map((r) => {
        const dst = (f === 4 ? v4dst : v6dst)[r.dst]!;
        const gw = {
          4: { gw: '10.200.50.1', gw2: '10.200.50.3' },
          6: { gw: 'fd00:200::1', gw2: 'fd00:200::3' },
        }[f];
        const next = r.type ? '' : r.via === 'awg' ? 'dev awg-t0 ' : `via ${gw[r.via as 'gw']} `;
        const metric = r.metric ? ` metric ${r.metric}` : '';
        return `route add ${r.type}${dst} ${next}table ${r.table}${metric}${r.proto}`;
      }),
      ...t.rules.map((r) => {
        const sel = r.sel
          .replace('SRC', f === 4 ? '10.200.50.0/24' : 'fd00:200::/120')
          .replace('DST', f === 4 ? '10.8.0.9' : '2001:db8:9::9');
        return `rule add pref ${r.pref} ${sel}${r.proto}${r.action}`;
      }),
    ];
    await fc.assert(
      fc.asyncProperty(family, family, async (t4, t6) => {
        // `-force`: a line the kernel refuses (a duplicate) is left out, the rest is made
        await check(render(4, t4), render(6, t6), true);
      }),
      { numRuns: 20 },
    );
  }, 240_000);
});
