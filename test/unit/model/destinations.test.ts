/**
 * Rules' destination parts (model/destinations.ts): the interval lookup against a linear
 * scan, names by domain, v4-mapped addresses, lists from the loader, and the rule walk of
 * both parts (first fit, missing part fits, when names matter).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Rule } from '../../../src/config/schema.js';
import { loadConfigText } from '../../../src/config/load.js';
import { parseDestinationList } from '../../../src/config/lists.js';
import { compileDestinations, compileRuleWalk } from '../../../src/model/destinations.js';
import { v4String } from '../../../src/config/cidr.js';
import { buildDesired } from '../../../src/model/desired.js';

const rule = (r: Partial<Rule> & Pick<Rule, 'target'>): Rule => ({ enabled: true, ...r }) as Rule;

describe('compileDestinations', () => {
  it('addresses by interval (v4, v6, v4-mapped, bracketed), names by domain; no `to` fits all; disabled fits none', () => {
    const rules = [
      rule({
        name: 'r',
        target: 'A',
        to: {
          cidrs: ['203.0.113.0/24', '2001:db8::/32', '198.51.100.7'],
          domains: ['example.org', '*.example.net'],
        },
      }),
      rule({ name: 'all', target: 'B' }),
      rule({ name: 'off', target: 'B', enabled: false }),
    ];
    const d = compileDestinations(rules);
    expect(d.fits(0, '203.0.113.255')).toBe(true);
    expect(d.fits(0, '203.0.114.0')).toBe(false);
    expect(d.fits(0, '198.51.100.7')).toBe(true);
    expect(d.fits(0, '198.51.100.8')).toBe(false);
    expect(d.fits(0, '::ffff:203.0.113.9')).toBe(true);
    expect(d.fits(0, '[2001:db8:1::5]')).toBe(true);
    expect(d.fits(0, '2001:db9::')).toBe(false);
    expect(d.fits(0, '192.0.2.1', ['WWW.example.org.'])).toBe(true);
    expect(d.fits(0, '192.0.2.1', ['example.net'])).toBe(false);
    expect(d.fits(0, '192.0.2.1', ['other.example', 'a.example.net'])).toBe(true);
    expect(d.fits(0, 'not-an-address')).toBe(false);
    expect(d.fits(1, '192.0.2.1')).toBe(true);
    expect(d.fits(2, '192.0.2.1')).toBe(false);
    expect([d.hasDomains(0), d.hasDomains(1), d.anyDomains]).toEqual([true, false, true]);
  });

  it("list entries come from the loader's sets (by rule name); without them only inline values count", () => {
    const list = parseDestinationList('10.8.0.0/16\nlisted.example\n', 'l.txt').set;
    const rules = [
      rule({ name: 'vpn', target: 'A', to: { lists: ['l.txt'], cidrs: ['10.9.0.1'] } }),
    ];
    const withLists = compileDestinations(rules, new Map([['vpn', list]]));
    expect(withLists.fits(0, '10.8.3.4')).toBe(true);
    expect(withLists.fits(0, '1.1.1.1', ['x.listed.example'])).toBe(true);
    const inline = compileDestinations(rules);
    expect(inline.fits(0, '10.8.3.4')).toBe(false);
    expect(inline.fits(0, '10.9.0.1')).toBe(true);
  });

  it('the interval lookup agrees with a linear scan of the prefixes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(0xffffffff), fc.integer({ min: 8, max: 32 })), { maxLength: 30 }),
        fc.array(fc.nat(0xffffffff), { minLength: 1, maxLength: 30 }),
        (prefixes, probes) => {
          const nets = prefixes.map(([a, len]) => {
            const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
            return { start: (a & mask) >>> 0, len, mask };
          });
          const cidrs = nets.map((n) => `${v4String(n.start)}/${n.len}`);
          const d = compileDestinations([
            rule({ target: 'A', ...(cidrs.length ? { to: { cidrs } } : {}) }),
          ]);
          for (const p of probes) {
            const want = !cidrs.length || nets.some((n) => (p & n.mask) >>> 0 === n.start);
            expect(d.fits(0, v4String(p)), v4String(p)).toBe(want);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('compileRuleWalk', () => {
  const config = loadConfigText(
    `version: 1
tunnels:
  vpn: { type: socks5, server: 127.0.0.1, port: 1080 }
rules:
  - name: curl-office
    match: { name: curl }
    to: { cidrs: [10.1.0.0/16] }
    target: vpn
  - name: streaming
    to: { domains: [video.example] }
    target: vpn
  - name: curl
    match: { name: curl }
    target: direct
  - name: blocked-net
    to: { cidrs: [192.0.2.0/24] }
    target: block
`,
    'awg.yaml',
  );
  if (!config.config) throw new Error(JSON.stringify(config.issues));
  const walk = compileRuleWalk(config.config.rules, config.destinations);
  const names = (exe: string, addr: string, n?: string[]) =>
    walk.chain(exe, addr, n).map((r) => r.name);

  it('every enabled rule whose program and destination parts fit, in order (a missing part fits)', () => {
    expect(names('/usr/bin/curl', '10.1.2.3')).toEqual(['curl-office', 'curl']);
    expect(names('/usr/bin/curl', '10.2.0.1')).toEqual(['curl']);
    expect(names('/usr/bin/curl', '10.2.0.1', ['cdn.video.example'])).toEqual([
      'streaming',
      'curl',
    ]);
    expect(names('/usr/bin/wget', '10.1.2.3')).toEqual([]);
    expect(names('/usr/bin/wget', '192.0.2.9')).toEqual(['blocked-net']);
    expect(names('/usr/bin/wget', '198.51.100.1', ['video.example'])).toEqual(['streaming']);
  });

  it('names matter only where a rule with domains fits the program but not the address', () => {
    expect(walk.namesMatter('/usr/bin/wget', '198.51.100.1')).toBe(true);
    const noDomains = compileRuleWalk(
      config.config!.rules.filter((r) => r.name !== 'streaming'),
      config.destinations,
    );
    expect(noDomains.namesMatter('/usr/bin/wget', '198.51.100.1')).toBe(false);
    const both = compileRuleWalk([
      rule({
        name: 'x',
        target: 'A',
        match: { name: 'mail', ignoreCase: false },
        to: { domains: ['a.example'], cidrs: ['192.0.2.0/24'] },
      }),
    ]);
    expect(both.namesMatter('/usr/bin/mail', '192.0.2.1')).toBe(false); // fits by address already
    expect(both.namesMatter('/usr/bin/mail', '198.51.100.1')).toBe(true);
    expect(both.namesMatter('/usr/bin/curl', '198.51.100.1')).toBe(false); // not its program
  });
});

describe('keyword and regex domains (Step 21)', () => {
  const loaded = loadConfigText(
    `version: 1
tunnels:
  vpn: { type: socks5, server: 127.0.0.1, port: 1080 }
rules:
  - name: google
    to: { domains: ['keyword:google', 'regexp:^yt\\d*\\.'] }
    target: vpn
  - name: exact
    to: { domains: ['full:example.org'] }
    target: vpn
`,
    'awg.yaml',
  );
  if (!loaded.config) throw new Error(JSON.stringify(loaded.issues));
  const config = loaded.config;

  it('fit names like names do, and make the rule learn from DNS like names do', () => {
    const d = compileDestinations(config.rules, loaded.destinations);
    expect([d.hasDomains(0), d.hasDomains(1)]).toEqual([true, true]);
    expect(d.fits(0, '198.51.100.1', ['www.GOOGLE.com'])).toBe(true);
    expect(d.fits(0, '198.51.100.1', ['yt3.example'])).toBe(true);
    expect(d.fits(0, '198.51.100.1', ['gogle.com'])).toBe(false);
    expect(d.fits(1, '198.51.100.1', ['example.org.'])).toBe(true);
    expect(d.fits(1, '198.51.100.1', ['www.example.org'])).toBe(false);
    const desired = buildDesired(config, { destinations: loaded.destinations!, learn: true });
    const sets = (desired.policy?.sets ?? []).map((s) => `${s.name}:${s.kind}`);
    expect(sets).toEqual([
      'l4_google:learned',
      'l6_google:learned',
      'l4_exact:learned',
      'l6_exact:learned',
    ]);
    expect(desired.policy?.dnsStub).toBeDefined();
  });
});
