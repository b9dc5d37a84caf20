/**
 * The routing reader (resources/route/probe-netlink.ts) on replies captured from a kernel
 * (test/fixtures/linux/route/netlink/, scripts/capture-route-fixtures.ts: Linux 6.18, a
 * namespace with policy rules and tables, awg's band, error routes, multipath, both
 * families), replayed through a socket double: its rows are what `ip -j -N` printed of the
 * same namespace at the same moment, and the facts and observations read from them are those
 * read from that JSON.
 */
import { describe, expect, it } from 'vitest';
import { fx, replaying } from './netlink-replay.js';
import {
  defaultRouteOf,
  numberOrName,
  parseRouteJson,
  parseRouteRows,
  type IpRouteJson,
} from '../../../../src/resources/route/parse.js';
import { unroutedOf, unroutedOfRows } from '../../../../src/resources/route/reach.js';
import { parseRuleJson, parseRuleRows } from '../../../../src/resources/rule/parse.js';
import { netlinkDefaultRoutes, netlinkRouting } from '../../../../src/resources/facts.js';

const json = (f: string): IpRouteJson[] & Record<string, unknown>[] => {
  const t = fx(f).trim();
  return t ? JSON.parse(t) : [];
};
const TABLES = { main: 254, local: 255, default: 253, unspec: 0 };
/** the fields awg reads; a missing table is main (`ip` leaves it out of one table's listing) */
const view = (r: IpRouteJson & { priority?: number; action?: string }) => ({
  type: r.type,
  dst: r.dst,
  dev: r.dev,
  table: numberOrName(r.table, TABLES, 254),
  gateway: r.gateway,
  via: r.via?.host,
  metric: r.metric,
  protocol: r.protocol,
});
const band = { tableBase: 52000, rulePriority: 5200, bandSize: 100 };
const inBand = (t: number) => t >= 52000 && t < 52100;

describe.each([4, 6] as const)('IPv%i: captured replies → the rows `ip -j -N` printed', (f) => {
  it('every table’s default routes, main’s routes and its default routes', () => {
    const { reader } = replaying();
    expect(reader.defaultsJson(f).map(view)).toEqual(json(`v${f}-defaults.json`).map(view));
    expect(reader.mainJson(f).map(view)).toEqual(json(`v${f}-main.json`).map(view));
    expect(reader.mainDefaultsJson(f).map(view)).toEqual(json(`v${f}-main-default.json`).map(view));
  });

  it('the rules: priority, table and action as printed', () => {
    const { reader } = replaying();
    const rule = (r: { priority?: number; table?: string; action?: string }) => ({
      priority: r.priority,
      table: r.table,
      action: r.action,
    });
    expect(reader.rulesJson(f).map(rule)).toEqual(json(`v${f}-rules.json`).map(rule));
    // the rule driver's rows: every key, in iproute2's order, with its values
    expect(JSON.stringify(reader.ruleRowsJson(f))).toBe(JSON.stringify(json(`v${f}-rules.json`)));
    const ruleBand = { protocol: 167, rulePriority: 5200, bandSize: 100 };
    expect(parseRuleRows(reader.ruleRowsJson(f), f, ruleBand)).toEqual(
      parseRuleJson(fx(`v${f}-rules.json`), f, ruleBand),
    );
  });

  it("awg's band: the rows and the route driver's parse of them", () => {
    const { reader } = replaying();
    const all = json(`v${f}-all.json`);
    const banded = reader.tableRoutesJson(f, inBand);
    expect(banded.length).toBeGreaterThan(0);
    expect(banded.map(view)).toEqual(
      all.filter((r) => inBand(numberOrName(r.table, TABLES, 254))).map(view),
    );
    const routeBand = { protocol: 167, tableBase: 52000, bandSize: 100 };
    expect(parseRouteRows(banded, f, routeBand)).toEqual(
      parseRouteJson(fx(`v${f}-all.json`), f, routeBand),
    );
  });

  it('the facts read from the rows are those read from the JSON', () => {
    const { reader } = replaying();
    const rows = {
      defaults: reader.defaultsJson(f),
      rules: reader.rulesJson(f),
      main: reader.mainJson(f),
    };
    const fromJson = unroutedOf(
      {
        defaults: fx(`v${f}-defaults.json`),
        rules: fx(`v${f}-rules.json`),
        main: fx(`v${f}-main.json`),
      },
      f,
      band,
      'awg-',
    );
    expect(unroutedOfRows(rows, f, band, 'awg-')).toEqual(fromJson);
    expect(netlinkDefaultRoutes(reader)[`defaultRouteV${f}`]).toEqual(
      defaultRouteOf(fx(`v${f}-main-default.json`), 'awg-'),
    );
  });
});

describe('the captured namespace', () => {
  it("both families routed: IPv4 by table 200's default behind a source-specific rule (main's is unreachable), IPv6 by main's (the lower metric is the uplink)", () => {
    const { reader, asked } = replaying();
    const facts = netlinkRouting(reader, { band, families: [4, 6], bypassMark: 0, endpoints: [] });
    expect(facts).toEqual({});
    expect(netlinkDefaultRoutes(reader)).toEqual({
      defaultRouteV6: { gateway: 'fd00:200::3', interface: 'd0' },
    });
    // one route dump per family for both questions, one link dump, one rule dump per family
    expect(asked.sort()).toEqual(['links', 'v4-routes', 'v4-rules', 'v6-routes', 'v6-rules']);
  });
});

describe('a dump the kernel interrupts', () => {
  it('is read again, the links as the routes and rules: the rows are those of the consistent reads', () => {
    const { reader, asked } = replaying(['links', 'v4-routes', 'v4-rules']);
    const { reader: calm } = replaying();
    expect(reader.defaultsJson(4)).toEqual(calm.defaultsJson(4));
    expect(reader.rulesJson(4)).toEqual(calm.rulesJson(4));
    expect(asked.sort()).toEqual([
      'links',
      'links',
      'v4-routes',
      'v4-routes',
      'v4-rules',
      'v4-rules',
    ]);
  });
});
