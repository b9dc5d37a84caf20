import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { NftPolicy } from '../../../../src/resources/firewall/policy.js';
import {
  stubNatRules,
  stubRouteRules,
} from '../../../../src/resources/firewall/render-dns-stub.js';
import { renderTable } from '../../../../src/resources/firewall/render.js';

const policy = (name: string) =>
  JSON.parse(
    readFileSync(new URL(`./golden/${name}.policy.json`, import.meta.url), 'utf8'),
  ) as NftPolicy;

/** the rules of chain `name` in a rendered table */
function chainOf(table: string, name: string): string[] {
  const lines = table.split('\n').map((l) => l.trim());
  const at = lines.indexOf(`chain ${name} {`);
  const end = lines.indexOf('}', at);
  return lines.slice(at + 2, end);
}

describe('DNS stub rules', () => {
  const p: NftPolicy = { ...policy('per-app-full'), dnsStub: { port: 15296 } };

  it('nothing without a stub', () => {
    const plain = policy('per-app-full');
    expect(stubRouteRules(plain)).toEqual([]);
    expect(stubNatRules(plain)).toEqual([]);
  });

  it('premarked right after bypass; the loop guard and the redirect first in nat_out', () => {
    const t = renderTable(p);
    const route = chainOf(t, 'route_out');
    expect(route[1]).toContain('comment "bypass"');
    expect(route[2]).toBe(
      'meta mark & 0x0f000000 != 0x00000000 counter accept comment "premarked"',
    );
    const nat = chainOf(t, 'nat_out');
    expect(nat.slice(0, 3)).toEqual([
      'meta mark & 0x0f000000 != 0x00000000 ct mark & 0x0f000000 == 0x00000000 meta mark & 0x0f000000 != 0x0f000000 meta l4proto { tcp, udp } th dport 53 ct mark set meta mark counter accept comment "dns-stub/upstream"',
      'meta mark & 0x0f000000 != 0x00000000 ct mark & 0x0f000000 == 0x00000000 meta l4proto { tcp, udp } th dport 53 counter accept comment "dns-stub/bypass"',
      'meta l4proto { tcp, udp } th dport 53 counter redirect to :15296 comment "dns-stub"',
    ]);
  });

  it('refuses a port out of range', () => {
    expect(() => stubNatRules({ ...p, dnsStub: { port: 70000 } })).toThrow(/port/);
  });
});
