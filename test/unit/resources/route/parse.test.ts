import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  canonicalCidr,
  defaultRouteOf,
  parseRouteJson,
} from '../../../../src/resources/route/parse.js';
import {
  batchScript,
  routeDelArgs,
  routeReplaceArgs,
} from '../../../../src/resources/route/render.js';

const fx = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/route/${f}`, import.meta.url), 'utf8');
const band = { protocol: 167, tableBase: 52000, bandSize: 100 };

describe('parseRouteJson (captured ip -j -N route show table all)', () => {
  it('keeps our protocol in the band, flags foreign routes in the band, ignores other tables', () => {
    const p = parseRouteJson(fx('v4-mixed.json'), 4, band);
    expect(p.owned).toEqual([
      {
        family: 4,
        table: 52000,
        dst: '0.0.0.0/0',
        type: 'unicast',
        via: '10.99.0.2',
        dev: 'v0',
        metric: 0,
        protocol: 167,
      },
      {
        family: 4,
        table: 52000,
        dst: '0.0.0.0/0',
        type: 'unreachable',
        metric: 4000,
        protocol: 167,
      },
      { family: 4, table: 52001, dst: '10.5.0.0/16', type: 'blackhole', metric: 10, protocol: 167 },
      {
        family: 4,
        table: 52001,
        dst: '10.6.0.1/32',
        type: 'unicast',
        dev: 'v0',
        metric: 0,
        protocol: 167,
      },
      { family: 4, table: 52001, dst: '10.8.0.0/16', type: 'throw', metric: 0, protocol: 167 },
    ]);
    expect(p.conflicts).toEqual([
      {
        family: 4,
        table: 52001,
        dst: '10.7.0.0/16',
        type: 'unicast',
        dev: 'v0',
        metric: 0,
        protocol: 4,
      },
    ]);
  });

  it('parses the name form (without -N) to the same specs', () => {
    expect(parseRouteJson(fx('v4-mixed-names.json'), 4, band)).toEqual(
      parseRouteJson(fx('v4-mixed.json'), 4, band),
    );
  });

  it('drops the kernel-reported dev lo of v6 unreachable/blackhole routes', () => {
    const p = parseRouteJson(fx('v6-mixed.json'), 6, band);
    expect(p.conflicts).toEqual([]);
    expect(p.owned).toContainEqual({
      family: 6,
      table: 52000,
      dst: '::/0',
      type: 'unreachable',
      metric: 4000,
      protocol: 167,
    });
    expect(p.owned).toContainEqual({
      family: 6,
      table: 52000,
      dst: 'fd10::/64',
      type: 'blackhole',
      metric: 1024,
      protocol: 167,
    });
    expect(p.owned).toContainEqual({
      family: 6,
      table: 52000,
      dst: 'fd11::1/128',
      type: 'unicast',
      dev: 'v0',
      metric: 5,
      protocol: 167,
    });
    expect(p.owned).toContainEqual({
      family: 6,
      table: 52000,
      dst: '::/0',
      type: 'unicast',
      via: 'fd99::2',
      dev: 'v0',
      metric: 1,
      protocol: 167,
    });
    expect(p.owned).toHaveLength(4);
  });

  it('band edges: tableBase+bandSize is outside', () => {
    const json = JSON.stringify([
      { dst: '10.0.0.0/8', dev: 'x', table: '52099', protocol: '167' },
      { dst: '10.0.0.0/8', dev: 'x', table: '52100', protocol: '167' },
      { dst: '10.0.0.0/8', dev: 'x', table: '51999', protocol: '1' },
    ]);
    const p = parseRouteJson(json, 4, band);
    expect(p.owned.map((r) => r.table)).toEqual([52099]);
    expect(p.conflicts).toEqual([]);
  });

  it('empty output', () => {
    expect(parseRouteJson('\n', 4, band)).toEqual({ owned: [], conflicts: [] });
  });

  it('canonicalCidr', () => {
    expect(canonicalCidr('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(canonicalCidr('FD00:0:0::1')).toBe('fd00::1/128');
    expect(() => canonicalCidr('10.0.0.0/33')).toThrow();
  });
});

describe('route render', () => {
  it('replace and del commands carry the protocol', () => {
    expect(
      routeReplaceArgs({
        family: 4,
        table: 52000,
        dst: '0.0.0.0/0',
        type: 'unicast',
        dev: 'awg-a',
        metric: 0,
        protocol: 167,
      }).join(' '),
    ).toBe('route replace 0.0.0.0/0 dev awg-a table 52000 metric 0 proto 167');
    expect(
      routeReplaceArgs({
        family: 6,
        table: 52000,
        dst: '::/0',
        type: 'unreachable',
        dev: 'ignored',
        metric: 4000,
        protocol: 167,
      }).join(' '),
    ).toBe('route replace unreachable ::/0 table 52000 metric 4000 proto 167');
    expect(
      routeDelArgs({
        table: 52000,
        dst: '10.0.0.0/8',
        type: 'blackhole',
        metric: 9,
        protocol: 167,
      }).join(' '),
    ).toBe('route del blackhole 10.0.0.0/8 table 52000 metric 9 proto 167');
    expect(batchScript([['a', 'b'], ['c']])).toBe('a b\nc\n');
  });
});

describe('defaultRouteOf (captured ip -j -N route show table main default): the uplink limits shape', () => {
  it('the default route with the lowest metric, IPv4 and IPv6', () => {
    expect(defaultRouteOf(fx('default-v4.json'), 'awg-')).toEqual({
      gateway: '10.200.99.3',
      interface: 'vb0',
    });
    expect(defaultRouteOf(fx('default-v6.json'), 'awg-')).toEqual({
      gateway: 'fd00:200::99:2',
      interface: 'va0',
    });
  });

  it('none, or only through a link of ours: no uplink', () => {
    expect(defaultRouteOf('[]', 'awg-')).toBeUndefined();
    expect(defaultRouteOf('', 'awg-')).toBeUndefined();
    expect(
      defaultRouteOf('[{"dst":"default","dev":"awg-t","metric":0,"flags":[]}]', 'awg-'),
    ).toBeUndefined();
  });
});
