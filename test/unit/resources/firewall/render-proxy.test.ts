/**
 * Proxy tunnels' nat_out redirects (render-proxy.ts): per rule in rule order, UDP to the
 * strict port only when the tunnel carries UDP, allow-direct rules' UDP to the direct port,
 * and nat_out's first match equal to route_out's (a strict rule that an allow-direct rule's
 * lines could take keeps lines of its own, ahead of them).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseTableListing } from '../../../../src/resources/firewall/parse.js';
import type { NftAppRule, NftPolicy } from '../../../../src/resources/firewall/policy.js';
import { firewallSpec, renderTable } from '../../../../src/resources/firewall/render.js';

const golden = (name: string) =>
  JSON.parse(
    readFileSync(new URL(`./golden/${name}.policy.json`, import.meta.url), 'utf8'),
  ) as NftPolicy;
const fixture = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/firewall/${f}`, import.meta.url), 'utf8');

/** the rule lines of one chain, without the chain's head */
function chainLines(text: string, chain: string): string[] {
  const lines = text.split('\n').map((l) => l.trim());
  const at = lines.indexOf(`chain ${chain} {`);
  const end = lines.indexOf('}', at);
  return lines.slice(at + 2, end);
}
const commentOf = (l: string) => /comment "([^"]+)"$/.exec(l)?.[1];

const HP = 0x07000000;
const mark = (m: number) => ({ type: 'mark' as const, mark: m, ipv6: 'tunnel' as const });

function withApps(apps: NftAppRule[], base = golden('proxy-udp')): NftPolicy {
  return { ...base, apps };
}

