/**
 * systemd-resolved through its D-Bus API: busctl arguments and answers (captured from a booted
 * Debian 12 host, systemd 252: test/fixtures/linux/dns/busctl-*), and the driver against an
 * in-memory resolved (test/helpers/resolved-bus.ts).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { DnsSpec } from '../../../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../../../src/resources/driver.js';
import { createLinuxDnsDriver } from '../../../../src/resources/dns/linux.js';
import { RESOLVED_STATE_KEY } from '../../../../src/resources/dns/resolved.js';
import {
  busLabel,
  linkPath,
  parseLinkProperties,
  parseNameHasOwner,
  setLinkDefaultRouteArgs,
  setLinkDnsArgs,
  setLinkDomainsArgs,
} from '../../../../src/resources/dns/resolved-bus.js';
import { parseResolvectlLinks } from '../../../../src/resources/dns/parse.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { FakeResolvedBus } from '../../../helpers/resolved-bus.js';

const fx = (f: string) =>
  readFileSync(fileURLToPath(new URL(`../../../fixtures/linux/dns/${f}`, import.meta.url)), 'utf8');

const claims: Claims = {
  routeProtocol: 167,
  tableBase: 52000,
  bandSize: 100,
  rulePriority: 5200,
  fwmarkMask: 0x0f000000,
  nftTable: 'awg',
  linkPrefix: 'awg-',
  cgroupRoot: 'awg',
};

describe('resolved D-Bus arguments and answers (systemd 252)', () => {
  it('escapes the ifindex in the Link object path as sd_bus_path_encode does', () => {
    expect(linkPath(3)).toBe('/org/freedesktop/resolve1/link/_33');
    expect(linkPath(12)).toBe('/org/freedesktop/resolve1/link/_312');
    expect(busLabel('awg-x')).toBe('awg_2dx');
  });

  it('builds the Manager calls that the booted host accepted', () => {
    // the exact arguments run on the Debian 12 host to make busctl-link-tunnel.jsonl
    expect(setLinkDnsArgs(3, ['10.66.0.1', 'fd66::1'])).toEqual(
      'ia(iay) 3 2 2 4 10 66 0 1 10 16 253 102 0 0 0 0 0 0 0 0 0 0 0 0 0 1'.split(' '),
    );
    expect(setLinkDomainsArgs(3, ['~.', 'corp.example'])).toEqual(
      'ia(sb) 3 2 . true corp.example false'.split(' '),
    );
    expect(setLinkDomainsArgs(3, [])).toEqual(['ia(sb)', '3', '0']);
    expect(setLinkDefaultRouteArgs(3, true)).toEqual(['ib', '3', 'true']);
  });

  it('reads a link back: servers, routing and search domains, default-route', () => {
    expect(parseLinkProperties('awg-t1', fx('busctl-link-tunnel.jsonl'))).toEqual({
      scope: 'awg-t1',
      servers: ['10.66.0.1', 'fd66::1'],
      domains: ['~.', 'corp.example'],
      defaultRoute: true,
    });
    // NetworkManager's link: a search domain from DHCP
    expect(parseLinkProperties('eth0', fx('busctl-link-lan.jsonl'))).toEqual({
      scope: 'eth0',
      servers: ['10.77.0.1'],
      domains: ['lan.test'],
      defaultRoute: true,
    });
    // after RevertLink: nothing, and DefaultRoute reads false (no servers, no DNS scope)
    expect(parseLinkProperties('awg-t1', fx('busctl-link-reverted.jsonl'))).toEqual({
      scope: 'awg-t1',
      servers: [],
      domains: [],
      defaultRoute: false,
    });
  });

  it('refuses answers of another shape instead of reading them as empty', () => {
    expect(() => parseLinkProperties('x', '{"type":"a(iay)","data":[]}\n')).toThrow();
    expect(() =>
      parseLinkProperties(
        'x',
        '{"type":"a(iay)","data":[[2,[1,2,3]]]}\n{"type":"a(sb)","data":[]}\n{"type":"b","data":true}\n',
      ),
    ).toThrow(/DNS entry/);
  });

  it('reads NameHasOwner and resolvectl default-route', () => {
    expect(parseNameHasOwner(fx('busctl-name-has-owner.txt'))).toBe(true);
    expect(parseNameHasOwner('b false\n')).toBe(false);
    expect(parseNameHasOwner('')).toBeUndefined();
    const r = parseResolvectlLinks(fx('resolvectl-default-route.txt'));
    expect(r.get('eth0')).toEqual(['yes']);
    expect(r.get('awg-t1')).toEqual(['yes']);
  });
});

describe('the resolved driver over D-Bus (in-memory resolved)', () => {
  const ETH0 = 2;
  const AWG = 7;
  function setup() {
    const bus = new FakeResolvedBus();
    // NetworkManager's link, which must never be touched
    bus.link(ETH0).dns = [[2, [10, 77, 0, 1]]];
    bus.link(ETH0).domains = [['lan.test', false]];
    const state = new MemoryStateStore();
    const reporter = new MemoryReporter();
    const linkMap = new Map([['awg-home', AWG]]);
    const d = createLinuxDnsDriver({
      exec: bus,
      env: { AWG_DNS_MANAGER: 'resolved', PATH: '' },
      resolvedClient: 'busctl',
      links: async (prefix) => new Map([...linkMap].filter(([n]) => n.startsWith(prefix))),
    });
    const ctx: ApplyContext = { exec: bus, reporter, state, dryRun: false, claims };
    const observe = async () =>
      (await d.observe({ desired: { resources: [], warnings: [] }, claims, state })).resources.map(
        (r) => r.spec,
      );
    return { bus, state, reporter, d, ctx, observe, linkMap };
  }
  const change = (action: 'create' | 'update' | 'delete', spec: DnsSpec): Change<'dns'> => ({
    kind: 'dns',
    id: `dns/${spec.scope}`,
    action,
    ...(action === 'delete' ? { before: spec } : { after: spec }),
    reason: '',
    cause: 'initial',
  });
  const full: DnsSpec = {
    scope: 'awg-home',
    servers: ['10.66.0.1', 'fd66::1'],
    domains: ['~.'],
    defaultRoute: true,
  };

  it('full tunnel: default-route, `~.`, then servers; idempotent; read back whole; reverted on delete', async () => {
    const { bus, d, ctx, observe } = setup();
    expect(await d.apply(change('create', full), ctx)).toBe('changed');
    expect(bus.calls.map((c) => c[4])).toEqual([
      'SetLinkDefaultRoute',
      'SetLinkDomains',
      'SetLinkDNS',
    ]);
    expect(await d.apply(change('create', full), ctx)).toBe('unchanged');
    expect(bus.calls).toHaveLength(3);
    expect(await observe()).toEqual([full]);
    expect(await d.apply(change('delete', full), ctx)).toBe('changed');
    expect(bus.calls.at(-1)?.slice(4)).toEqual(['RevertLink', 'i', String(AWG)]);
    expect(await observe()).toEqual([]);
    expect(bus.calls.every((c) => c[6] !== String(ETH0))).toBe(true);
    expect(bus.view(ETH0)).toEqual({
      servers: ['10.77.0.1'],
      domains: ['lan.test'],
      defaultRoute: undefined,
    });
  });

  it('a tunnel that is not the system resolver is told default-route no before it has servers', async () => {
    const { bus, d, ctx, observe } = setup();
    const split: DnsSpec = {
      scope: 'awg-home',
      servers: ['10.66.0.1'],
      domains: [],
      defaultRoute: false,
    };
    expect(await d.apply(change('create', split), ctx)).toBe('changed');
    // without the explicit `no`, resolved's heuristic makes a link without routing domains a default route
    expect(bus.calls.map((c) => c.slice(4, 5).concat(c.slice(7)))).toEqual([
      ['SetLinkDefaultRoute', 'false'],
      ['SetLinkDNS', '1', '2', '4', '10', '66', '0', '1'],
    ]);
    expect(await observe()).toEqual([split]);
    expect(await d.apply(change('create', split), ctx)).toBe('unchanged');
  });

  it('drift is seen in each field: servers, domains, default-route', async () => {
    const { bus, d, ctx, observe } = setup();
    await d.apply(change('create', full), ctx);
    bus.link(AWG).defaultRoute = false;
    expect((await observe())[0]?.defaultRoute).toBe(false);
    bus.link(AWG).domains = [];
    expect((await observe())[0]?.domains).toEqual([]);
    bus.link(AWG).dns = [[2, [10, 66, 0, 9]]];
    expect((await observe())[0]?.servers).toEqual(['10.66.0.9']);
    expect(await d.apply(change('update', full), ctx)).toBe('changed');
    expect(await observe()).toEqual([full]);
    // resolved restarted without its saved state: the link has nothing, and is made again
    bus.links.delete(AWG);
    expect(await observe()).toEqual([]);
    expect(await d.apply(change('create', full), ctx)).toBe('changed');
    expect(await observe()).toEqual([full]);
  });

  it('resolved unreachable: delete is done with a warning, observe answers from the record, a change is a retryable error', async () => {
    const { bus, state, reporter, d, ctx, observe } = setup();
    await d.apply(change('create', full), ctx);
    expect(state.get(RESOLVED_STATE_KEY)).toEqual({ 'awg-home': full });
    bus.running = false;
    expect(await observe()).toEqual([full]);
    await expect(
      d.apply(change('update', { ...full, servers: ['10.66.0.2'] }), ctx),
    ).rejects.toMatchObject({ kind: 'driver', message: /not reachable/ });
    const before = bus.calls.length;
    expect(await d.apply(change('delete', full), ctx)).toBe('unchanged');
    expect(bus.calls).toHaveLength(before);
    expect(reporter.events).toContainEqual(
      expect.objectContaining({
        type: 'warning',
        message: expect.stringMatching(/go with the link/),
      }),
    );
    expect(state.get(RESOLVED_STATE_KEY)).toBeUndefined();
    expect(await observe()).toEqual([]);
  });

  it('a link that is gone took its settings: delete is a no-op, observe does not list it', async () => {
    const { bus, d, ctx, observe, linkMap } = setup();
    await d.apply(change('create', full), ctx);
    linkMap.delete('awg-home');
    expect(await observe()).toEqual([]);
    const before = bus.calls.length;
    expect(await d.apply(change('delete', full), ctx)).toBe('unchanged');
    expect(bus.calls).toHaveLength(before);
  });

  it('only our links: another scope is a bug, the system scope is refused', async () => {
    const { d, ctx } = setup();
    await expect(d.apply(change('create', { ...full, scope: 'eth0' }), ctx)).rejects.toMatchObject({
      kind: 'bug',
    });
    await expect(
      d.apply(change('create', { ...full, scope: 'system' }), ctx),
    ).rejects.toMatchObject({
      kind: 'unsupported',
    });
  });
});
