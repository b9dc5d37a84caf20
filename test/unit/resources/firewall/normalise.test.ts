/**
 * The normalised form of a listing does not depend on /etc/protocols: listings captured with
 * and without it (test/fixtures/linux/firewall/no-netbase/capture.sh) of the renderer's own
 * tables normalise to the rendered spec, and every selector that takes a protocol value reads
 * the same either way.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { carryCounters } from '../../../../src/resources/firewall/counters.js';
import {
  canonicalProtocol,
  canonicalProtocols,
  normaliseRuleset,
} from '../../../../src/resources/firewall/normalise.js';
import { parseTableListing } from '../../../../src/resources/firewall/parse.js';
import type { NftPolicy } from '../../../../src/resources/firewall/policy.js';
import { firewallSpec } from '../../../../src/resources/firewall/render.js';

const captured = (f: string) =>
  readFileSync(
    new URL(`../../../fixtures/linux/firewall/no-netbase/${f}`, import.meta.url),
    'utf8',
  );
/** a golden policy with its cgroups where capture.sh made them */
const policy = (name: string) =>
  JSON.parse(
    readFileSync(new URL(`./golden/${name}.policy.json`, import.meta.url), 'utf8').replace(
      /"path": "([^"]+)"/g,
      '"path": "unified/nftm-capture/$1"',
    ),
  ) as NftPolicy;

describe('normalised read-back without /etc/protocols', () => {
  for (const name of ['per-app-full', 'proxy-udp', 'limits', 'killswitch-hostname-endpoint']) {
    it(`${name}: both listings normalise to the rendered spec`, () => {
      const withFile = captured(`${name}.protocols.txt`);
      const without = captured(`${name}.no-protocols.txt`);
      // the capture is what the defect needs: nft printed numbers where the file names them
      expect(without).not.toBe(withFile);
      expect(without).toMatch(/meta l4proto (\{ 6, 17 \}|6|17) /);
      const spec = firewallSpec(policy(name)).ruleset;
      expect(parseTableListing(withFile).ruleset).toBe(spec);
      expect(parseTableListing(without).ruleset).toBe(spec);
    });
  }

  it('every selector with a protocol value reads the same with and without the file', () => {
    const a = normaliseRuleset(captured('probe.protocols.txt'));
    expect(normaliseRuleset(captured('probe.no-protocols.txt'))).toBe(a);
    // nft's keywords where it has one (they load without the file), numbers otherwise
    expect(a.split('\n').slice(2, 16)).toEqual([
      'meta l4proto { icmp, tcp, udp, icmpv6, sctp } accept',
      'meta l4proto != tcp accept',
      'meta l4proto != { tcp, udp } drop',
      'ip protocol { tcp, udp } accept',
      'ip protocol icmp accept',
      'ip6 nexthdr icmpv6 accept',
      'ip6 nexthdr { tcp, udp } accept',
      'ct protocol tcp accept',
      'ct protocol udp accept',
      'meta l4proto 47 accept',
      'meta l4proto 253 accept',
      'meta l4proto comp accept',
      'meta l4proto vmap { tcp : accept, udp : drop }',
      'tcp dport { 22, 80, 443 } accept',
    ]);
  });

  it('leaves ports, other symbols and comments alone', () => {
    for (const s of [
      'udp sport 68 udp dport 67 counter accept comment "dhcp"',
      'th dport { 53, 853 } accept',
      'icmpv6 type { nd-router-solicit, nd-neighbor-solicit } accept',
      'meta nfproto ipv6 counter drop comment "a/ipv6-blocked"',
      'ct mark & 0x0f000000 != 0x00000000 meta mark set ct mark counter comment "restore-mark"',
      'ip daddr 10.0.0.6 meta l4proto udp counter accept comment "udp-6"',
    ])
      expect(canonicalProtocols(s)).toBe(s);
    expect(canonicalProtocols('ct original protocol 6 accept')).toBe(
      'ct original protocol tcp accept',
    );
  });

  it('canonical protocol values', () => {
    expect(['6', 'tcp', '17', 'udp', '58', 'ipv6-icmp', 'icmpv6'].map(canonicalProtocol)).toEqual([
      'tcp',
      'tcp',
      'udp',
      'udp',
      'icmpv6',
      'icmpv6',
      'icmpv6',
    ]);
    expect(
      ['gre', '47', 'ipcomp', '108', 'unknown-name', '6-17', '300'].map(canonicalProtocol),
    ).toEqual(['47', '47', 'comp', 'comp', 'unknown-name', '6-17', '300']);
  });

  it("a rule listed with numbers keeps its counter across a load (the listing's key is canonical)", () => {
    const listing = captured('killswitch-hostname-endpoint.no-protocols.txt').replace(
      /meta l4proto \{ 6, 17 \} th dport \{ 53, 853 \} counter packets 0 bytes 0 drop comment "dns-leak"/,
      'meta l4proto { 6, 17 } th dport { 53, 853 } counter packets 7 bytes 420 drop comment "dns-leak"',
    );
    expect(listing).toContain('packets 7 bytes 420');
    const want = firewallSpec(policy('killswitch-hostname-endpoint')).ruleset;
    expect(carryCounters(listing, want)).toContain(
      'meta l4proto { tcp, udp } th dport { 53, 853 } counter packets 7 bytes 420 drop comment "dns-leak"',
    );
  });
});