describe('proxy redirects in nat_out', () => {
  it('the captured listing of the UDP case (loaded by nft 1.x) normalises to the rendered spec', () => {
    expect(parseTableListing(fixture('list-table-proxy-udp.txt')).ruleset).toBe(
      firewallSpec(golden('proxy-udp')).ruleset,
    );
  });

  it('a tunnel that carries UDP takes every marked UDP port; one that does not takes UDP/53 only (with resolvers)', () => {
    const nat = chainLines(renderTable(golden('proxy-udp')), 'nat_out');
    expect(nat.filter((l) => commentOf(l) === 'proxy-udp/su')).toEqual([
      'meta mark & 0x0f000000 == 0x03000000 meta l4proto udp counter redirect to :15203 comment "proxy-udp/su"',
    ]);
    expect(nat.some((l) => commentOf(l) === 'proxy-udp/hp')).toBe(false);
    const tcp = golden('proxy-tunnels');
    const natTcp = chainLines(renderTable(tcp), 'nat_out');
    expect(natTcp.filter((l) => commentOf(l)?.startsWith('proxy-udp/'))).toEqual([]);
    expect(natTcp.filter((l) => commentOf(l) === 'proxy-dns/sx')).toHaveLength(1);
  });

  it('allow-direct rules send their UDP to the direct port, leaving UDP/53 to the DNS path when the tunnel has resolvers', () => {
    const nat = chainLines(renderTable(golden('proxy-udp')), 'nat_out');
    const game = nat.filter((l) => commentOf(l) === 'proxy-direct/game');
    expect(game).toEqual([
      'socket cgroupv2 level 2 "awg/game" meta mark & 0x0f000000 == 0x03000000 meta l4proto tcp counter redirect to :15251 comment "proxy-direct/game"',
      'socket cgroupv2 level 2 "awg/game" meta mark & 0x0f000000 == 0x03000000 udp dport != 53 counter redirect to :15251 comment "proxy-direct/game"',
    ]);
    // hp has no resolvers: every UDP port of the allow-direct rule goes to the direct port
    expect(nat.filter((l) => commentOf(l) === 'proxy-direct/curl')[1]).toContain(
      'meta l4proto udp counter redirect to :15255',
    );
    // the direct port's lines come before the by-mark ones
    const lastDirect = nat.findLastIndex((l) => commentOf(l)?.startsWith('proxy-direct/'));
    const firstByMark = nat.findIndex((l) => commentOf(l)?.startsWith('proxy/'));
    expect(lastDirect).toBeLessThan(firstByMark);
  });

  it('a destination-only allow-direct rule is matched by its destinations, never by the mark alone', () => {
    const nat = chainLines(renderTable(golden('proxy-udp')), 'nat_out');
    const cdn = nat.filter((l) => commentOf(l) === 'proxy-direct/cdn');
    expect(cdn).toHaveLength(2);
    for (const l of cdn) expect(l.startsWith('ip daddr @s4_cdn meta mark')).toBe(true);
  });

  it('first match: a strict rule an allow-direct rule could take gets lines ahead of it; strict rules no allow-direct rule can take get none', () => {
    const nat = chainLines(renderTable(golden('proxy-udp')), 'nat_out');
    const names = nat.map(commentOf);
    // bob (uid) may own game's processes and reach cdn's destinations: its lines come first
    expect(names.indexOf('proxy-strict/bob')).toBe(0);
    expect(names.indexOf('proxy-strict/bob')).toBeLessThan(names.indexOf('proxy-direct/game'));
    // wget comes after hp's last allow-direct rule; _exec-su after su's
    expect(names).not.toContain('proxy-strict/wget');
    expect(names).not.toContain('proxy-strict/_exec-su');
    // two placed rules never share a process: browser needs no line before chat
    const tcp = chainLines(renderTable(golden('proxy-tunnels')), 'nat_out').map(commentOf);
    expect(tcp).not.toContain('proxy-strict/browser');
  });

  it("a strict rule's UDP the tunnel cannot carry ends nat_out unredirected (the leak guard drops it); its UDP/53 goes on to the DNS redirect", () => {
    const p = withApps([
      { name: 'ops', who: { kind: 'uid', uid: 1000 }, action: mark(HP) },
      {
        name: 'cli',
        cgroup: { path: 'awg/cli', level: 2 },
        action: mark(HP),
        redirectPort: 15255,
      },
    ]);
    p.tunnels = p.tunnels.map((t) => (t.name === 'hp' ? { ...t, resolvers: ['10.64.0.53'] } : t));
    const text = renderTable(p);
    const nat = chainLines(text, 'nat_out');
    expect(nat.filter((l) => commentOf(l) === 'proxy-strict/ops')).toEqual([
      'meta skuid 1000 meta mark & 0x0f000000 == 0x07000000 meta l4proto tcp counter redirect to :15207 comment "proxy-strict/ops"',
      'meta skuid 1000 meta mark & 0x0f000000 == 0x07000000 udp dport != 53 counter accept comment "proxy-strict/ops"',
    ]);
    expect(nat.filter((l) => commentOf(l) === 'proxy-dns/hp')).toHaveLength(1);
    expect(chainLines(text, 'filter_out')).toContain(
      'meta mark & 0x0f000000 == 0x07000000 meta l4proto != tcp counter drop comment "proxy-nontcp/hp"',
    );
  });

  it('the kill switch admits the daemon’s UDP to a UDP-carrying proxy’s addresses (its relay port is the proxy’s choice), to no other', () => {
    const filter = chainLines(renderTable(golden('proxy-udp')), 'filter_out');
    expect(filter.filter((l) => commentOf(l)?.startsWith('endpoint-udp/'))).toEqual([
      'meta mark & 0x0f000000 == 0x0f000000 ip daddr 203.0.113.5 meta l4proto udp counter accept comment "endpoint-udp/su"',
      'meta mark & 0x0f000000 == 0x0f000000 ip6 daddr 2001:db8::5 meta l4proto udp counter accept comment "endpoint-udp/su"',
    ]);
    const ks = chainLines(renderTable(golden('proxy-tunnels')), 'filter_out');
    expect(ks.some((l) => commentOf(l)?.startsWith('endpoint-udp/'))).toBe(false);
    // before the kill switch's final drop
    expect(filter.findIndex((l) => commentOf(l) === 'endpoint-udp/su')).toBeLessThan(
      filter.findIndex((l) => commentOf(l) === 'kill-switch'),
    );
  });
});
