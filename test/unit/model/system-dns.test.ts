/**
 * `dns.system` per DNS manager: with systemd-resolved the system resolver is the default
 * tunnel's link (`~.`, default-route yes) and every other tunnel's link is no default route;
 * elsewhere it is the `system` scope (resolv.conf). In full-tunnel mode with `default-tunnel`
 * the firewall keeps the default tunnel's DNS off every other device even without the kill
 * switch or leak protection (what resolved still sends to a LAN link's resolver).
 */
import { describe, expect, it } from 'vitest';
import { Config } from '../../../src/config/schema.js';
import { DEFAULT_FACTS } from '../../../src/model/desired.js';
import type { DnsSpec, FirewallSpec } from '../../../src/model/resources.js';
import { linuxDesired } from '../../helpers/desired.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const wg = (dns: string[]) => ({
  type: 'wireguard',
  privateKey: KEY,
  addresses: ['10.66.0.2/32'],
  dns,
  peers: [{ publicKey: KEY, endpoint: '192.0.2.1:51820', allowedIPs: ['0.0.0.0/0'] }],
});
const config = (o: Record<string, unknown>) =>
  Config.parse({
    version: 1,
    tunnels: { home: wg(['10.66.0.1']), work: wg(['10.77.0.53']) },
    rules: [],
    ...o,
  });
const dnsOf = (c: Config, manager: 'resolved' | 'resolvconf' | 'static') =>
  linuxDesired(c, { facts: { ...DEFAULT_FACTS, dnsManager: manager } })
    .resources.filter((r) => r.kind === 'dns')
    .map((r) => r.spec as DnsSpec)
    .sort((a, b) => (a.scope < b.scope ? -1 : 1));
const tableOf = (c: Config) =>
  (
    linuxDesired(c, { facts: { ...DEFAULT_FACTS, dnsManager: 'resolved' } }).resources.find(
      (r) => r.kind === 'firewall',
    )!.spec as FirewallSpec
  ).ruleset;
/** a chain's text (up to the next chain) */
const chainOf = (t: string, name: string) =>
  t.split(/^\s*chain /m).find((c) => c.startsWith(`${name} {`)) ?? '';

describe('dns.system per DNS manager', () => {
  it('resolved, full tunnel, default-tunnel: the default link takes `~.` with default-route yes; the others are no default route', () => {
    const c = config({ default: 'home', dns: { system: 'default-tunnel' } });
    expect(dnsOf(c, 'resolved')).toEqual([
      { scope: 'awg-home', servers: ['10.66.0.1'], domains: ['~.'], defaultRoute: true },
      { scope: 'awg-work', servers: ['10.77.0.53'], domains: [], defaultRoute: false },
    ]);
  });

  it('resolved, keep: every tunnel link has its servers and is no default route (the system resolver stays as it was)', () => {
    const c = config({ default: 'home' });
    expect(dnsOf(c, 'resolved').map((s) => [s.scope, s.defaultRoute])).toEqual([
      ['awg-home', false],
      ['awg-work', false],
    ]);
  });

  it('resolv.conf managers: the system scope, no per-link entries', () => {
    const c = config({ default: 'home', dns: { system: 'default-tunnel' } });
    for (const m of ['resolvconf', 'static'] as const)
      expect(dnsOf(c, m)).toEqual([{ scope: 'system', servers: ['10.66.0.1'], domains: ['~.'] }]);
  });
});

describe('the default tunnel DNS guard (dns.system: default-tunnel, no kill switch, no leak protection)', () => {
  it('judges the default tunnel’s marked DNS by the device it leaves: dropped unless a TUN of ours', () => {
    const t = tableOf(config({ default: 'home', dns: { system: 'default-tunnel' } }));
    const post = chainOf(t, 'filter_post');
    expect(post).toMatch(/jump rerouted comment "rerouted\/home"/);
    expect(post).not.toMatch(/rerouted\/work/);
    const rerouted = chainOf(t, 'rerouted');
    expect(rerouted).toMatch(
      /oifname != "awg-\*" meta l4proto \{ tcp, udp \} th dport \{ 53, 853 \} counter drop comment "dns-outside-tunnel"/,
    );
    // nothing else changes without the kill switch: no drop in filter_out, no kill-switch rule
    expect(t).not.toMatch(/kill-switch|dns-leak/);
  });

  it('is absent with dns.system: keep, and in split mode', () => {
    expect(tableOf(config({ default: 'home' }))).not.toMatch(/rerouted/);
    expect(
      tableOf(
        config({
          dns: { system: 'keep' },
          rules: [{ name: 'web', match: { name: 'curl' }, target: 'home' }],
        }),
      ),
    ).not.toMatch(/dns-outside-tunnel/);
  });
});
