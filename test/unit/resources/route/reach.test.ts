/**
 * Whether a host routes beyond the main table's prefixes (resources/route/reach.ts), from
 * listings captured in a network namespace (test/fixtures/linux/route/unrouted/: a veth LAN
 * 192.168.50.0/24 with a static 10.8.0.0/16 behind it, awg's first route in table 52099 with
 * its rules at 5298/5299, a split tunnel's `throw` in 52001, a foreign `blackhole` default in
 * table 100 that no rule looks up), and the facts probe on top of them (resources/facts.ts).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { routeGetError, unroutedOf } from '../../../../src/resources/route/reach.js';
import { linuxRouting, routingFamilies } from '../../../../src/resources/facts.js';
import type { ExecResult } from '../../../../src/util/exec.js';

const fx = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/route/unrouted/${f}`, import.meta.url), 'utf8');
const band = { tableBase: 52000, rulePriority: 5200, bandSize: 100 };
const v4 = (defaults: string, rules = 'v4-rules.json') =>
  unroutedOf(
    { defaults: fx(defaults), rules: fx(rules), main: fx('v4-main.json') },
    4,
    band,
    'awg-',
  );

describe('unroutedOf', () => {
  it("no default route but awg's own: main's prefixes are all direct traffic reaches", () => {
    expect(v4('v4-defaults.json')).toEqual({ reach: ['10.8.0.0/16', '192.168.50.0/24'] });
  });

  it('IPv6: link-local prefixes are not listed', () => {
    expect(
      unroutedOf(
        { defaults: fx('v6-defaults.json'), rules: fx('v6-rules.json'), main: fx('v6-main.json') },
        6,
        band,
        'awg-',
      ),
    ).toEqual({ reach: ['fd50::/64'] });
  });

  it("a default route in main, or in a table a rule outside awg's band looks up (whatever its selectors): routed", () => {
    expect(v4('v4-defaults-main.json')).toBeUndefined();
    expect(v4('v4-defaults-table200.json', 'v4-rules-table200.json')).toBeUndefined();
    // the same table without the rule that leads to it routes nothing
    expect(v4('v4-defaults-table200.json')).toEqual({
      reach: ['10.8.0.0/16', '192.168.50.0/24'],
    });
  });

  it("main's unreachable default route is named (it fails lookups before awg's rules)", () => {
    expect(v4('v4-defaults-main-unreachable.json')).toEqual({
      reach: ['10.8.0.0/16', '192.168.50.0/24'],
      mainDefault: 'unreachable',
    });
  });

  it("awg's band never counts: a rule of ours leading to a unicast default is not the host's", () => {
    const rules = JSON.stringify([
      { priority: 5299, src: 'all', table: '200', protocol: '167' },
      { priority: 32766, src: 'all', table: '254' },
    ]);
    const defaults = JSON.stringify([{ dst: 'default', dev: 'v0', table: '200' }]);
    expect(
      unroutedOf({ defaults, rules, main: fx('v4-main.json') }, 4, band, 'awg-'),
    ).toBeDefined();
  });

  it("iproute2's complaint without its prefix", () => {
    expect(routeGetError('RTNETLINK answers: Network is unreachable\n')).toBe(
      'Network is unreachable',
    );
    expect(routeGetError('')).toBe('no route');
  });
});

describe('linuxRouting (ip through an Exec)', () => {
  it('IPv6 is looked at only where it is tunnelled or an endpoint has an IPv6 address', () => {
    const e4 = { tunnel: 't', host: 'h', address: '192.0.2.1' };
    const e6 = { tunnel: 't', host: 'h', address: '2001:db8::1' };
    expect(routingFamilies(false, [e4])).toEqual([4]);
    expect(routingFamilies(false, [e4, e6])).toEqual([4, 6]);
    expect(routingFamilies(true, [])).toEqual([4, 6]);
  });

  it('a family not asked for is not read', async () => {
    const e = exec({});
    await linuxRouting(e, { band, families: [4], bypassMark: 0x0f000000, endpoints: [] });
    expect(e.calls.filter((c) => c.startsWith('-6'))).toEqual([]);
    expect(e.calls).toHaveLength(3);
  });

  const ok = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '' });
  /** answers the three listings per family from the fixtures and `route get` per address */
  const exec = (routes: Record<string, ExecResult>, v6 = true) => {
    const calls: string[] = [];
    return {
      calls,
      read: async (_cmd: string, args: string[]): Promise<ExecResult> => {
        calls.push(args.join(' '));
        const f = args[0] === '-6' ? 'v6' : 'v4';
        if (f === 'v6' && !v6) return { code: 2, stdout: '', stderr: 'IPv6 is disabled' };
        if (args.includes('get')) return routes[args[args.indexOf('get') + 1]!] ?? ok('[]');
        if (args.includes('rule')) return ok(fx(`${f}-rules.json`));
        if (args.includes('exact')) return ok(fx(`${f}-defaults.json`));
        return ok(fx(`${f}-main.json`));
      },
    };
  };
  const endpoints = [
    { tunnel: 't1', host: '192.168.50.1', address: '192.168.50.1' },
    { tunnel: 't2', host: 'vpn.example', address: '10.200.72.9' },
    { tunnel: 't3', host: '2001:db8::9', address: '2001:db8::9' },
  ];

  it("both families unrouted; the endpoints without a route with the kernel's answer, asked with the bypass mark", async () => {
    const e = exec({
      '10.200.72.9': { code: 2, stdout: '', stderr: 'RTNETLINK answers: Network is unreachable\n' },
      '2001:db8::9': { code: 2, stdout: '', stderr: 'RTNETLINK answers: Network is unreachable\n' },
    });
    expect(
      await linuxRouting(e, { band, families: [4, 6], bypassMark: 0x0f000000, endpoints }),
    ).toEqual({
      unrouted: {
        v4: { reach: ['10.8.0.0/16', '192.168.50.0/24'] },
        v6: { reach: ['fd50::/64'] },
      },
      unreachableEndpoints: [
        { ...endpoints[1], reason: 'Network is unreachable' },
        { ...endpoints[2], reason: 'Network is unreachable' },
      ],
    });
    expect(e.calls).toContain('-4 route get 10.200.72.9 mark 0xf000000');
  });

  it("a family whose listing fails is left out, and its endpoints are not asked; a family main's default routes is not read", async () => {
    const e = exec({}, false);
    const r = await linuxRouting(e, {
      band,
      families: [4, 6],
      bypassMark: 0x0f000000,
      endpoints,
      defaults: { defaultRouteV4: { gateway: '192.168.50.1', interface: 'v0' } },
    });
    expect(r).toEqual({});
    expect(e.calls.filter((c) => c.startsWith('-4'))).toEqual([]);
  });
});
